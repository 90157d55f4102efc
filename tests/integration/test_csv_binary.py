"""Property: a CSV file loaded through the binary path (parsed client-side, binary COPY) gives
the table the text path (the server parsing the CSV) gives, value by value, on a real
PostgreSQL: the same types, the same rows, the same rejects, the same failures; whatever the
spellings (leading zeros, hex, odd NaN and infinity, overflow, year 0, an hour without
minutes, odd booleans, quotes, line breaks), including values past the sample that misfit."""

from __future__ import annotations

import csv
import io
import itertools

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pgingest.pg import copy
from pgingest.pipeline.write import batches, typed

COUNTER = itertools.count()

SPELLINGS = {
    "int": st.one_of(
        st.integers(-(2**31), 2**31 - 1).map(str),
        st.integers(-(2**63), 2**63 - 1).map(str),
        st.sampled_from(["007", "-0", "+5", " 5", "5 ", "0x1F", "0X10", "1_000", "1e3", "２"]),
        st.sampled_from([str(2**31), str(-(2**31) - 1), str(2**63), "99999999999999999999"]),
    ),
    "float": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.17g}"),
        st.sampled_from(
            ["NaN", "nan", "-nan", "+nan", "inf", "-Infinity", "INF", "+inf", "1e400", "-1e400"]
        ),
        st.sampled_from(["1e-400", "4e-320", "0", "-0", "0.0e5", ".5", "5.", " 1.5", "0x1p3"]),
    ),
    "date": st.one_of(
        st.dates().map(lambda d: d.isoformat()),
        st.sampled_from(["0000-01-01", "2026-02-30", " 2026-01-02", "2026-1-2", "20260102"]),
    ),
    "ts": st.one_of(
        st.datetimes().map(lambda d: d.isoformat(sep=" ")),
        st.datetimes().map(lambda d: d.isoformat(timespec="minutes")),
        st.sampled_from(
            [
                "2026-01-02 03",
                "2026-01-02T03",
                "2026-01-02 24:00:00",
                "2026-01-02 23:59:60",
                "2026-01-02 03:04:05.1234567",
                "2026-01-02",
                " 2026-01-02 03:04",
            ]
        ),
    ),
    "tstz": st.one_of(
        st.datetimes().map(lambda d: d.isoformat(sep=" ") + "Z"),
        st.sampled_from(["+01", "-0530", "+05:30", "-15:59", "z", ""]).map(
            lambda z: "2026-01-02 03:04:05" + z
        ),
    ),
    "bool": st.sampled_from(
        ["true", "false", "t", "F", "yes", "NO", "on", "Off", "1", "0", "y", "tr", "TRUE", " t"]
    ),
    "text": st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
        max_size=6,
    ),
}


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """A CSV file of typed-looking columns (a row number first); and its newline."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    kinds = draw(st.lists(st.sampled_from(sorted(SPELLINGS)), min_size=1, max_size=4))
    out = io.StringIO(newline="")
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    writer = csv.writer(out, lineterminator=newline, quoting=quoting)
    writer.writerow(["rn", *(f"{kind}_{i}" for i, kind in enumerate(kinds))])
    for rn in range(draw(st.integers(1, 12))):
        row = [str(rn)]
        for kind in kinds:
            # an unquoted empty field (NULL) or a value; QUOTE_ALL quotes empties too
            row.append(draw(st.none() | SPELLINGS[kind]) or "")
        writer.writerow(row)
    return out.getvalue().encode("utf-8"), newline


def table_as_text(db, table: str) -> tuple[dict[str, str], list[tuple[str | None, ...]]]:
    """The table's column types, and its rows with every value as PostgreSQL prints it."""
    types = db.types(table)
    columns = ", ".join(f'"{c}"::text' for c in types)
    rows = db.fetch(f'SELECT {columns} FROM "{db.schema}"."{table}" ORDER BY "rn"::bigint')
    return types, [tuple(r) for r in rows]


def rejects(db, path) -> list[tuple[int, str | None]]:
    rows = db.fetch(
        "SELECT r.line, r.raw FROM pgingest.rejects r JOIN pgingest.files f"
        " ON f.id = r.file_id WHERE f.path = $1 ORDER BY r.line",
        str(path),
    )
    return [(r[0], r[1]) for r in rows]


def binary_copies(monkeypatch) -> list[str]:
    """The tables binary COPY writes to from now on, in order (a list that grows)."""
    sent: list[str] = []
    real = copy.copy_arrow

    async def counting(*args, **kwargs):
        sent.append(args[2])
        return await real(*args, **kwargs)

    monkeypatch.setattr(copy, "copy_arrow", counting)
    return sent


def load_both(tmp_path, load, db, monkeypatch, name: str, data: bytes, **options):
    """Load ``data`` through the text path, then the binary path, each into its own table
    (``{name}_t``, ``{name}_b``, made first by ``create`` if given); return both outcomes and
    the tables binary COPY wrote to."""
    create = options.pop("create", None)
    sent_binary = binary_copies(monkeypatch)
    outcome = {}
    for binary in (False, True):
        monkeypatch.setattr(batches, "BINARY_CSV", binary)
        table = f"{name}_{'b' if binary else 't'}"
        if create:
            db.execute(create.format(table=table))
        path = tmp_path / f"{table}.csv"
        path.write_bytes(data)
        report = load(path, table=table, **options)
        loaded = table_as_text(db, table) if report.ok else None
        outcome[binary] = (report.ok, loaded, rejects(db, path), report.files[0].rows)
    return outcome[False], outcome[True], sent_binary


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    written=csv_files(),
    on_error=st.sampled_from(["stop", "skip"]),
    sample_rows=st.sampled_from([2, 1000]),
)
def test_binary_path_loads_what_the_text_path_loads(
    tmp_path, load, db, monkeypatch, written, on_error, sample_rows
):
    data, _newline = written
    n = next(COUNTER)
    options = {"on_error": on_error, "sample_rows": sample_rows}
    text, binary, sent = load_both(tmp_path, load, db, monkeypatch, f"p{n}", data, **options)
    event("sent as binary" if sent else "sent as text")
    assert binary == text


def test_a_typed_file_goes_as_binary_and_reads_back_as_the_text_path_reads_it(
    tmp_path, load, db, monkeypatch
):
    """The property above is not vacuous: a file of every supported type is sent as binary
    COPY (and only with the binary path on), and its values read back as the text path's."""
    data = (
        b"rn,i,b,f,d,ts,tz,flag,s\n"
        b"1,42,9000000000,1.5,2026-01-02,2026-01-02 03:04:05.5,"
        b'2026-01-02 03:04:05+01,true,"a,""b"""\n'
        b'2,,,-inf,,2026-01-02T03:04,,f,""\n'
        b'3,-7,-1,NaN,0001-01-01,2026-01-02,2026-01-02 03:04:05Z,yes,"line\nbreak"\n'
    )
    text, binary, sent = load_both(tmp_path, load, db, monkeypatch, "typed", data)
    assert sent == ["typed_b"]
    assert binary[0]
    types, rows = binary[1]
    assert list(types.values()) == [
        "integer",
        "integer",
        "bigint",
        "double precision",
        "date",
        "timestamp without time zone",
        "timestamp with time zone",
        "boolean",
        "text",
    ]
    assert binary == text
    assert rows[1][-1] == ""  # quoted empty: empty text
    assert rows[1][1] is None  # unquoted empty: NULL


@pytest.mark.parametrize(
    ("why", "value"),
    [
        ("hex, which PostgreSQL 15 refuses", "0x1F"),
        ("an hour without minutes, which PostgreSQL refuses", "2026-01-02 03"),
        ("an overflow pyarrow reads as infinity", "1e400"),
        ("an underflow pyarrow reads as zero", "1e-400"),
        ("year 0, which pyarrow reads as 1 BC", "0000-01-01"),
    ],
)
def test_values_pyarrow_reads_otherwise_go_as_text(tmp_path, load, db, monkeypatch, why, value):
    """Each guard of the binary path, shown by a value past the sample that pyarrow reads but
    PostgreSQL 15 refuses: the chunk goes as text and the server refuses the value (the file
    stops at its line), where binary COPY would have loaded another value than the file's."""
    kind = {"0x1F": "1", "1e400": "1.5", "1e-400": "1.5", "0000-01-01": "2026-01-02"}.get(
        value, "2026-01-02 03:04"
    )
    rows = [f"{i},{kind}" for i in range(3)] + [f"3,{value}"]
    data = ("rn,v\n" + "\n".join(rows) + "\n").encode()
    text, binary, _sent = load_both(tmp_path, load, db, monkeypatch, "guard", data, sample_rows=2)
    assert binary == text, why
    if value == "0x1F" and int(db.val("SHOW server_version_num")) >= 160000:
        assert text[0], why  # PostgreSQL 16 reads hexadecimal integers: 31
    else:
        assert not text[0], why


def test_numeric_with_a_scale_goes_as_binary_where_its_digits_fit(tmp_path, load, db, monkeypatch):
    """numeric(12,2): values of at most two decimals go as binary; a value the server would
    round (1.234), or that overflows the precision (pyarrow takes it), goes as text."""
    create = "CREATE TABLE {table} (rn integer, v numeric(12,2))"
    clean = b"rn,v\n1,1.5\n2,1e2\n3,-0\n4,\n5,1234567890.12\n"
    text, binary, sent = load_both(tmp_path, load, db, monkeypatch, "num", clean, create=create)
    assert binary == text
    assert sent == ["num_b"]
    assert [v for _rn, v in text[1][1]] == ["1.50", "100.00", "0.00", None, "1234567890.12"]
    for name, value in (("round", "1.234"), ("over", "12345678901.5")):
        data = b"rn,v\n1,1.5\n2," + value.encode() + b"\n"
        text, binary, sent = load_both(
            tmp_path,
            load,
            db,
            monkeypatch,
            name,
            data,
            create=create,
            on_error="skip",
            max_errors=5,
        )
        assert binary == text, value
        assert sent == [], value


def test_after_a_chunk_goes_as_text_the_rest_of_the_file_does_too(tmp_path, load, db, monkeypatch):
    """A chunk sent as text may be refused and widen the table: a chunk encoded as binary for
    the narrower type meanwhile (by the other batch worker) would be refused as a malformed
    stream. So after one text chunk the rest of the file goes as text (one worker here, to
    see the order: binary chunks, then the one with a bigint, then only text; all loaded)."""
    rows = [f"{i},{i}" for i in range(60)]
    rows[30] = f"30,{2**40}"  # past the sample, beyond integer: the table widens to bigint
    data = ("rn,v\n" + "\n".join(rows) + "\n").encode()
    kinds = []
    real = typed.typed_payload

    def recording(text, live, state):
        payload = real(text, live, state)
        kinds.append((payload.first_line, payload.kind))
        return payload

    monkeypatch.setattr(typed, "typed_payload", recording)  # (batches imports it when used)
    options = {"sample_rows": 4, "batch_size": 10, "internal_concurrency": 1}
    text, binary, _sent = load_both(tmp_path, load, db, monkeypatch, "rest", data, **options)
    assert binary == text
    assert binary[0]
    assert binary[1][0]["v"] == "bigint"
    order = [kind for _line, kind in sorted(kinds)]
    first_text = order.index("csv")
    assert first_text > 0
    assert first_text < len(order) - 1  # chunks after the one with the bigint
    assert set(order[first_text:]) == {"csv"}
