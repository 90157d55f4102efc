"""Start on the run's first large file while the loader starts up.

Two things are started before the loader has imported the driver and the encoder, connected
and claimed the file in the manifest, each in a daemon thread:

- the content hash of the first target when it is 1 MiB or more (the manifest needs it to
  record the file; sha256 of the benchmark's 367 MB CSV takes ~0.24 s, which otherwise
  competed with the server's COPY backends for the same two cores);
- the parse of a large first workbook: a sheet is parsed whole when it is opened (fastexcel
  releases the GIL meanwhile), and for one big workbook that parse is most of the load. On the
  100,000-row benchmark workbook the load's wall time dropped by about the start-up's
  (~0.1-0.15 s).

The price: when the manifest then says the file is unchanged, the parse was for nothing and
the hash is abandoned at its next 16 MiB block (bounded: only the first target is read ahead).
This module imports neither pyarrow nor the driver, so that it can start first.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pgingest.config import LoadOptions
from pgingest.manifest.hashing import BackgroundHash
from pgingest.model import WORKBOOK_FORMATS
from pgingest.pipeline.discover import Discovered, Target, options_for, plan_targets
from pgingest.sources.base import CsvOptions, ExcelOptions, Source
from pgingest.sources.inputs import is_virtual, real

__all__ = ["ReadAhead", "excel_options", "start_read_ahead"]

READ_AHEAD_MIN_BYTES = 1 << 20
"""Files smaller than this hash and workbooks smaller than this parse in milliseconds: not
worth a thread."""
_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")


def excel_options(options: LoadOptions) -> ExcelOptions:
    """The workbook reading options of a target's load options."""
    return ExcelOptions(
        sheet=None if options.sheet == "all" else options.sheet,
        header_row=options.header_row,
        all_sheets=options.sheet == "all" and options.sheet_column,
    )


@dataclass
class ReadAhead:
    """The run's planned targets, the first one's hash and at most one workbook being opened,
    each in a thread."""

    targets: list[Target]
    missing: list[Discovered]
    hash: BackgroundHash | None = None
    """The first target's content hash, computed in the background; see :meth:`take_hash`."""
    _key: tuple[Any, ...] | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    _result: list[Any] = field(default_factory=list)
    _taken: bool = False

    def _run(self, path: str, options: LoadOptions, csv: CsvOptions) -> None:
        # Neither imports pyarrow: the parse runs while the loader imports it.
        from pgingest.sources import detect
        from pgingest.sources.workbook import parse_workbook

        try:
            info = detect(path, options.format, csv)
            if info.format in WORKBOOK_FORMATS:
                self._result.append((info, parse_workbook(path, excel_options(options))))
        except Exception as exc:  # raised again where the loader opens the file
            self._result.append(exc)
        finally:
            self._done.set()

    def start(self, target: Target, options: LoadOptions, csv: CsvOptions) -> None:
        """Open ``target`` in a daemon thread (a process may exit without waiting for it)."""
        self._key = _key(target.path, options)
        thread = threading.Thread(
            target=self._run, args=(target.path, options, csv), daemon=True, name="read-ahead"
        )
        thread.start()

    def wants(self, path: str, options: LoadOptions) -> bool:
        """Whether ``path`` with these options was read ahead and not taken yet."""
        return not self._taken and self._key is not None and self._key == _key(path, options)

    def take(self, path: str, options: LoadOptions) -> Source | None:
        """The source read ahead for ``path`` with these options (blocks until it is open),
        once; ``None`` when it was not read ahead.

        Raises:
            SourceError: opening it failed (the same error the loader would have met).
        """
        if not self.wants(path, options):
            return None
        self._taken = True
        self._done.wait()
        result = self._result[0] if self._result else None
        if isinstance(result, BaseException):
            raise result
        if result is None:
            return None
        from pgingest.sources.excel import ExcelSource

        info, parsed = result
        return ExcelSource(info, excel_options(options), parsed)

    def take_hash(self, path: str, st: os.stat_result) -> BackgroundHash | None:
        """The hash started for ``path``, once, if the file is still as it was then (else the
        hash is abandoned); ``None`` when no hash of it was started."""
        hashing = self.hash
        if hashing is None or real(hashing.path) != real(path):
            return None
        self.hash = None
        if not hashing.of(st):  # the file changed since: the hash is of other bytes
            hashing.abandon()
            return None
        return hashing

    def close(self) -> None:
        """Abandon a hash never taken and close a source that was read ahead but never taken
        (the file was skipped, or failed first)."""
        if self.hash is not None:
            self.hash.abandon()
            self.hash = None
        if not self._taken and self._key is not None:
            self._taken = True
            self._result.clear()  # the parsed sheet's memory goes with it


def _key(path: str, options: LoadOptions) -> tuple[Any, ...]:
    return (real(path), options.format, excel_options(options))


def start_read_ahead(paths: Sequence[str], options: LoadOptions) -> ReadAhead:
    """Plan the run's targets; start hashing the first one if it is large, and opening it if
    it is a large workbook.

    Imports nothing of the driver, so that the caller can start it before importing the loader.

    Args:
        paths: what the run loads.
        options: the run's options.

    Returns:
        The targets, for the loader, and the read-ahead.
    """
    targets, missing = plan_targets(paths, options)
    ahead = ReadAhead(targets, missing)
    if options.dry_run or not targets:
        return ahead
    first = targets[0]
    target_options = options_for(options, first.overrides)
    if target_options.sheet == "all" and not target_options.sheet_column:
        return ahead
    try:
        if is_virtual(first.path):  # remote: hashed by its stream, or not (README)
            return ahead
        size = os.path.getsize(first.path)
        if size >= READ_AHEAD_MIN_BYTES:
            ahead.hash = BackgroundHash(first.path)
    except OSError:  # the loader meets it again, and says so
        return ahead
    if size >= READ_AHEAD_MIN_BYTES and first.path.lower().endswith(_WORKBOOK_SUFFIXES):
        csv = CsvOptions(
            header=target_options.header,
            names=target_options.headers,
            null_strings=target_options.null_strings,
            delimiter=target_options.delimiter,
            encoding=target_options.encoding,
        )
        ahead.start(first, target_options, csv)
    return ahead
