"""What every stage of a run shares: the frozen run context (pool, run id, contract,
the tables' columns as last seen), the run's account of itself (stage timings, retries,
database errors reported), and the task of one file with its resolved options."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pgingest.config import LoadOptions, redact_dsn
from pgingest.errors import PgIngestError
from pgingest.model import ColumnSpec
from pgingest.observability.progress import DbError, Reporter, Retry
from pgingest.pg.errors import classify, describe, is_driver_error
from pgingest.pg.retry import RetryPolicy, retry
from pgingest.pg.stall import StallMonitor
from pgingest.pipeline.discover import default_table_name
from pgingest.pipeline.job import RunLock, one_line
from pgingest.pipeline.readahead import ReadAhead

if TYPE_CHECKING:
    from pgingest.schema.contract import Contract  # (--contract only: imported when read)

log = logging.getLogger("pgingest.run")
T = TypeVar("T")


class RunEvents:
    """The run's account of itself: seconds per stage, retries (counted, logged, reported)
    and the database errors reported once each."""

    def __init__(self, reporter: Reporter, policy: RetryPolicy) -> None:
        self.reporter = reporter
        self.policy = policy
        """How transient database errors are retried."""
        self.stages: dict[str, float] = {}
        self.retries = 0
        self.retried: list[tuple[datetime, Retry]] = []
        """Each retry and when it happened: recorded in the manifest with the run's end."""

    def stage(self, name: str, began: float) -> float:
        """Add the seconds since ``began`` to stage ``name``; return them."""
        seconds = time.perf_counter() - began
        self.stages[name] = self.stages.get(name, 0.0) + seconds
        return seconds

    def retrying(
        self,
        exc: BaseException,
        attempt: int,
        delay: float,
        path: str,
        table: str,
        batch: int | None,
        conn: Any = None,
    ) -> None:
        """Count, log and report a retry about to happen, saying in plain words what
        happened (``connection lost during the COPY of batch 2``), not the driver's text."""
        self.retries += 1
        if batch is not None:
            what = f"the COPY of batch {batch}"
        elif path:
            what = f"the load of {path}"
        else:
            what = "connecting"
        error = describe(exc, what, conn)
        error_class = classify(exc, conn)
        log.info(
            "retry %d/%d in %.1f s of %s%s: %s",
            attempt,
            self.policy.max_retries,
            delay,
            path or "connecting",
            f" batch {batch}" if batch is not None else "",
            error,
            extra={"file": path or None, "table": table or None, "batch": batch},
        )
        log.debug("the driver said: %s", one_line(redact_dsn(str(exc))))
        event = Retry(path, table, batch, attempt, delay, error_class, error)
        self.retried.append((datetime.now(UTC), event))
        self.reporter.retry(event)

    def db_error(self, exc: BaseException, path: str | None) -> None:
        """Report a database error once, where it is first caught."""
        cause = exc.__cause__ if isinstance(exc, PgIngestError) and exc.__cause__ else exc
        if getattr(cause, "_pgingest_reported", False) or not is_driver_error(cause):
            return
        # An exception type without a __dict__ cannot be marked: it may count twice.
        with contextlib.suppress(AttributeError):
            cause._pgingest_reported = True  # type: ignore[attr-defined]
        self.reporter.db_error(DbError(classify(cause), path))

    async def with_retries(self, step: Callable[[], Awaitable[T]], path: str = "") -> T:
        """Run ``step``, again after a retryable error (a fresh connection each time:
        ``step`` acquires its own)."""
        return await retry(
            step,
            self.policy,
            on_error=lambda exc: self.db_error(exc, path or None),
            on_retry=lambda attempt, delay, exc: self.retrying(exc, attempt, delay, path, "", None),
        )


@dataclass(frozen=True)
class RunContext:
    """What the files of a started run share; made once the pool is sized and the run
    recorded, never changed after (the two caches below only learn)."""

    options: LoadOptions
    """The run's options (a file's own, with its folder's overrides, are in its task)."""
    pool: Any
    """The run's connection pool (an ``asyncpg.Pool``)."""
    run_id: int | None
    """The manifest's id of this run (``None`` for a dry run)."""
    server_version: int
    """The server's ``server_version_num``."""
    workers_cap: int | None
    """Batch workers per file when the server allows fewer connections than asked."""
    events: RunEvents
    contract: Contract | None
    """The run's contract (``--contract``), if any."""
    run_lock: RunLock | None
    """The run's own connection, holding the run's lock while it lives."""
    read_ahead: ReadAhead | None
    """The run's first file, opened (and hashed) while the loader started."""
    application_name: str
    """Every session of this run says it is this run's: a lock held by a backend with this
    name that no connection of the run owns any more is an orphan's, freed."""
    stalls: StallMonitor
    """Watches each batch's progress (``--stall-timeout``)."""
    tables: dict[tuple[str, str], list[ColumnSpec]] = field(default_factory=dict)
    """The target tables' columns as last read or made, by (schema, name)."""
    not_header_only: set[tuple[str, str]] = field(default_factory=set)
    """Tables of text columns known not to be made by a header-only file (no retype)."""

    @property
    def reporter(self) -> Reporter:
        """Where progress goes."""
        return self.events.reporter


@dataclass(frozen=True)
class FileTask:
    """One file to load, with the options that apply to it (its folder's or source's
    overrides resolved) and the table it loads into."""

    path: str
    options: LoadOptions

    @property
    def table_name(self) -> str:
        """The table's name (the file's own name normalized, unless the options name one).

        Raises:
            ConfigError: no valid identifier can be made of the file's name.
        """
        return self.options.table or default_table_name(self.path)

    @property
    def qualified(self) -> str:
        """``schema.table`` of the target."""
        return f"{self.options.schema}.{self.table_name}"


def workers_per_file(options: LoadOptions, cap: int | None = None) -> int:
    """Batches of one file in flight at once: ``--internal-concurrency``, one with
    ``--txn file``, at most ``cap`` when the server allows fewer connections."""
    if options.txn == "file":
        return 1
    workers = max(1, options.internal_concurrency)
    return min(workers, cap) if cap else workers


@dataclass(frozen=True, slots=True)
class JoinedRun:
    """A worker's part in a run another process recorded (``--workers``): the run's id, and
    which of how many workers this one is (it starts at its own share of the files)."""

    run_id: int
    index: int
    count: int
