"""File readers: detect what a file holds, then stream it as raw CSV bytes or Arrow batches.

Readers know nothing about PostgreSQL; they hand :mod:`pgingest.model` chunks to the loader.
"""

from pgingest.sources.base import CsvOptions, Source
from pgingest.sources.detect import detect
from pgingest.sources.reader import open_source

__all__ = ["CsvOptions", "Source", "detect", "open_source"]
