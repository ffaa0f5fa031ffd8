"""Turn the events CSV into typed rows and rejects, a block of whole lines at a time.

A block takes the fast path when every line in it is valid: pyarrow parses and type-checks the
block in C++, with the event time checked against the one format the dataset uses. A block with
any bad line goes through a per-line path that keeps the good rows and turns each bad line into a
`Reject` naming its line number and reason. Bad lines are rare, so the slow path costs little.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from .schema import (
    BIGINT,
    DROPPED_COLUMNS,
    EVENT_TIME_FORMAT,
    EVENT_TYPES,
    HEADER,
    INTEGER_COLUMNS,
    LOADED,
    LOADED_COLUMNS,
    NULLABLE_COLUMNS,
    PRICE,
    PRICE_MAX_FRACTION_DIGITS,
    PRICE_MAX_INTEGER_DIGITS,
    PRICE_PRECISION,
    SOURCE_COLUMNS,
    TEXT,
    TIMESTAMP,
)

PRICE_TYPE = pa.decimal128(PRICE_PRECISION, PRICE_MAX_FRACTION_DIGITS)
ARROW_TYPES = {TIMESTAMP: pa.timestamp("s", tz="UTC"), TEXT: pa.string(), BIGINT: pa.int64(), PRICE: PRICE_TYPE}
LOADED_SCHEMA = pa.schema([(column.name, ARROW_TYPES[column.kind]) for column in LOADED])
REQUIRED_COLUMNS = [name for name in LOADED_COLUMNS if name not in NULLABLE_COLUMNS]
_INT64_RANGE = range(-(2**63), 2**63)
_INTEGER = re.compile(r"-?[0-9]+")
_EVENT_TYPE_SET = pa.array(EVENT_TYPES)

_READ = pv.ReadOptions(column_names=SOURCE_COLUMNS, use_threads=False, block_size=1 << 26)
_CONVERT = pv.ConvertOptions(
    # event_time is read as text and checked against the one format the dataset uses.
    column_types={field.name: field.type for field in LOADED_SCHEMA} | {"event_time": pa.string()},
    include_columns=LOADED_COLUMNS,
    null_values=[""],
    strings_can_be_null=True,
)


class HeaderError(ValueError):
    """The file does not start with the dataset's header: nothing of it is loaded."""


@dataclass(frozen=True)
class Reject:
    line_number: int
    reason: str
    raw_line: str


@dataclass
class ParsedBlock:
    rows: pa.Table  # LOADED_SCHEMA
    rejects: list[Reject]


def read_blocks(stream: BinaryIO, source: str, block_size: int) -> Iterator[tuple[bytes, int]]:
    """Yield (block of whole lines, line number of its first line) after checking the header.

    Raises HeaderError before yielding anything when the first line is not the dataset's header.
    """
    pending = b""
    line_number = 2
    header_checked = False
    while True:
        chunk = stream.read(block_size)
        if not chunk:
            break
        pending += chunk
        if not header_checked:
            end = pending.find(b"\n")
            if end < 0 and len(pending) < 4096:
                continue
            check_header(pending[: end if end >= 0 else len(pending)], source)
            pending = pending[end + 1 :] if end >= 0 else b""
            header_checked = True
        cut = pending.rfind(b"\n") + 1
        if cut:
            block, pending = pending[:cut], pending[cut:]
            yield block, line_number
            line_number += block.count(b"\n")
    if not header_checked:
        check_header(pending, source)
    elif pending:
        yield pending + b"\n", line_number


# Column names separated by commas. Only such a line is echoed in the error: a file that is not a CSV of events
# (a credentials file, a URL with a password) must not have its first line printed.
_HEADER_LIKE = re.compile(r"[A-Za-z_][\w .-]*(,[A-Za-z_][\w .-]*)*")


def check_header(first_line: bytes, source: str) -> None:
    found = first_line.rstrip(b"\r").decode("utf-8", "replace").lstrip("\ufeff")
    if found != HEADER:
        if _HEADER_LIKE.fullmatch(found) and len(found) <= 200:
            raise HeaderError(f"{source}: line 1: expected header {HEADER!r}, found {found!r}")
        raise HeaderError(
            f"{source}: line 1: expected header {HEADER!r}, found a line of {len(found)} characters that is not"
            " a CSV header (not shown)"
        )


def parse_block(block: bytes, first_line: int) -> ParsedBlock:
    """Typed rows and rejects of a block of whole lines (each ending in a newline)."""
    rows = _parse_valid_block(block)
    if rows is not None:
        return ParsedBlock(rows, [])
    return _parse_lines(block, first_line)


def _parse_valid_block(block: bytes) -> pa.Table | None:
    """The block's rows if every line in it is valid, else None."""
    if b"\x00" in block:  # PostgreSQL text cannot hold NUL; the per-line path names the line
        return None
    try:
        table = pv.read_csv(pa.py_buffer(block), read_options=_READ, convert_options=_CONVERT)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != block.count(b"\n"):  # blank lines are skipped by pyarrow; they are rejects here
        return None
    if any(table[name].null_count for name in REQUIRED_COLUMNS):
        return None
    if not pc.all(pc.is_in(table["event_type"], value_set=_EVENT_TYPE_SET)).as_py():
        return None
    event_time = _parse_event_times(table["event_time"])
    if event_time is None:
        return None
    table = table.set_column(table.schema.get_field_index("event_time"), "event_time", event_time)
    return table.select(LOADED_COLUMNS).cast(LOADED_SCHEMA)


def _parse_event_times(text: pa.ChunkedArray) -> pa.ChunkedArray | None:
    parsed = pc.strptime(text, format=EVENT_TIME_FORMAT, unit="s", error_is_null=True)
    if parsed.null_count:
        return None
    # strptime rolls 2019-02-30 over to March; the day must survive the round trip.
    day_written = pc.cast(pc.utf8_slice_codeunits(text, 8, 10), pa.int64())
    if not pc.all(pc.equal(pc.day(parsed), day_written)).as_py():
        return None
    return parsed


def _parse_lines(block: bytes, first_line: int) -> ParsedBlock:
    columns: dict[str, list] = {name: [] for name in LOADED_COLUMNS}
    rejects = []
    for offset, raw in enumerate(block.split(b"\n")[:-1]):
        line_number = first_line + offset
        raw = raw.removesuffix(b"\r")
        try:
            values = parse_line(raw)
        except ValueError as error:
            rejects.append(Reject(line_number, str(error), raw.decode("utf-8", "replace").replace("\x00", "\\0")))
            continue
        for name, value in zip(LOADED_COLUMNS, values, strict=False):
            columns[name].append(value)
    return ParsedBlock(pa.table(columns, schema=LOADED_SCHEMA), rejects)


def parse_line(raw: bytes) -> list:
    """The loaded values of one line, in LOADED_COLUMNS order; ValueError names what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"invalid UTF-8 at byte {error.start}") from None
    if "\x00" in text:
        raise ValueError("NUL character in line")
    if not text.strip():
        raise ValueError("empty line")
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as error:
        raise ValueError(f"malformed CSV: {error}") from None
    if len(fields) != len(SOURCE_COLUMNS):
        raise ValueError(f"expected {len(SOURCE_COLUMNS)} fields, found {len(fields)}")
    record = dict(zip(SOURCE_COLUMNS, fields, strict=False))
    for name in LOADED_COLUMNS:
        if name not in NULLABLE_COLUMNS and record[name] == "":
            raise ValueError(f"{name}: empty")
    try:
        parsed_time = dt.datetime.strptime(record["event_time"], EVENT_TIME_FORMAT)
    except ValueError:
        raise ValueError(f"event_time: not a time like 2019-10-01 00:00:00 UTC: {record['event_time']!r}") from None
    if record["event_type"] not in EVENT_TYPES:
        raise ValueError(f"event_type: unknown {record['event_type']!r}")
    for name in INTEGER_COLUMNS:
        value = record[name]
        if not _INTEGER.fullmatch(value) or int(value) not in _INT64_RANGE:
            raise ValueError(f"{name}: not a 64-bit integer: {value!r}")
    values = {
        "event_time": parsed_time.replace(tzinfo=dt.UTC),
        "event_type": record["event_type"],
        "price": _parse_price(record["price"]),
        **{name: int(record[name]) for name in INTEGER_COLUMNS},
        **{name: record[name] or None for name in NULLABLE_COLUMNS if name not in DROPPED_COLUMNS},
    }
    return [values[name] for name in LOADED_COLUMNS]


def _parse_price(text: str) -> decimal.Decimal:
    try:
        price = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"price: not a number: {text!r}") from None
    if not price.is_finite():
        raise ValueError(f"price: not a number: {text!r}")
    exponent = price.as_tuple().exponent
    if exponent < -PRICE_MAX_FRACTION_DIGITS and price != price.quantize(decimal.Decimal(1).scaleb(-2)):
        raise ValueError(f"price: more than {PRICE_MAX_FRACTION_DIGITS} decimal places: {text!r}")
    if abs(price) >= 10**PRICE_MAX_INTEGER_DIGITS:
        raise ValueError(f"price: out of range for numeric(10,2): {text!r}")
    return price.quantize(decimal.Decimal("0.01"))


def sha256_of(stream: BinaryIO, block_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(block_size):
        digest.update(chunk)
    return digest.hexdigest()
