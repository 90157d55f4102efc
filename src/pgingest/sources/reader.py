"""Open a detected file with the reader of its format.

The readers import :mod:`pgingest.sources.base`; only this module imports them (each one lazily,
so that a run that reads no Parquet or workbook never imports pyarrow's Parquet or the Excel
reader), which keeps the package free of import cycles.
"""

from __future__ import annotations

from pgingest.model import WORKBOOK_FORMATS, SourceInfo
from pgingest.sources.base import CsvOptions, ExcelOptions, Source


def open_source(
    info: SourceInfo, csv: CsvOptions | None = None, excel: ExcelOptions | None = None
) -> Source:
    """Open a detected file for reading: one reader module per format.

    Args:
        info: what :func:`pgingest.sources.detect` found.
        csv: reading options for CSV/TSV (ignored for other formats, but for NDJSON's
            ``skip_bad_rows``). ``header`` given here overrides the detected one.
        excel: which sheet of a workbook, and its header row (ignored for other formats).

    Returns:
        A :class:`Source` for the file's format.

    Raises:
        SourceError: the file cannot be opened or its first record read.
    """
    if info.format == "parquet":
        from pgingest.sources.parquet import ParquetSource

        return ParquetSource(info)
    if info.format in WORKBOOK_FORMATS:
        from pgingest.sources.excel import ExcelSource

        return ExcelSource(info, excel)
    if info.format == "ndjson":
        from pgingest.sources.ndjson import NdjsonSource

        return NdjsonSource(info, skip_bad_rows=csv is not None and csv.skip_bad_rows)
    from pgingest.sources.small import SMALL_CSV_BYTES, SmallCsvSource

    if info.size <= SMALL_CSV_BYTES and info.compression == "none":
        return SmallCsvSource(info, csv if csv is not None else CsvOptions())
    from pgingest.sources.csv import CsvSource

    return CsvSource(info, csv if csv is not None else CsvOptions())
