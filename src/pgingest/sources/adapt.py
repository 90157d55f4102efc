"""Wrap any reader: add a ``source_file`` column, or apply a user's transform to every batch.

The wrapper is itself a :class:`~pgingest.sources.Source` yielding Arrow chunks, so the writer
needs no change for it; a CSV file is then read into Arrow (its raw bytes cannot get a column).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pgingest.errors import ConfigError, SourceError
from pgingest.model import ArrowChunk, Chunk, SourceInfo
from pgingest.sources.base import Source

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SOURCE_FILE_COLUMN", "AdaptedSource", "resolve_transform"]

SOURCE_FILE_COLUMN = "source_file"

Transform = Callable[["pa.RecordBatch"], Any]


def resolve_transform(spec: Callable[..., Any] | str) -> Transform:
    """Return the transform function named ``module:function`` (or the callable itself).

    The module is looked for on ``sys.path``, then in the current directory (as ``python -m``
    would find it there).

    Raises:
        ConfigError: the module cannot be found or fails while it is imported (the error
            chained), or it has no such function.
    """
    if callable(spec):
        return spec
    module_name, _, attr = spec.partition(":")
    try:
        module = _import(module_name)
    except Exception as exc:
        # One line for the user; the chained exception keeps the traceback for --debug.
        raise ConfigError(
            f"--transform {spec}: cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from exc
    function: Any = module
    for part in attr.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ConfigError(f"--transform {spec}: {module_name} has no {attr}")
    if not callable(function):
        raise ConfigError(f"--transform {spec}: {attr} is not callable")
    transform: Transform = function
    return transform


def _import(name: str) -> Any:
    """Import ``name``; when its top package is nowhere on ``sys.path``, from the current
    directory too (appended, so that an installed package of that name still wins)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if exc.name != name.partition(".")[0] or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)
        return importlib.import_module(name)


class AdaptedSource:
    """A source whose batches get a ``source_file`` column and/or pass a transform."""

    def __init__(
        self, inner: Source, *, source_file: str | None = None, transform: Transform | None = None
    ) -> None:
        """Wrap ``inner``; ``source_file`` is the value of the added column."""
        self._inner = inner
        self._source_file = source_file
        self._transform = transform
        self.info: SourceInfo = inner.info

    @property
    def warnings(self) -> list[str]:
        """The wrapped reader's warnings (a CSV reader's encoding decision), if it has any."""
        return list(getattr(self._inner, "warnings", ()))

    def _apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow as pa

        if self._source_file is not None:
            value = pa.array([self._source_file] * batch.num_rows, pa.string())
            if SOURCE_FILE_COLUMN not in batch.schema.names:
                batch = batch.append_column(SOURCE_FILE_COLUMN, value)
        if self._transform is not None:
            try:
                out = self._transform(batch)
            except Exception as exc:
                raise SourceError(
                    f"{self.info.path}: the transform failed: {type(exc).__name__}: {exc}",
                    path=self.info.path,
                ) from exc
            if isinstance(out, pa.Table):
                out = out.combine_chunks().to_batches()[0] if out.num_rows else None
                if out is None:
                    return batch.slice(0, 0)
            if not isinstance(out, pa.RecordBatch):
                raise SourceError(
                    f"{self.info.path}: the transform returned {type(out).__name__},"
                    " not a pyarrow.RecordBatch",
                    path=self.info.path,
                )
            batch = out
        return batch

    def column_names(self) -> list[str]:
        """The names after the column is added and the transform applied."""
        return list(self.sample(1).schema.names)

    def sample(self, max_rows: int = 50_000, *, skip_bad_records: bool = False) -> pa.Table:
        """The inner sample (``skip_bad_records`` passed on), adapted."""
        import pyarrow as pa

        table = self._inner.sample(max_rows, skip_bad_records=skip_bad_records)
        batch = table.combine_chunks().to_batches()
        first = batch[0] if batch else pa.RecordBatch.from_pylist([], schema=table.schema)
        return pa.Table.from_batches([self._apply(first)])

    def chunks(
        self, *, batch_rows: int = 50_000, batch_bytes: int = 64 << 20, raw: bool = False
    ) -> Iterator[Chunk]:
        """The inner source's Arrow chunks, adapted (CSV is always parsed: ``raw`` is off)."""
        for chunk in self._inner.chunks(batch_rows=batch_rows, batch_bytes=batch_bytes, raw=False):
            if not isinstance(chunk, ArrowChunk):
                raise SourceError(f"{self.info.path}: expected Arrow chunks", path=self.info.path)
            batch = self._apply(chunk.batch)
            if self._transform is not None:
                # Its rows may not be the file's any more: counted in rows, a reject written
                # as CSV (not the file's lines of the reader's rows).
                yield replace(chunk, batch=batch, lines=None, records=None)
            else:
                yield replace(chunk, batch=batch)

    def close(self) -> None:
        """Close the inner source."""
        self._inner.close()
