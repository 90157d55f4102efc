"""The binary CSV path's guard against hexadecimal integers (``0x1F``: pyarrow reads it,
PostgreSQL 15 refuses it) finds ``0x`` and ``0X`` wherever Python's own search does, in any
bytes (invalid UTF-8, NUL, line breaks included)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pgingest.pipeline.write.typed import has_hex_prefix

PIECES = st.sampled_from([b"0", b"x", b"X", b"0x", b"0X", b"\x00", b"\xff", b"\n", b"a", b"00"])


@given(st.lists(st.binary(max_size=8) | PIECES, max_size=40).map(b"".join))
def test_hex_prefix_is_found_as_python_finds_it(data: bytes) -> None:
    assert has_hex_prefix(data) == (b"0x" in data or b"0X" in data)


def test_hex_prefix_in_a_large_chunk() -> None:
    digits = b"1234567890," * 400_000
    assert not has_hex_prefix(digits)
    assert has_hex_prefix(digits + b"0X1F")
    assert has_hex_prefix(b"0x" + digits)
    assert not has_hex_prefix(b"")
