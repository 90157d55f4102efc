"""Open a file for its load: detected, opened with its reader (or taken from the read-ahead,
which opened it while the loader started), and adapted (``--transform``, a source-file
column)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from pgingest.config import LoadOptions
from pgingest.model import WORKBOOK_FORMATS, SourceInfo
from pgingest.observability.progress import FilesFound
from pgingest.pipeline.context import RunContext
from pgingest.pipeline.discover import SMALL_FILE_BYTES, csv_options
from pgingest.pipeline.readahead import excel_options
from pgingest.sources import Source, detect, open_source
from pgingest.sources.adapt import AdaptedSource, resolve_transform
from pgingest.sources.inputs import getsize


async def open_file(ctx: RunContext, path: str, options: LoadOptions) -> Source:
    """The source of ``path``, read with ``options`` (the file's own).

    Raises:
        SourceError: the file cannot be detected or opened.
    """
    csv = csv_options(options)
    if _size(path) <= SMALL_FILE_BYTES:
        info = detect(path, options.format, csv)
    else:
        info = await asyncio.to_thread(detect, path, options.format, csv)
    excel = excel_options(options)
    began = time.perf_counter()
    ahead = ctx.read_ahead
    read_ahead = (
        await asyncio.to_thread(ahead.take, path, options)
        if ahead and ahead.wants(path, options)
        else None
    )  # opened while the loader started: waited for in a thread
    if read_ahead is not None:
        source = read_ahead
    elif info.format in WORKBOOK_FORMATS and not small_enough(info):
        # A workbook's sheet is parsed whole when it is opened: that is its read stage.
        source = await asyncio.to_thread(open_source, info, csv, excel)
    else:
        source = open_source(info, csv, excel)
    ctx.events.stage("read", began)
    if options.source_file_column or options.transform is not None:
        transform = resolve_transform(options.transform) if options.transform else None
        source_file = path if options.source_file_column else None
        source = AdaptedSource(source, source_file=source_file, transform=transform)
    return source


def reader_warnings(source: Source) -> list[str]:
    """What the file's reader decided that the user should know (CSV: the encoding)."""
    return list(getattr(source, "warnings", ()))


def small_enough(info: SourceInfo) -> bool:
    """Whether a file is read in the event loop's thread (a thread hop costs more)."""
    return info.size <= SMALL_FILE_BYTES


def _size(path: str) -> int:
    try:
        return getsize(path)
    except OSError:
        return SMALL_FILE_BYTES + 1  # let detection report the problem


def files_found(paths: Sequence[str]) -> FilesFound:
    """The files to load and their bytes, for the run's progress total (0 bytes for a file
    that cannot be read: it fails)."""
    sizes = []
    for path in paths:
        try:
            sizes.append((path, getsize(path)))
        except OSError:
            sizes.append((path, 0))
    return FilesFound(len(sizes), sum(n for _, n in sizes), tuple(sizes))
