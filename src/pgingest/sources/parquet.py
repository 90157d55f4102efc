"""Read Parquet files: column names, a typed sample, and a stream of Arrow record batches."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pgingest.errors import SourceError
from pgingest.model import ArrowChunk, Chunk, SourceInfo
from pgingest.sources.base import one_line
from pgingest.sources.inputs import is_virtual, open_input

__all__ = ["ParquetSource"]

_SAMPLE_BATCH_ROWS = 65_536
"""Rows per batch while reading a sample (pyarrow's default batch size)."""


class ParquetSource:
    """A Parquet file opened for reading (see :class:`pgingest.sources.Source`)."""

    def __init__(self, info: SourceInfo) -> None:
        """Open the file and read its footer.

        Raises:
            SourceError: the file cannot be opened or is not valid Parquet.
        """
        self.info = info
        self.warnings: list[str] = []
        self._path = info.path
        try:
            # Buffered column reads without pre-buffering: measured 217 MB peak RSS for a 2M-row
            # file where the defaults (whole row-group pre-buffer, threads) peaked at 370-590 MB.
            # A remote object is read by ranges: the footer, then each column chunk.
            source = open_input(info.path) if is_virtual(info.path) else info.path
            self._file = pq.ParquetFile(source, buffer_size=1 << 20, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(
                f"{info.path}: corrupt Parquet file: {one_line(exc)}", path=info.path
            ) from exc

    @property
    def total_rows(self) -> int:
        """Rows in the file, from its footer (progress counts rows against it)."""
        return int(self._file.metadata.num_rows)

    def __enter__(self) -> ParquetSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def column_names(self) -> list[str]:
        """Return the column names as stored in the file."""
        return list(self._file.schema_arrow.names)

    def sample(self, max_rows: int = 50_000, *, skip_bad_records: bool = False) -> pa.Table:
        """Return the first ``max_rows`` rows, typed as in the file (``skip_bad_records``
        does not apply: Parquet has no malformed records).

        Raises:
            SourceError: the data cannot be read.
        """
        schema = self._file.schema_arrow
        batches: list[pa.RecordBatch] = []
        rows = 0
        if max_rows > 0:
            size = min(max_rows, _SAMPLE_BATCH_ROWS)
            for batch in self._batches(size):
                batches.append(batch.slice(0, max_rows - rows))
                rows += batches[-1].num_rows
                if rows >= max_rows:
                    break
        return pa.Table.from_batches(batches, schema=schema)

    def chunks(
        self, *, batch_rows: int = 50_000, batch_bytes: int = 64 << 20, raw: bool = True
    ) -> Iterator[Chunk]:
        """Stream the rows as :class:`ArrowChunk` record batches (``raw`` does not apply).

        Args:
            batch_rows: rows per batch at most.
            batch_bytes: wide rows get fewer rows per batch, so that a batch stays about this
                size in memory (estimated from the row groups' uncompressed sizes).
            raw: ignored: Parquet is always read into Arrow.

        Returns:
            An iterator of chunks; ``first_line`` is the 1-based row number.

        Raises:
            SourceError: the data cannot be read.
        """
        return self._chunks(self.batch_size(batch_rows, batch_bytes), batch_bytes)

    def batch_size(self, batch_rows: int, batch_bytes: int) -> int:
        """Rows per batch: ``batch_rows``, fewer when rows are wide (by row-group metadata)."""
        meta = self._file.metadata
        widest = 0.0
        longest = 0
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            if group.num_rows:
                widest = max(widest, group.total_byte_size / group.num_rows)
                longest = max(longest, group.num_rows)
        if widest <= 0:
            return max(1, batch_rows)
        size = max(1, min(batch_rows, int(batch_bytes / widest)))
        if size < longest:  # a row group read in even batches, not big ones and a remainder
            size = -(-longest // -(-longest // size))
        return size

    def _chunks(self, size: int, batch_bytes: int) -> Iterator[ArrowChunk]:
        line = 1
        for batch in self._batches(size):
            # The footer's sizes are encoded sizes (dictionaries make them small): slice a
            # batch that decoded larger than batch_bytes, into pieces of one size (a step
            # with a remainder made a 300-row transaction after each of 59,800 rows).
            step = batch.num_rows
            if batch.nbytes > batch_bytes:
                most = max(1, batch.num_rows * batch_bytes // batch.nbytes)  # rows that fit
                step = -(-batch.num_rows // -(-batch.num_rows // most))  # as many, even
            for start in range(0, batch.num_rows, step):
                piece = batch.slice(start, step)
                yield ArrowChunk(batch=piece, first_line=line)
                line += piece.num_rows

    def _batches(self, size: int) -> Iterator[pa.RecordBatch]:
        """The file's batches; the data must hold as many rows as the footer counts.

        Raises:
            SourceError: the data cannot be read, or holds more or fewer rows than the footer
                says (pyarrow's batch reader stops quietly where a column chunk's values end:
                a column chunk counting 0 values gave an empty "load" of an 8-row file).
        """
        read = 0
        try:
            # One decoding thread: the batch workers already use the other core, and pyarrow's
            # column threads held ~35 MB more at peak for the same speed of the whole load.
            for batch in self._file.iter_batches(batch_size=size, use_threads=False):
                if batch.num_rows:
                    read += batch.num_rows
                    yield batch
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(
                f"{self._path}: cannot read Parquet data: {one_line(exc)}", path=self._path
            ) from exc
        if read != self.total_rows:
            raise SourceError(self._miscount(read), path=self._path)

    def _miscount(self, read: int) -> str:
        """Why the ``read`` rows of the whole file are not the footer's count: the row group
        where the data ran out (batches span row groups, so the first one it fell short in)."""
        meta = self._file.metadata
        total = self.total_rows
        if read > total:
            return (
                f"{self._path}: corrupt Parquet file: its data holds {read} rows, more than"
                f" the {total} its footer counts"
            )
        start = 0
        for index in range(meta.num_row_groups):
            rows = int(meta.row_group(index).num_rows)
            if read < start + rows:
                return (
                    f"{self._path}: corrupt Parquet file: row group {index} ends after"
                    f" {read - start} of the {rows} rows its footer counts ({read} of the"
                    f" file's {total} rows read)"
                )
            start += rows
        return (
            f"{self._path}: corrupt Parquet file: its data holds {read} rows, its footer"
            f" counts {total}"
        )
