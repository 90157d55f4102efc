"""Prometheus metrics of a load: a reporter that counts the pipeline's events.

Each run has its own registry (never the process-global one), served over HTTP while the run
lasts (``--metrics-port``) and/or written in the text exposition format when it ends
(``--metrics-file``, atomically, for node-exporter's textfile collector). Label values are
file types, statuses, table names and error classes only: no path, message or DSN.
"""

from __future__ import annotations

import resource
import threading
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile
from prometheus_client.exposition import MetricsHandler

from pgingest.model import FileResult, LoadReport
from pgingest.observability.progress import BatchDone, DbError, FilesFound, FileStarted, Retry

SERVE_POLL_SECONDS = 0.05
"""How often the metrics server's loop checks for shutdown. ``prometheus_client``'s own
``start_http_server`` polls every 0.5 s, and stopping it waited that long at the end of every
run: a tenth of a 3-second load."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: a batch commits in milliseconds (small files) to seconds (32 MiB batches)."""


def peak_rss_bytes() -> int:
    """This process's peak resident set (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MetricsReporter:
    """Counts files, batches, rows, errors and retries into a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create the metrics in ``registry`` (a new one by default)."""
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.files = Counter(
            "ingest_files_processed",
            "Files processed, by type and outcome.",
            ["file_type", "status"],
            registry=r,
        )
        self.batches = Counter(
            "ingest_batches_processed", "Batches committed.", ["file_type"], registry=r
        )
        self.rows_read = Counter(
            "ingest_rows_read",
            "Rows read from files (committed batches).",
            ["file_type"],
            registry=r,
        )
        self.rows_staged = Counter(
            "ingest_rows_staged", "Rows sent to the server by COPY.", ["file_type"], registry=r
        )
        self.rows_upserted = Counter(
            "ingest_rows_upserted",
            "Rows written to target tables (appended or upserted).",
            ["table"],
            registry=r,
        )
        self.rows_rejected = Counter(
            "ingest_rows_rejected", "Rows set aside as rejects.", ["table"], registry=r
        )
        self.latency = Histogram(
            "ingest_batch_latency_seconds",
            "Seconds from a batch's transaction start to commit.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter(
            "ingest_db_errors",
            "Database errors, retried or not, by class.",
            ["error_class"],
            registry=r,
        )
        self.retries = Counter("ingest_retries", "Transient errors retried.", registry=r)
        self.memory_peak = Gauge(
            "ingest_memory_peak_bytes",
            "Peak resident memory of the loading process.",
            registry=r,
        )
        self._formats: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- reporter events ----------------------------------------------------------------------

    def run_started(self, run_id: int) -> None:
        """Nothing to count."""

    def files_found(self, event: FilesFound) -> None:
        """Nothing to count."""

    def file_started(self, event: FileStarted) -> None:
        """Note the file's type (its result does not always carry it) and its table."""
        self._formats[event.path] = event.format
        self.rows_rejected.labels(event.table)  # exposed (as 0) for every table seen

    def batch_done(self, event: BatchDone) -> None:
        """One committed batch: O(1), no per-row work."""
        fmt = event.format
        self.batches.labels(fmt).inc()
        self.rows_read.labels(fmt).inc(event.rows)
        self.rows_staged.labels(fmt).inc(event.rows)
        self.rows_upserted.labels(event.table).inc(event.rows)
        self.latency.observe(event.latency)

    def retry(self, event: Retry) -> None:
        """Count a retry."""
        self.retries.inc()

    def db_error(self, event: DbError) -> None:
        """Count a database error by its class."""
        self.db_errors.labels(event.error_class).inc()

    def file_done(self, result: FileResult) -> None:
        """Count the file by type and outcome; refresh the memory peak."""
        fmt = result.format or self._formats.pop(result.path, None) or "unknown"
        self._formats.pop(result.path, None)
        self.files.labels(fmt, result.status).inc()
        self.memory_peak.set(peak_rss_bytes())

    def run_done(self, report: LoadReport) -> None:
        """Refresh the memory peak."""
        self.memory_peak.set(peak_rss_bytes())

    def message(self, text: str) -> None:
        """Nothing to count."""

    # -- exposition ---------------------------------------------------------------------------

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - a scrape target
        """Serve the registry on ``http://addr:port/metrics`` until :meth:`stop`."""
        httpd = ThreadingHTTPServer((addr, port), MetricsHandler.factory(self.registry))
        httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_SECONDS},
            name="pgingest-metrics",
            daemon=True,
        )
        self._server = httpd
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (when serving); returns within :data:`SERVE_POLL_SECONDS`."""
        httpd, self._server = self._server, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def write(self, path: str) -> None:
        """Write the text exposition format to ``path`` (atomically: a temporary file renamed)."""
        self.memory_peak.set(peak_rss_bytes())
        write_to_textfile(path, self.registry)
