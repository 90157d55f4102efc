"""File readers: detect what a file holds, then stream it as raw CSV bytes or Arrow batches.

Readers know nothing about PostgreSQL; they hand :mod:`pgingest.model` chunks to the loader.
"""

from pgingest.sources.base import CsvOptions, Source, open_source
from pgingest.sources.detect import detect

__all__ = ["CsvOptions", "Source", "detect", "open_source"]
