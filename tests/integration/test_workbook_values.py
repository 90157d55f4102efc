"""Workbook cell values that must load exactly, and workbooks the reader fails on."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from workbooks import simple_xlsx


def _xls_with_truncated_formula(path: Path) -> Path:
    """An xls whose formula token PtgExp lacks its 4-byte operand: calamine panics on it
    while opening the workbook (as on tafia/calamine tests/ptgexp-truncated-operand.xls)."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("s")
    sheet.write(0, 0, "a")
    sheet.write(1, 0, xlwt.Formula("1+2"))
    book.save(str(path))
    data = bytearray(path.read_bytes())
    rgce = bytes([0x1E, 1, 0, 0x1E, 2, 0, 0x03])  # ptgInt 1, ptgInt 2, ptgAdd
    at = data.find(rgce)
    assert at > 0
    struct.pack_into("<H", data, at - 2, 3)  # cce: 3 bytes of formula
    data[at : at + 3] = bytes([0x01, 0, 0])  # PtgExp with 2 of its 4 operand bytes
    path.write_bytes(bytes(data))
    return path


def test_a_workbook_the_reader_panics_on_fails_alone(tmp_path: Path, cli: Any, db: Any) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    simple_xlsx(folder / "good.xlsx")
    _xls_with_truncated_formula(folder / "broken.xls")
    code, out, err = cli("load", str(folder))
    assert code == 1, (out, err)
    assert db.count("good") == 3
    failed = [line for line in err.splitlines() if line.startswith("✗")]
    assert len(failed) == 1, err
    assert "broken.xls: the workbook reader failed: range start index 4" in failed[0]
    assert "Traceback" not in err
    assert "PanicException" not in out + err
