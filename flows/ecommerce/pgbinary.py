"""Rows in PostgreSQL's binary COPY format, built with array operations instead of a loop per row.

Binary COPY saves the server the text parsing that bounds `COPY ... (format csv)`: on two cores
the server's backend is the bottleneck, so less work there is a faster load. Each row is a field
count, then per field a big-endian int32 length (-1 for NULL) and the value. The fixed-width
fields come first (the COPY's column list is in that order), then the text fields; both lists derive from
schema.TABLE_COLUMNS.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schema import BIGINT, FILE_ID, PRICE, TABLE_COLUMNS, TEXT, TIMESTAMP

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_FIXED_COLUMNS = [column for column in TABLE_COLUMNS if column.kind != TEXT]
_TEXT_COLUMNS = [column for column in TABLE_COLUMNS if column.kind == TEXT]
# Column order of the binary rows; the COPY statement lists the columns in this order.
COLUMNS = tuple(column.name for column in _FIXED_COLUMNS + _TEXT_COLUMNS)
_POSTGRES_EPOCH_SECONDS = 946_684_800  # 2000-01-01 UTC, where timestamptz counts from
_NUMERIC_SIZE = 14  # ndigits, weight, sign, dscale (int16 each) + three base-10000 digits
_NUMERIC_PARTS = [("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">u2"), ("dscale", ">i2"), ("digits", ">i2", (3,))]
_VALUE_PARTS = {TIMESTAMP: [("", ">i8")], BIGINT: [("", ">i8")], PRICE: [(f"_{p[0]}", *p[1:]) for p in _NUMERIC_PARTS]}
_SIZES = {TIMESTAMP: 8, BIGINT: 8, PRICE: _NUMERIC_SIZE}
# One fixed-width record per row: the field count, then each fixed column's length and value.
_FIXED = np.dtype(
    [("field_count", ">i2")]
    + [
        part
        for column in _FIXED_COLUMNS
        for part in [(f"{column.name}_size", ">i4")]
        + [(column.name + suffix, *layout) for suffix, *layout in _VALUE_PARTS[column.kind]]
    ]
)
_NULL_LENGTH = -1


def encode_rows(rows: pa.Table, file_id: int) -> bytes:
    """The binary COPY tuples of `rows` (parse.LOADED_SCHEMA), all tagged with `file_id`."""
    count = rows.num_rows
    if count == 0:
        return b""
    fixed = np.empty(count, dtype=_FIXED)
    fixed["field_count"] = len(COLUMNS)
    for column in _FIXED_COLUMNS:
        fixed[f"{column.name}_size"] = _SIZES[column.kind]
        if column is FILE_ID:
            fixed[column.name] = file_id
        elif column.kind == TIMESTAMP:
            seconds = rows[column.name].cast(pa.int64()).to_numpy()
            fixed[column.name] = (seconds - _POSTGRES_EPOCH_SECONDS) * 1_000_000
        elif column.kind == PRICE:
            _encode_prices(fixed, column.name, rows[column.name])
        else:
            fixed[column.name] = rows[column.name].to_numpy()

    fixed_column = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(_FIXED.itemsize), count, [None, pa.py_buffer(fixed.tobytes())]
    ).cast(pa.binary())
    parts = [fixed_column]
    for column in _TEXT_COLUMNS:
        parts += _text_field(rows[column.name].combine_chunks())
    joined = pc.binary_join_element_wise(*parts, b"")
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32, count=count + 1, offset=joined.offset * 4)
    return joined.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


def _encode_prices(fixed: np.ndarray, name: str, price: pa.ChunkedArray) -> None:
    """numeric(10,2) as weight-1 base-10000 digits: [integer // 10^4, integer % 10^4, cents * 100]."""
    cents = pc.multiply(price.cast(pa.decimal128(12, 2)), 100).cast(pa.int64()).to_numpy()
    magnitude = np.abs(cents)
    whole = magnitude // 100
    fixed[f"{name}_ndigits"] = 3
    fixed[f"{name}_weight"] = 1
    fixed[f"{name}_sign"] = np.where(cents < 0, 0x4000, 0x0000)
    fixed[f"{name}_dscale"] = 2
    fixed[f"{name}_digits"] = np.stack([whole // 10_000, whole % 10_000, (magnitude % 100) * 100], axis=1)


def _text_field(column: pa.Array) -> list[pa.Array]:
    """[length prefix, value] columns of one text field; NULL has length -1 and no bytes."""
    lengths = pc.binary_length(column).fill_null(_NULL_LENGTH).to_numpy(zero_copy_only=False)
    prefix = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(4), len(column), [None, pa.py_buffer(lengths.astype(">i4").tobytes())]
    ).cast(pa.binary())
    return [prefix, column.fill_null("").cast(pa.binary())]
