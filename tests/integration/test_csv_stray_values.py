"""One rule for a stray value wherever it is in a file (row 10 or row 300,000): a column keeps
the type most of its values have, a value that does not fit it is a bad row (per --on-error),
and the output says so; missing-value markers (NA, NULL, None, nan) are NULL in a column of
another type than text, and stay text in a text column."""

from __future__ import annotations

from pathlib import Path

import pytest

ROWS = 3000


def numbers(path: Path, replace: dict[int, str]) -> Path:
    """``id,n,country`` rows; the rows of the given file lines get another ``n``."""
    lines = ["id,n,country"] + [f"{i},{i * 7},Namibia" for i in range(2, ROWS + 2)]
    for line, value in replace.items():
        lines[line - 1] = f"{line},{value},NA"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line", [10, 2900])  # inside the sample and past it
def test_a_stray_value_is_a_bad_row_wherever_it_is(tmp_path, load, db, line):
    src = numbers(tmp_path / f"stray{line}.csv", {line: "abc"})
    stop = load(src, table="t", sample_rows=1000, batch_size=500)
    assert not stop.ok
    assert f"line {line}, column n" in stop.failed[0].error or f"line {line}:" in (
        stop.failed[0].error
    )
    assert "abc" in stop.failed[0].error
    skip = load(src, table="t", sample_rows=1000, batch_size=500, on_error="skip", force=True)
    assert skip.ok, skip.failed
    assert skip.files[0].rejects == 1
    assert db.types("t")["n"] == "integer"
    assert db.count("t") == ROWS - 1


def test_the_output_says_a_stray_value_in_the_sample(tmp_path, load, db):
    src = numbers(tmp_path / "said.csv", {10: "abc"})
    report = load(src, on_error="skip")
    assert report.ok
    warnings = report.files[0].warnings
    assert any("column n holds integer values" in w and "'abc'" in w for w in warnings)


def test_words_by_nature_make_a_text_column_past_the_sample_too(tmp_path, load, db):
    # numbers in the 500 sampled rows, codes in most of the batch that holds the rest
    lines = ["id,code"] + [f"{i},{i}" for i in range(500)] + [f"{i},A{i}" for i in range(500, 3000)]
    src = tmp_path / "codes.csv"
    src.write_text("\n".join(lines) + "\n")
    report = load(src, sample_rows=500, batch_size=10_000)
    assert report.ok, report.failed
    assert db.types("codes")["code"] == "text"
    assert db.count("codes") == 3000


@pytest.mark.parametrize("line", [10, 2900])
def test_missing_value_markers_are_null_in_a_typed_column_and_text_in_a_text_one(
    tmp_path, load, db, line
):
    markers = {line: "NA", line + 1: "NULL", line + 2: "None", line + 3: "nan", line + 4: "N/A"}
    src = numbers(tmp_path / f"markers{line}.csv", markers)
    report = load(src, table="m", sample_rows=1000, batch_size=500)
    assert report.ok, report.failed
    assert db.types("m")["n"] == "integer"
    assert db.val("SELECT count(*) FROM m WHERE n IS NULL") == 5
    # the text NA in a text column is Namibia's code, not a missing value
    assert db.val("SELECT count(*) FROM m WHERE country = 'NA'") == 5
    assert db.count("m") == ROWS
    assert any("read as NULL" in w for w in report.files[0].warnings), report.files[0].warnings


def test_markers_are_null_in_an_upsert_too(tmp_path, load, db):
    src = numbers(tmp_path / "keyed.csv", {20: "NA", 21: "NULL"})
    report = load(src, table="k", mode="upsert", pk=("id",), sample_rows=1000)
    assert report.ok, report.failed
    assert db.val("SELECT count(*) FROM k WHERE n IS NULL") == 2
    assert db.val("SELECT count(*) FROM k WHERE country = 'NA'") == 2
