"""Hypothesis strategies: CSV files written by Python's ``csv`` module in several dialects,
and records that break RFC 4180 the way real exporters do; and Python's reading of them."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from hypothesis import strategies as st

SPECIAL = ['"', "'", ",", ";", "\t", "|", "\r", "\n", "\r\n", " ", "\\", ".", "\\."]
TEXT = st.lists(
    st.one_of(
        st.sampled_from(SPECIAL),
        st.text(
            st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
            min_size=1,
            max_size=3,
        ),
        st.sampled_from(["é", "日本", "😀", "\ufeff", "a", "b", "5", "NA"]),
    ),
    max_size=5,
).map("".join)


@dataclass(frozen=True)
class Written:
    """A generated file: its bytes and how it was written."""

    data: bytes
    delimiter: str
    quote: str
    newline: str
    width: int


@st.composite
def csv_files(draw: st.DrawFn, malformed: bool = True, max_rows: int = 12) -> Written:
    """Bytes of a CSV file (header first), written by csv.writer, some records malformed."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    quote = draw(st.sampled_from(['"', '"', "'"]))
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    width = draw(st.integers(1, 4))
    header = [f"c{i}" for i in range(width)]
    out = io.StringIO(newline="")
    writer = csv.writer(
        out, delimiter=delimiter, quotechar=quote, lineterminator=newline, quoting=quoting
    )
    writer.writerow(header)
    for _ in range(draw(st.integers(0, max_rows))):
        kind = draw(st.sampled_from(["ok", "ok", "ok", "bad", "blank"] if malformed else ["ok"]))
        if kind == "blank":
            out.write(newline)
            continue
        values = draw(st.lists(TEXT, min_size=width, max_size=width))
        if kind == "ok":
            writer.writerow(values)
            continue
        fields = []
        for value in values:
            how = draw(st.sampled_from(["ok", "bare", "unescaped"]))
            plain = "".join(c for c in value if c not in (delimiter, "\r", "\n", quote)) or "x"
            if how == "bare":  # a quote inside an unquoted field, not at its start
                at = draw(st.integers(1, len(plain)))
                fields.append(plain[:at] + quote + plain[at:])
            elif how == "unescaped":  # a lone quote inside a quoted field
                # (text after it, else the quote doubles the closing one and the field never
                # closes: Python's csv would take the rest of the file into it, pgingest sets
                # that line aside; tested on its own)
                at = draw(st.integers(0, len(plain) - 1))
                fields.append(quote + plain[:at] + quote + plain[at:] + quote)
            else:
                one = io.StringIO(newline="")
                csv.writer(
                    one, delimiter=delimiter, quotechar=quote, lineterminator="", quoting=quoting
                ).writerow([value])
                fields.append(one.getvalue())
        out.write(delimiter.join(fields) + newline)
    bom = "\ufeff" if draw(st.booleans()) else ""
    return Written((bom + out.getvalue()).encode("utf-8"), delimiter, quote, newline, width)


def python_read(
    data: bytes, delimiter: str, quote: str, *, file: bool = False
) -> list[tuple[int, list[str]]]:
    """What Python's csv module reads: each record with the line it starts on (lines counted
    by LF, as pgingest names them), blank lines left out. ``file``: a BOM at the start is the
    file's encoding mark, not data."""
    text = data.decode("utf-8")
    if file:
        text = text.removeprefix("\ufeff")
    rows: list[tuple[int, list[str]]] = []
    consumed = 0

    def lines():  # physical lines as the csv module takes them (it never reads ahead)
        nonlocal consumed
        for physical in io.StringIO(text, newline=""):
            consumed += physical.count("\n")
            yield physical

    reader = csv.reader(lines(), delimiter=delimiter, quotechar=quote, strict=False)
    start = 1
    for row in reader:
        if row:
            rows.append((start, row))
        start = 1 + consumed
    return rows
