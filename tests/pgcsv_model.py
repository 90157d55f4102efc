"""A model of how PostgreSQL's ``COPY ... (FORMAT csv)`` reads bytes (copyfromparse.c), for
tests without a server: quotes toggle a quoted section anywhere, a doubled quote inside one is
a quote, an unquoted empty field is NULL, the first line end fixes the line-end style, a line
holding only ``\\.`` ends the data (before PostgreSQL 18)."""

from __future__ import annotations


class CopyError(Exception):
    """COPY refuses the data."""


def copy_read(data: bytes, delimiter: str = ",", quote: str = '"') -> list[list[str | None]]:
    """The rows COPY reads from ``data`` (UTF-8), every value as text, NULL as None."""
    text = data.decode("utf-8")
    d, q = delimiter, quote
    rows: list[list[str | None]] = []
    eol: str | None = None
    pos = 0
    n = len(text)
    while pos < n:
        # one line: up to a line end outside quotes
        in_quote = False
        start = pos
        end = None
        while pos < n:
            c = text[pos]
            if c == q:
                in_quote = not in_quote
            elif not in_quote and c in "\r\n":
                style = "\n"
                if c == "\r":
                    style = "\r\n" if text[pos + 1 : pos + 2] == "\n" else "\r"
                if eol is None:
                    eol = style
                elif style != eol:
                    raise CopyError("line end of another style")
                end = pos
                pos += len(style)
                break
            pos += 1
        if end is None:
            if in_quote:
                raise CopyError("unterminated CSV quoted field")
            end = pos
        line = text[start:end]
        if line == "\\.":
            break  # end-of-data marker (PostgreSQL before 18)
        rows.append(_fields(line, d, q))
    return rows


def _fields(line: str, d: str, q: str) -> list[str | None]:
    fields: list[str | None] = []
    value: list[str] = []
    quoted = saw_quote = False
    i = 0
    while i < len(line):
        c = line[i]
        if quoted:
            if c == q and line[i + 1 : i + 2] == q:
                value.append(q)
                i += 2
                continue
            if c == q:
                quoted = False
            else:
                value.append(c)
        elif c == q:
            quoted = saw_quote = True
        elif c == d:
            fields.append(_value(value, saw_quote))
            value, saw_quote = [], False
        else:
            value.append(c)
        i += 1
    fields.append(_value(value, saw_quote))
    return fields


def _value(chars: list[str], saw_quote: bool) -> str | None:
    text = "".join(chars)
    return None if not text and not saw_quote else text
