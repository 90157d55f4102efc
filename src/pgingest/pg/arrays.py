"""The binary COPY form of ``timestamptz[]`` values, which pgpq cannot write.

pgpq writes every Arrow timestamp as ``timestamp`` (OID 1114). A scalar's binary form is the
same for ``timestamptz``, but an array names its element type, and the server refuses a
``timestamp`` array for a ``timestamptz[]`` column ("binary data has array element type 1114
... instead of expected 1184"). Such a column goes as each value's complete ``array_send``
bytes, built here from the Arrow buffers with numpy (nothing per value in Python), which pgpq
passes through untouched as it does ``bytea``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

TIMESTAMPTZ_OID = 1184
_POSTGRES_EPOCH_MICROS = 946_684_800_000_000
"""2000-01-01 (PostgreSQL's timestamp epoch) in microseconds since 1970-01-01."""
_NULL_LENGTH = 0xFFFF_FFFF
"""-1 as a 32-bit word: the length of a NULL element."""


def is_timestamptz_list(t: pa.DataType) -> bool:
    """Tell whether ``t`` is a list of microsecond timestamps with a time zone (what a
    ``timestamptz[]`` column is aligned to)."""
    import pyarrow as pa

    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return False
    value = t.value_type
    return bool(pa.types.is_timestamp(value) and value.unit == "us" and value.tz is not None)


def timestamptz_arrays(column: pa.Array) -> pa.Array:
    """Each list of ``column`` (timestamps in microseconds, with a time zone: instants) as
    the binary form of a PostgreSQL ``timestamptz[]``, as ``large_binary`` (NULL stays NULL).

    The form (``array_send``), in big-endian 32-bit words: the number of dimensions (1, or 0
    for an empty array), a has-NULLs flag, the element type's OID, then for a non-empty
    array its length and lower bound (1), then each element: its length (8) and two words of
    microseconds since 2000-01-01, or the length -1 for NULL.

    The caller checks the values against PostgreSQL's range first (as for a scalar column):
    the shift to 2000 must not wrap.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(column)
    present = column.is_valid().to_numpy(zero_copy_only=False)
    counts = pc.fill_null(pc.list_value_length(column), 0).to_numpy().astype(np.int64)
    values = column.flatten()  # (of the rows that are not NULL, as ``counts`` counts)
    micros = pc.fill_null(values.cast(pa.int64()), 0).to_numpy() - _POSTGRES_EPOCH_MICROS
    valued = values.is_valid().to_numpy(zero_copy_only=False)

    # Words per element and per row; a row's first element word comes after its header.
    element_words = np.where(valued, 3, 1)
    element_ends = np.cumsum(element_words)
    row_ends = np.cumsum(counts)
    row_starts = row_ends - counts
    before = np.concatenate(([0], element_ends))  # words of the elements before each one
    nulls_before = np.concatenate(([0], np.cumsum(~valued)))
    header = np.where(present, np.where(counts > 0, 5, 3), 0)
    row_words = header + before[row_ends] - before[row_starts]
    offsets = np.concatenate(([0], np.cumsum(row_words)))
    words = np.zeros(int(offsets[-1]), dtype=">u4")

    at = offsets[:-1][present]
    words[at] = (counts[present] > 0).astype(np.uint32)
    words[at + 1] = (nulls_before[row_ends] - nulls_before[row_starts])[present] > 0
    words[at + 2] = TIMESTAMPTZ_OID
    full = present & (counts > 0)
    words[offsets[:-1][full] + 3] = counts[full].astype(np.uint32)
    words[offsets[:-1][full] + 4] = 1

    owner = np.repeat(np.arange(rows), counts)
    first = offsets[:-1][owner] + 5 + before[:-1] - before[row_starts[owner]]
    words[first[~valued]] = _NULL_LENGTH
    first, micros = first[valued], micros[valued]
    words[first] = 8
    words[first + 1] = ((micros >> 32) & 0xFFFF_FFFF).astype(np.uint32)
    words[first + 2] = (micros & 0xFFFF_FFFF).astype(np.uint32)

    validity = pa.array(present, pa.bool_()).buffers()[1]  # (a bit per row, 1 if present)
    byte_offsets = pa.py_buffer((offsets * 4).astype(np.int64))
    out: pa.Array = pa.Array.from_buffers(
        pa.large_binary(), rows, [validity, byte_offsets, pa.py_buffer(words.tobytes())]
    )
    return out
