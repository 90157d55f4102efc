"""Header and table names become safe, unique PostgreSQL identifiers; quoting is safe."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgingest.errors import ConfigError
from pgingest.schema.names import (
    LINEAGE_COLUMNS,
    MAX_IDENTIFIER_BYTES,
    deduplicate_names,
    normalize_identifier,
    normalize_names,
    quote_ident,
    validate_identifier,
)

SAFE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
HOSTILE = 'x"; DROP TABLE t; --'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Café", "cafe"),
        ("Ünïcödé Nämé", "unicode_name"),
        ("ﬁle", "file"),  # NFKD splits the ligature
        ("Order ID", "order_id"),
        ("a--b  c", "a_b_c"),
        ("  padded  ", "padded"),
        ("_id_", "id"),
        ("already_ok_1", "already_ok_1"),
        ("Price (€)", "price"),
        ("2024", "_2024"),
        ("1st place", "_1st_place"),
        ("#1", "_1"),
        (HOSTILE, "x_drop_table_t"),
    ],
)
def test_one_name_is_normalized(raw: str, expected: str) -> None:
    assert normalize_names([raw]) == [expected]


@pytest.mark.parametrize("blank", [None, "", "   ", "###", "日本語", "__"])
def test_blank_name_becomes_col_n_by_position(blank: str | None) -> None:
    assert normalize_names(["a", blank, "c"]) == ["a", "col_2", "c"]


def test_duplicates_get_numbered_suffixes_and_the_first_keeps_its_name() -> None:
    assert normalize_names(["a", "A", "a ", "b"]) == ["a", "a_2", "a_3", "b"]


def test_suffix_never_takes_the_name_of_another_column() -> None:
    assert normalize_names(["a", "a", "a_2"]) == ["a", "a_3", "a_2"]
    assert normalize_names(["col_2", None]) == ["col_2", "col_2_2"]


def test_a_blank_cell_never_takes_the_name_a_later_header_has() -> None:
    assert normalize_names([None, "col_1", "a"]) == ["col_1_2", "col_1", "a"]
    assert normalize_names(["", "col_1", "col_1_2"]) == ["col_1_3", "col_1", "col_1_2"]


def test_deduplicated_names_keep_the_real_ones() -> None:
    assert deduplicate_names(["t_data_1", "t_data_1", "t_data_1_2"]) == [
        "t_data_1",
        "t_data_1_3",
        "t_data_1_2",
    ]
    assert deduplicate_names(["t_sheet1", "t_sheet1"], made_up=[True, False]) == [
        "t_sheet1_2",
        "t_sheet1",
    ]


def test_names_never_take_the_lineage_columns() -> None:
    names = normalize_names([*LINEAGE_COLUMNS, "x"])
    assert not set(names) & set(LINEAGE_COLUMNS)
    assert len(set(names)) == 3


def test_long_names_are_shortened_to_63_bytes_and_stay_unique() -> None:
    first = "a" * 60 + "_first_name"
    second = "a" * 60 + "_other_name"
    names = normalize_names([first, second])
    assert all(len(name.encode()) <= MAX_IDENTIFIER_BYTES for name in names)
    assert names[0] != names[1]
    assert all(name.startswith("a" * 54) for name in names)
    assert normalize_names([first, second]) == names  # deterministic across files


def test_long_duplicates_stay_within_63_bytes() -> None:
    names = normalize_names(["é" * 70] * 3)
    assert len(set(names)) == 3
    assert all(len(name.encode()) <= MAX_IDENTIFIER_BYTES for name in names)


def test_63_characters_are_kept_and_64_are_shortened() -> None:
    assert normalize_names(["x" * 63]) == ["x" * 63]
    (shortened,) = normalize_names(["x" * 64])
    assert len(shortened) == MAX_IDENTIFIER_BYTES
    assert re.fullmatch(r"x{54}_[0-9a-f]{8}", shortened)


@given(st.lists(st.one_of(st.none(), st.text(max_size=80)), max_size=12))
def test_any_header_gives_distinct_safe_identifiers(raw: list[str | None]) -> None:
    names = normalize_names(raw)
    assert len(names) == len(raw)
    assert len(set(names)) == len(names)
    for name in names:
        assert SAFE_NAME.fullmatch(name), name
        assert len(name.encode()) <= MAX_IDENTIFIER_BYTES
        assert name not in LINEAGE_COLUMNS
        assert validate_identifier(name) == name
    assert normalize_names(raw) == names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sales Report 2024", "sales_report_2024"),
        (Path("Sales Report 2024.csv").stem, "sales_report_2024"),
        ("Ventes-Été", "ventes_ete"),
        ("2024_data", "_2024_data"),
    ],
)
def test_table_name_is_normalized(raw: str, expected: str) -> None:
    assert normalize_identifier(raw) == expected


def test_long_table_name_is_shortened() -> None:
    name = normalize_identifier("report " * 20)
    assert len(name) <= MAX_IDENTIFIER_BYTES
    assert SAFE_NAME.fullmatch(name)


@pytest.mark.parametrize("raw", ["", "###", "  ", "日本"])
def test_table_name_with_nothing_usable_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError):
        normalize_identifier(raw)


@pytest.mark.parametrize("name", ["a", "Mixed Case", "é" * 31, "x" * 63, HOSTILE])
def test_valid_identifier_is_returned_unchanged(name: str) -> None:
    assert validate_identifier(name) == name


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 64, "é" * 32])
def test_invalid_identifier_is_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        validate_identifier(name)


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("a", '"a"'),
        ("Mixed Case", '"Mixed Case"'),
        ('a"b', '"a""b"'),
        (HOSTILE, '"x""; DROP TABLE t; --"'),
        ("select", '"select"'),
    ],
)
def test_quote_ident_doubles_inner_quotes(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize("name", ["", "a\x00", "x" * 64])
def test_quote_ident_validates(name: str) -> None:
    with pytest.raises(ConfigError):
        quote_ident(name)


@given(st.text(min_size=1, max_size=15).filter(lambda s: "\x00" not in s))
def test_quoted_identifier_reads_back_as_the_name(name: str) -> None:
    quoted = quote_ident(name)
    assert quoted.startswith('"')
    assert quoted.endswith('"')
    assert quoted[1:-1].replace('""', '"') == name
    assert '"' not in quoted[1:-1].replace('""', "")


def test_package_exports_are_sorted_and_resolve() -> None:
    import pgingest.schema as schema

    assert schema.__all__ == sorted(schema.__all__)
    for name in schema.__all__:
        assert getattr(schema, name) is not None
    with pytest.raises(AttributeError):
        _ = schema.no_such_name


def test_names_module_does_not_import_pyarrow() -> None:
    probe = (
        "import sys, pgingest\n"
        "already = 'pyarrow' in sys.modules\n"
        "from pgingest.schema.names import quote_ident\n"
        "print(already or 'pyarrow' not in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"
