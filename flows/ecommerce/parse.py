"""Turn the events CSV into typed rows and rejects, a block of whole lines at a time.

A block takes the fast path when every line in it is valid: pyarrow parses and type-checks the
block in C++, with the event time checked against the one format the dataset uses. A block with
any bad line goes through a per-line path that keeps the good rows and turns each bad line into a
`Reject` naming its line number and reason. Bad lines are rare, so the slow path costs little.

Both paths accept exactly the same rows, so what loads never depends on which block a row falls in (the block
size): integers are `-?[0-9]+` (pyarrow alone would take ` 777` and `0x10`), event times are exactly
`YYYY-MM-DD HH:MM:SS UTC`. A record is a line, or several when a quoted field holds a newline: blocks end only
between records. A record longer than MAX_RECORD_BYTES (or a quote that never closes within that) is one reject,
skipped without being held in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
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
_EVENT_TIME_SHAPE = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC"
MAX_RECORD_BYTES = 1 << 20  # a real record is a few hundred bytes
PREVIEW_CHARACTERS = 200  # what a reject keeps of a record too long to keep whole
csv.field_size_limit(MAX_RECORD_BYTES)  # the per-line path takes any field the record limit lets through
_EVENT_TYPE_SET = pa.array(EVENT_TYPES)

_READ = pv.ReadOptions(column_names=SOURCE_COLUMNS, use_threads=False, block_size=1 << 26)
_CONVERT = pv.ConvertOptions(
    # event_time and the integers are read as text, checked as the per-line path checks them, then converted.
    column_types={field.name: field.type for field in LOADED_SCHEMA}
    | {name: pa.string() for name in ("event_time", *INTEGER_COLUMNS)},
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


def read_blocks(stream: BinaryIO, source: str, block_size: int) -> Iterator[tuple[bytes, int, list[Reject]]]:
    """Yield (block of whole records, line number of its first line, rejects of records too long to keep) after
    checking the header. Raises HeaderError before yielding anything when the first line is not the dataset's
    header."""
    pending = b""
    line_number = 2
    header_checked = False
    rejects: list[Reject] = []
    skipping = False  # inside a line longer than MAX_RECORD_BYTES, dropped as it is read
    while True:
        chunk = stream.read(block_size)
        if not chunk:
            break
        if skipping:
            end = chunk.find(b"\n")
            if end < 0:
                continue
            chunk, skipping = chunk[end + 1 :], False
        pending += chunk
        if not header_checked:
            end = pending.find(b"\n")
            if end < 0 and len(pending) < 4096:
                continue
            check_header(pending[: end if end >= 0 else len(pending)], source)
            pending = pending[end + 1 :] if end >= 0 else b""
            header_checked = True
        while True:
            cut = _end_of_last_record(pending)
            if cut:
                block, pending = pending[:cut], pending[cut:]
                yield block, line_number, rejects
                line_number += block.count(b"\n")
                rejects = []
                break
            if len(pending) <= MAX_RECORD_BYTES:
                break  # the record goes on in the next chunk
            end = pending.find(b"\n")
            if end < 0:  # one line longer than the limit: drop it as it comes
                rejects.append(_too_long(line_number, pending, f"line longer than {MAX_RECORD_BYTES:,} bytes"))
                pending, skipping = b"", True
            else:  # a quote that never closes: that line alone is the bad record
                rejects.append(_too_long(line_number, pending[:end], UNCLOSED_QUOTE))
                pending = pending[end + 1 :]
            line_number += 1
    if not header_checked:
        check_header(pending, source)
    elif pending or rejects:
        yield (pending + b"\n" if pending else b""), line_number, rejects


def _end_of_last_record(data: bytes) -> int:
    """Where the last whole record of `data` ends (after its newline), 0 if none: a newline ends a record only
    outside quotes, that is after an even number of `"` (a quote inside a field is written `""`)."""
    cut = data.rfind(b"\n") + 1
    quotes = data.count(b'"', 0, cut)
    while cut and quotes % 2:  # walking back: each step counts only the line it steps over
        previous = data.rfind(b"\n", 0, cut - 1) + 1
        quotes -= data.count(b'"', previous, cut)
        cut = previous
    return cut


def _too_long(line_number: int, data: bytes, reason: str) -> Reject:
    preview = data[: PREVIEW_CHARACTERS * 4].decode("utf-8", "replace")[:PREVIEW_CHARACTERS]
    return Reject(line_number, reason, f"{preview}... (cut: too long to keep)")


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


def parse_block(block: bytes, first_line: int, rejects: list[Reject] | None = None) -> ParsedBlock:
    """Typed rows and rejects of a block of whole records (each ending in a newline); `rejects`: those
    read_blocks made of the records it could not keep, before this block."""
    rows = _parse_valid_block(block) if block else pa.table({}, schema=LOADED_SCHEMA)
    if rows is not None:
        return ParsedBlock(rows, list(rejects or []))
    parsed = _parse_lines(block, first_line)
    return ParsedBlock(parsed.rows, [*(rejects or []), *parsed.rejects])


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
    for name in INTEGER_COLUMNS:
        # Arrow's cast from text is strict (no spaces, no `+`) but for hexadecimal, `0x10`: that is checked here
        if any(pc.any(pc.match_substring(table[name], x)).as_py() for x in ("x", "X")):
            return None
    event_time = _parse_event_times(table["event_time"])
    if event_time is None:
        return None
    table = table.set_column(table.schema.get_field_index("event_time"), "event_time", event_time)
    try:  # an integer past 64 bits: the per-line path names the line
        return table.select(LOADED_COLUMNS).cast(LOADED_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _parse_event_times(text: pa.ChunkedArray) -> pa.ChunkedArray | None:
    if not pc.all(pc.match_substring_regex(text, f"^{_EVENT_TIME_SHAPE}$")).as_py():
        return None  # strptime takes `2019-10-1`: the shape is checked first, as the per-line path does
    parsed = pc.strptime(text, format=EVENT_TIME_FORMAT, unit="s", error_is_null=True)
    if parsed.null_count:
        return None
    # strptime rolls 2019-02-30 over to March; the day must survive the round trip.
    day_written = pc.cast(pc.utf8_slice_codeunits(text, 8, 10), pa.int64())
    if not pc.all(pc.equal(pc.day(parsed), day_written)).as_py():
        return None
    return parsed


UNCLOSED_QUOTE = "a quoted field that never ends"


def _records(block: bytes, first_line: int) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, record, whether its quote never closes) for each record of `block`: lines, joined while a
    quoted field holds a newline. A quote that never closes makes its first line alone the bad record, and the
    lines after it are read again as records of their own."""
    lines = block.split(b"\n")[:-1]
    start = 0
    while start < len(lines):
        end, quotes = start, lines[start].count(b'"')
        while quotes % 2 and end + 1 < len(lines):
            end += 1
            quotes += lines[end].count(b'"')
        if quotes % 2:
            yield first_line + start, lines[start], True
            start += 1
            continue
        yield first_line + start, b"\n".join(lines[start : end + 1]), False
        start = end + 1


def _parse_lines(block: bytes, first_line: int) -> ParsedBlock:
    columns: dict[str, list] = {name: [] for name in LOADED_COLUMNS}
    rejects = []
    for line_number, raw, unclosed in _records(block, first_line):
        raw = raw.removesuffix(b"\r")
        try:
            if unclosed:
                raise ValueError(UNCLOSED_QUOTE)
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
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as error:
        raise ValueError(f"malformed CSV: {error}") from None
    if len(rows) != 1:
        raise ValueError("malformed CSV: a quote that does not close")
    fields = rows[0]
    if len(fields) != len(SOURCE_COLUMNS):
        raise ValueError(f"expected {len(SOURCE_COLUMNS)} fields, found {len(fields)}")
    record = dict(zip(SOURCE_COLUMNS, fields, strict=False))
    for name in LOADED_COLUMNS:
        if name not in NULLABLE_COLUMNS and record[name] == "":
            raise ValueError(f"{name}: empty")
    try:
        if not re.fullmatch(_EVENT_TIME_SHAPE, record["event_time"]):
            raise ValueError
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
