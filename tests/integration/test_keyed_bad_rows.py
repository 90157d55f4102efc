"""upsert and merge meet what append meets: a value past the sample that needs a wider column
widens it, and under ``--on-error skip`` every kind of bad row is set aside (a value its
column cannot read, a malformed record, a NULL or non-integer key), with its file line.

The model: a keyed load under skip keeps, of the rows an append under skip keeps, those with a
key, each key's last row; its rejects are the append's, plus the rows whose key is NULL.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GOOD = "good"
CELLS = {
    GOOD: None,
    "bad_value": "abc",  # v: not an integer, fits no wider type: a bad row
    "wider": "3.5",  # v: widens integer to double precision (a bad row if v is declared)
    "null_key": "",  # k: NULL key (append keeps it; keyed sets it aside)
    "bad_key": "x7",  # k: not an integer (a bad row in both)
    "extra_field": "extra",  # a field too many: a malformed record
}


def _record(pos: int, kind: str, key: int, note: str | None = None) -> str:
    """Row ``pos`` as the file holds it: ``k,v,pos`` (``,note`` quoted when given), ``v`` a
    number unless its kind says."""
    k, v, extra = str(key), str(pos * 7), ""
    if kind == "bad_value" or kind == "wider":
        v = CELLS[kind] or v
    elif kind in ("null_key", "bad_key"):
        k = CELLS[kind] or ""
    elif kind == "extra_field":
        extra = ",extra"
    noted = "" if note is None else ',"' + note.replace('"', '""') + '"'
    return f"{k},{v},{pos}{noted}{extra}"


def write_rows(path: Path, kinds: list[str], keys: list[int]) -> Path:
    """``k,v,pos`` rows: ``pos`` is the row's position, ``v`` a number unless its kind says."""
    lines = ["k,v,pos", *map(_record, itertools.count(), kinds, keys)]
    path.write_text("\n".join(lines) + "\n")
    return path


def rejects(db, path: Path, table: str) -> list[tuple[int, str | None, str]]:
    return [
        (r["line"], r["column_name"], r["raw"])
        for r in db.fetch(
            "SELECT r.line, r.column_name, r.raw FROM pgingest.rejects r"
            " JOIN pgingest.files f ON f.id = r.file_id"
            " WHERE f.path = $1 AND f.table_name = $2 ORDER BY r.line",
            str(path.resolve()),
            table,
        )
    ]


def table_rows(db, table: str) -> list[tuple[str | None, str | None, int]]:
    return [
        (r["k"], r["v"], r["pos"])
        for r in db.fetch(f'SELECT k::text, v::text, pos FROM "{db.schema}"."{table}"')
    ]


def write_noted_rows(
    path: Path, kinds: list[str], keys: list[int], notes: list[str]
) -> dict[int, str]:
    """:func:`write_rows` with a fourth column, ``note``, quoted, whose text may hold line
    breaks, quotes and commas: a record then spans several lines. Returns each record's text
    as the file has it, by the line it starts on."""
    records: dict[int, str] = {}
    line = 2
    for pos, (kind, key, note) in enumerate(zip(kinds, keys, notes, strict=True)):
        records[line] = _record(pos, kind, key, note)
        line += records[line].count("\n") + 1
    path.write_text("\n".join(["k,v,pos,note", *records.values()]) + "\n")
    return records


def check_against_append(
    db, load, path: Path, mode: str, table: str, records: dict[int, str] | None = None, **options
) -> None:
    """Load ``path`` with append and with ``mode`` (key ``k``) under skip; the keyed table is
    the model's, and its rejects are the append's plus the NULL keys. ``records``: each
    record's text by its first line, when a record may span lines (else the file's lines)."""
    appended = load(path, table=f"{table}_a", on_error="skip", **options)
    assert appended.ok, appended.failed
    assert appended.files[0].status == "loaded"
    kept_by_append = table_rows(db, f"{table}_a")
    append_rejects = rejects(db, path, f"{table}_a")
    keyed = load(path, table=f"{table}_k", mode=mode, pk="k", on_error="skip", **options)
    assert keyed.files[0].status == "loaded"
    assert keyed.ok, keyed.failed
    last: dict[str, tuple[str | None, str | None, int]] = {}
    null_keys = []
    starts = sorted(records) if records is not None else None  # each record's first line
    for row in sorted(kept_by_append, key=lambda r: r[2]):
        if row[0] is None:  # (pos's record: header is line 1)
            null_keys.append((starts[row[2]] if starts else row[2] + 2, "k"))
        else:
            last[row[0]] = row
    assert sorted(table_rows(db, f"{table}_k"), key=lambda r: r[2]) == sorted(
        last.values(), key=lambda r: r[2]
    )
    types = "SELECT data_type FROM information_schema.columns WHERE table_schema = $1"
    types += " AND table_name = $2 AND column_name = 'v'"
    assert db.val(types, db.schema, f"{table}_k") == db.val(types, db.schema, f"{table}_a")
    got = rejects(db, path, f"{table}_k")
    expected = sorted([(line, column) for line, column, _raw in append_rejects] + null_keys)
    assert [(line, "k" if column == "k" else column) for line, column, _raw in got] == expected
    # Each reject keeps the record as the file has it.
    raw_by_line = records or dict(enumerate(path.read_text().splitlines(), start=1))
    assert all(raw == raw_by_line[line] for line, _column, raw in got), got
    assert keyed.files[0].rejects == len(got)
    if records is not None:  # and each kept row its note, line breaks and quotes in it
        notes = "SELECT pos, note FROM {} ORDER BY pos"
        appended_notes = dict(db.fetch(notes.format(f'"{db.schema}"."{table}_a"')))
        keyed_notes = db.fetch(notes.format(f'"{db.schema}"."{table}_k"'))
        assert all(appended_notes[pos] == note for pos, note in keyed_notes), keyed_notes


@pytest.mark.parametrize("mode", ["upsert", "merge"])
def test_keyed_skip_sets_aside_what_append_does_over_several_routes(tmp_path, load, db, mode):
    """A file over 1 MiB (several routes, several batches): every kind of bad row, spread."""
    count = 60_000
    kinds = [GOOD] * count
    for pos, kind in [
        (5, "bad_value"),
        (7_000, "extra_field"),
        (20_000, "null_key"),
        (20_001, "bad_key"),
        (41_000, "bad_value"),
        (59_999, "extra_field"),
    ]:
        kinds[pos] = kind
    keys = [pos % 45_000 for pos in range(count)]  # keys repeat: last occurrence wins
    path = write_rows(tmp_path / "spread.csv", kinds, keys)
    assert path.stat().st_size > 1 << 20
    check_against_append(db, load, path, mode, "t", batch_size=5_000)


@pytest.mark.parametrize("mode", ["upsert", "merge"])
def test_keyed_widens_a_column_past_the_sample(tmp_path, load, db, mode):
    """Found by hand: ``3.5`` past the sample failed the keyed file (append widened)."""
    kinds = [GOOD] * 3_000
    kinds[2_500] = "wider"
    path = write_rows(tmp_path / "wider.csv", kinds, list(range(3_000)))
    report = load(path, table="w", mode=mode, pk="k", sample_rows=100, batch_size=500)
    assert report.ok, report.failed
    assert db.val("SELECT v::text FROM w WHERE k = 2500") == "3.5"
    assert db.val("SELECT sum(v) FROM w") == sum(p * 7 for p in range(3_000)) - 2_500 * 7 + 3.5
    changes = db.fetch(
        "SELECT change, old_type, new_type FROM pgingest.schema_changes"
        " WHERE table_schema = $1 AND table_name = 'w' AND column_name = 'v'",
        db.schema,
    )
    assert [tuple(c) for c in changes] == [("alter_type", "integer", "double precision")]
    # The file's result says so too (the restart for the wider table had dropped it: the
    # manifest knew, the summary and --json did not).
    said = report.files[0].schema_changes
    assert len(said) == 1, said
    assert "v" in said[0], said
    assert "double precision" in said[0], said


def test_keyed_without_skip_still_fails_the_file_naming_the_line(tmp_path, load, db):
    kinds = [GOOD] * 300
    kinds[200] = "bad_value"
    path = write_rows(tmp_path / "bad.csv", kinds, list(range(300)))
    report = load(path, table="b", mode="upsert", pk="k", sample_rows=100, batch_size=50)
    assert not report.ok
    assert "bad.csv: line 202, column v" in (report.files[0].error or "")
    assert db.count("b") == 0


_TABLES = itertools.count()
KEYED_EXAMPLES = settings(
    max_examples=int(os.environ.get("PGINGEST_KEYED_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KINDS = st.sampled_from([GOOD] * 12 + [k for k in CELLS if k != GOOD])  # mostly good rows


@KEYED_EXAMPLES
@given(
    mode=st.sampled_from(["upsert", "merge"]),
    rows=st.lists(
        st.tuples(
            KINDS,
            st.integers(0, 30),
        ),
        min_size=1,
        max_size=300,
    ),
    batch_size=st.sampled_from([7, 50, 1_000]),
)
def test_keyed_skip_is_append_skip_then_last_row_per_key(
    tmp_path_factory, load, db, mode, rows, batch_size
):
    kinds, keys = [k for k, _ in rows], [key for _, key in rows]
    if all(kind != GOOD for kind in kinds[:1]):
        kinds[0] = GOOD  # a first row to type the columns by
    table = f"p{next(_TABLES)}"
    path = write_rows(tmp_path_factory.mktemp(table) / "data.csv", kinds, keys)
    # Declared types: a stray value is a bad row, never a reason to widen or turn text (how
    # many misfit in a batch decides that, and routing makes other batches than append's).
    types = {"k": "integer", "v": "integer"}
    check_against_append(db, load, path, mode, table, batch_size=batch_size, types=types)


@KEYED_EXAMPLES
@given(
    mode=st.sampled_from(["upsert", "merge"]),
    rows=st.lists(
        st.tuples(
            KINDS,
            st.integers(0, 30),
            st.text(alphabet=st.sampled_from(list('ab ,"\n\té')), max_size=10),
        ),
        min_size=1,
        max_size=200,
    ),
    batch_size=st.sampled_from([7, 50, 1_000]),
)
def test_keyed_skip_with_line_breaks_in_values_is_append_skip_then_last_row_per_key(
    tmp_path_factory, load, db, mode, rows, batch_size
):
    """The same model with records that span lines (a quoted note holding line breaks, quotes
    and commas): the server counts a line break inside a value as a line, so a refused row's
    line must be found record by record (an NDJSON test found a good row set aside for a bad
    one where it was not)."""
    kinds = [k for k, _, _ in rows]
    keys = [key for _, key, _ in rows]
    notes = [note for _, _, note in rows]
    if kinds[0] != GOOD:
        kinds[0] = GOOD  # a first row to type the columns by
    table = f"n{next(_TABLES)}"
    path = tmp_path_factory.mktemp(table) / "data.csv"
    records = write_noted_rows(path, kinds, keys, notes)
    types = {"k": "integer", "v": "integer", "note": "text"}
    # (The delimiter given: with most of a tiny sample's records malformed and a tab in each
    # quoted note, the sniffer took the tab; how rows are kept is this test's subject.)
    check_against_append(
        db,
        load,
        path,
        mode,
        table,
        records=records,
        batch_size=batch_size,
        types=types,
        delimiter=",",
    )


@pytest.mark.parametrize("mode", ["upsert", "merge"])
def test_keyed_parquet_widens_an_existing_column_and_skips_what_fits_no_type(
    tmp_path, load, db, mode
):
    """Found by hand: an int64 value past an existing integer column failed a keyed Parquet
    file (append widens it to bigint); a text value in a declared integer column is a reject."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    db.execute(f'CREATE TABLE "{db.schema}".p (k int PRIMARY KEY, v int, s int)')
    path = tmp_path / "wide.parquet"
    table = pa.table(
        {
            "k": pa.array([1, 2, 3, None], pa.int64()),
            "v": pa.array([10, 2**40, 30, 40], pa.int64()),
            "s": pa.array(["1", "2", "many", "4"]),
        }
    )
    pq.write_table(table, path)
    report = load(path, table="p", mode=mode, on_error="skip", types={"s": "integer"})
    assert report.ok, report.failed
    assert db.rows("p", order_by="k") == [(1, 10, 1), (2, 2**40, 2)]
    assert (
        db.val(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = $1"
            " AND table_name = 'p' AND column_name = 'v'",
            db.schema,
        )
        == "bigint"
    )
    kept = rejects(db, path, "p")
    assert [(line, column) for line, column, _raw in kept] == [(3, "s"), (4, "k")]  # rows


def _faulted_file(tmp_path: Path) -> tuple[Path, dict[int, tuple[str, int]], list[int]]:
    """A keyed file over several routes: keys repeat, ``3.5`` past the sample widens ``v``,
    and two bad values are rejects; with the table it must give (key -> v text, pos) and
    the reject lines."""
    count = 60_000
    kinds = [GOOD] * count
    for pos, kind in [(9_000, "bad_value"), (45_000, "wider"), (52_000, "bad_value")]:
        kinds[pos] = kind
    keys = [pos % 40_000 for pos in range(count)]
    path = write_rows(tmp_path / "faulted.csv", kinds, keys)
    expected: dict[int, tuple[str, int]] = {}
    for pos, (kind, key) in enumerate(zip(kinds, keys, strict=True)):
        if kind == "bad_value":
            continue
        expected[key] = ("3.5" if kind == "wider" else str(pos * 7), pos)
    return path, expected, [9_002, 52_002]


def _check_faulted(db, path: Path, expected: dict[int, tuple[str, int]], bad: list[int]) -> None:
    got = {
        int(r["k"]): (r["v"], r["pos"])
        for r in db.fetch(f'SELECT k, v::text AS v, pos FROM "{db.schema}".f')
    }
    assert got == expected  # no row lost, none twice, every value the file's last
    assert [line for line, _c, _r in rejects(db, path, "f")] == bad
    state = db.fetch(
        "SELECT f.status, (SELECT sum(b.rows) FROM pgingest.file_batches b"
        " WHERE b.file_id = f.id) AS rows FROM pgingest.files f WHERE f.path = $1",
        str(path.resolve()),
    )
    assert [(s["status"], s["rows"]) for s in state] == [("success", 60_000 - len(bad))]


def test_keyed_widening_and_skipping_survive_cut_connections(tmp_path, db):
    """A dropped connection before and after the widening restart: the keyed file is retried
    after its committed batches and holds exactly each key's last row."""
    from test_retries import CuttingProxy, run_load, via_proxy

    path, expected, bad = _faulted_file(tmp_path)
    size = path.stat().st_size
    proxy = CuttingProxy(db.dsn)
    try:
        proxy.cut_after(size // 3, size * 5 // 6)
        done = run_load(
            via_proxy(db.dsn, proxy.port),
            db.schema,
            str(path),
            *("--table", "f", "--mode", "upsert", "--pk", "k", "--on-error", "skip"),
            *("--sample-rows", "1000", "--batch-size", "4000", "--retry-base", "0.05"),
        )
    finally:
        proxy.close()
    assert proxy.cuts == 2
    assert done.returncode == 0, done.stderr
    assert "planned again for the wider table" in done.stderr
    _check_faulted(db, path, expected, bad)


def test_keyed_widening_and_skipping_survive_a_killed_load(tmp_path, db):
    """SIGKILL part way, then the same command again: it resumes after the committed batches
    (the widening comes after the kill) and the table is exactly the file's."""
    import sys

    from test_upsert import kill_after_batches

    path, expected, bad = _faulted_file(tmp_path)
    command = [sys.executable, "-m", "pgingest", "load", "--dsn", db.dsn, "--schema", db.schema]
    command += [str(path), "--table", "f", "--mode", "upsert", "--pk", "k"]
    command += ["--on-error", "skip", "--sample-rows", "1000", "--batch-size", "4000"]
    kill_after_batches(db, command, "f", 3)
    done = subprocess.run(
        [*command, "--internal-concurrency", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    _check_faulted(db, path, expected, bad)
