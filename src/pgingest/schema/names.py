"""Turn file headers and file names into safe PostgreSQL identifiers, and quote identifiers.

Normalization is deterministic: the same header always gives the same column name, so the
files of a daily drop map onto the same table columns.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

from pgingest.errors import ConfigError

MAX_IDENTIFIER_BYTES = 63
"""PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated by the server."""

LINEAGE_COLUMNS: tuple[str, ...] = ("_pgingest_file_id", "_pgingest_loaded_at")
"""Columns pgingest adds to every target table; data columns never take these names."""

_HASH_CHARS = 8
"""Hex digits of the hash that keeps shortened names unique (32 bits: collisions need ~65k
long names sharing the same 54-character prefix)."""

_NOT_IDENT_CHARS = re.compile(r"[^a-z0-9_]+")


def _clean(raw: str | None) -> str:
    """Apply the character rules; may return an empty string."""
    if raw is None:
        return ""
    ascii_only = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    name = _NOT_IDENT_CHARS.sub("_", ascii_only.lower()).strip("_")
    if name[:1].isdigit():
        name = "_" + name
    return name


def _shorten(name: str, limit: int = MAX_IDENTIFIER_BYTES) -> str:
    """Fit ``name`` (ASCII) into ``limit`` characters, keeping distinct names distinct."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode("ascii")).hexdigest()[:_HASH_CHARS]
    prefix = name[: limit - _HASH_CHARS - 1].rstrip("_")
    return f"{prefix}_{digest}"


def _with_suffix(base: str, number: int) -> str:
    """``base_N``, cutting ``base`` so that the result still fits the identifier limit."""
    suffix = f"_{number}"
    return base[: MAX_IDENTIFIER_BYTES - len(suffix)] + suffix


def normalize_names(raw: Sequence[str | None]) -> list[str]:
    """Normalize a file's header into unique, safe column names.

    Each name is decomposed (NFKD) and reduced to ASCII (accents dropped), lower-cased, runs
    of characters outside ``[a-z0-9_]`` become one ``_`` and leading/trailing ``_`` are
    stripped. A blank result becomes ``col_N`` (N is the 1-based position), a leading digit
    gets a ``_`` prefix, and names longer than 63 bytes are shortened to a prefix plus a hash
    of the full name. Duplicates, and names equal to the lineage columns, get ``_2``, ``_3``,
    ... (the first occurrence keeps its name). A name the header really has is kept: neither
    a suffixed duplicate nor the ``col_N`` of a blank cell takes it (``a, a, a_2`` gives
    ``a, a_3, a_2``; a blank first cell before a ``col_1`` header is ``col_1_2``).

    Args:
        raw: The header cells in file order; ``None`` for a missing cell.

    Returns:
        One identifier per header cell, in the same order, all distinct.
    """
    cleaned = [_clean(name) for name in raw]
    bases = [_shorten(name or f"col_{position}") for position, name in enumerate(cleaned, 1)]
    return _deduplicate(bases, [bool(name) for name in cleaned], LINEAGE_COLUMNS)


def deduplicate_names(names: Sequence[str], made_up: Sequence[bool] | None = None) -> list[str]:
    """Make normalized names distinct the way :func:`normalize_names` does: the first keeps
    its name, a repeat gets ``_2``, ``_3``..., and neither a suffixed name nor a made-up one
    takes a name that a real one has (``data_1, data_1, data_1_2`` gives ``data_1,
    data_1_3, data_1_2``).

    Args:
        names: Identifiers, already normalized, in their order.
        made_up: For each name, whether pgingest made it up (it gives way to a real name
            that is the same); none by default.

    Returns:
        The names, all distinct, each at most 63 bytes.
    """
    real = [not m for m in made_up] if made_up is not None else [True] * len(names)
    return _deduplicate(list(names), real, ())


def _deduplicate(bases: list[str], real: list[bool], taken: Sequence[str]) -> list[str]:
    """Distinct names from ``bases``: ``real`` says which are really the file's (a blank
    header cell's ``col_N`` is not); ``taken`` are names nothing may have."""
    # Names really given: no suffixed repeat and no made-up name takes them.
    reserved = {base for base, is_real in zip(bases, real, strict=True) if is_real}
    reserved |= set(taken)
    used: set[str] = set(taken)
    result: list[str] = []
    for base, is_real in zip(bases, real, strict=True):
        chosen = base
        if base in used or (not is_real and base in reserved):
            number = 2
            chosen = _with_suffix(base, number)
            while chosen in used or chosen in reserved:
                number += 1
                chosen = _with_suffix(base, number)
        used.add(chosen)
        result.append(chosen)
    return result


def lineage_renames(raw: Sequence[str | None], names: Sequence[str]) -> list[str]:
    """Say which header names were changed because they would take a lineage column's name.

    Args:
        raw: the header as written.
        names: what :func:`normalize_names` made of it.

    Returns:
        One line per such column, e.g. ``header _pgingest_file_id is loaded as column
        _pgingest_file_id_2: _pgingest_file_id is pgingest's lineage column``.
    """
    out = []
    for original, name in zip(raw, names, strict=True):
        if original is None:
            continue
        ascii_only = unicodedata.normalize("NFKD", original).encode("ascii", "ignore")
        spelled = _NOT_IDENT_CHARS.sub("_", ascii_only.decode("ascii").lower()).strip()
        if spelled in LINEAGE_COLUMNS and name != spelled:
            out.append(
                f"header {original!r} is loaded as column {name}: {spelled} is the name of"
                " pgingest's lineage column"
            )
    return out


def normalize_identifier(name: str) -> str:
    """Normalize one name (a table name, usually a file stem) into a safe identifier.

    The character rules are those of :func:`normalize_names`:
    ``normalize_identifier("Sales Report 2024")`` is ``"sales_report_2024"``. Pass the file
    stem, not the file name: the suffix is not removed here.

    Args:
        name: The raw name.

    Returns:
        A lower-case ASCII identifier of at most 63 bytes.

    Raises:
        ConfigError: Nothing usable is left of the name (for example ``"###"``).
    """
    cleaned = _clean(name)
    if not cleaned:
        raise ConfigError(f"cannot make an identifier from {name!r}: give the name explicitly")
    return _shorten(cleaned)


def validate_identifier(name: str) -> str:
    """Check that ``name`` can be used as a PostgreSQL identifier as it is.

    Args:
        name: An identifier, normalized or chosen by the user.

    Returns:
        ``name`` unchanged.

    Raises:
        ConfigError: The name is empty, longer than 63 bytes in UTF-8 (the server would
            silently truncate it) or contains a NUL character.
    """
    if not name:
        raise ConfigError("an identifier cannot be empty")
    if "\x00" in name:
        raise ConfigError(f"identifier {name!r} contains a NUL character")
    size = len(name.encode("utf-8"))
    if size > MAX_IDENTIFIER_BYTES:
        raise ConfigError(
            f"identifier {name!r} is {size} bytes long; PostgreSQL allows {MAX_IDENTIFIER_BYTES}"
        )
    return name


def quote_ident(name: str) -> str:
    """Validate ``name`` and quote it for SQL: ``a"b`` becomes ``"a""b"``.

    This is the one quoting helper of pgingest; every identifier that reaches SQL passes here.

    Args:
        name: The identifier to quote.

    Returns:
        The double-quoted identifier, with inner double quotes doubled.

    Raises:
        ConfigError: The name is not a valid identifier (see :func:`validate_identifier`).
    """
    validate_identifier(name)
    return '"' + name.replace('"', '""') + '"'
