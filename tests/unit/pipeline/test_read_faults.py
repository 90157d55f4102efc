"""Which reading errors are retried, and which keep a failed file's committed batches."""

from __future__ import annotations

import errno
import gzip

from pgingest.errors import RowError, SourceError
from pgingest.pipeline.job import is_read_fault, is_transient_read_fault


def caused(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


def test_io_error_while_reading_is_a_transient_read_fault() -> None:
    exc = caused(SourceError("f.csv: cannot read: EIO"), OSError(errno.EIO, "I/O error"))
    assert is_read_fault(exc)
    assert is_transient_read_fault(exc)
    stale = caused(SourceError("f.csv: cannot read"), OSError(errno.ESTALE, "stale handle"))
    assert is_transient_read_fault(stale)


def test_missing_file_and_corrupt_data_fail_at_once() -> None:
    missing = caused(SourceError("f.csv: cannot open"), FileNotFoundError(errno.ENOENT, "no"))
    assert is_read_fault(missing)  # a fault, not bad data: committed batches are kept
    assert not is_transient_read_fault(missing)
    corrupt = caused(SourceError("f.csv.gz: cannot read"), gzip.BadGzipFile("bad"))
    assert not is_read_fault(corrupt)
    assert not is_transient_read_fault(corrupt)


def test_bad_rows_are_data_not_faults() -> None:
    row = caused(RowError("f.csv: line 3: bad"), OSError(errno.EIO, "odd"))
    assert not is_read_fault(row)
    assert not is_read_fault(SourceError("f.csv: binary content"))
