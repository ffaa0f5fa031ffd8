"""Parsing and checking the events CSV, without a database."""

from __future__ import annotations

import datetime as dt
import decimal
import io

import pytest

from flows.ecommerce.parse import HeaderError, parse_block, parse_line, read_blocks
from flows.ecommerce.schema import HEADER

GOOD = "2019-10-01 00:00:05 UTC,view,5802432,1487580009286598681,,runail,-0.79,463240011,26dd6e6e-4dac-4778-8d2c-92e149dab885"


def test_a_good_line_gives_typed_values_without_category_code():
    values = parse_line(GOOD.encode())
    assert values == [
        dt.datetime(2019, 10, 1, 0, 0, 5, tzinfo=dt.UTC),
        "view",
        5802432,
        1487580009286598681,
        "runail",
        decimal.Decimal("-0.79"),
        463240011,
        "26dd6e6e-4dac-4778-8d2c-92e149dab885",
    ]


def test_empty_brand_and_session_are_valid_and_become_null():
    values = parse_line(b"2019-10-01 00:00:05 UTC,cart,1,2,,,1.00,3,")
    assert values[4] is None
    assert values[7] is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"2019-10-01 00:00:05 UTC,view,1,2,,b,1.00,3", "expected 9 fields, found 8"),
        (b"2019-10-01 00:00:05 UTC,view,1,2,,b,1.00,3,s,extra", "expected 9 fields, found 10"),
        (b"2019-10-01 00:00:05 CET,view,1,2,,b,1.00,3,s", "event_time: not a time"),
        (b"2019-02-30 00:00:05 UTC,view,1,2,,b,1.00,3,s", "event_time: not a time"),
        (b"yesterday,view,1,2,,b,1.00,3,s", "event_time: not a time"),
        (b"2019-10-01 00:00:05 UTC,click,1,2,,b,1.00,3,s", "event_type: unknown 'click'"),
        (b"2019-10-01 00:00:05 UTC,view,1.5,2,,b,1.00,3,s", "product_id: not a 64-bit integer"),
        (b"2019-10-01 00:00:05 UTC,view,1,99999999999999999999,,b,1.00,3,s", "category_id: not a 64-bit integer"),
        (b"2019-10-01 00:00:05 UTC,view,1,2,,b,1.00,x3,s", "user_id: not a 64-bit integer"),
        (b"2019-10-01 00:00:05 UTC,view,1,2,,b,cheap,3,s", "price: not a number"),
        (b"2019-10-01 00:00:05 UTC,view,1,2,,b,1.005,3,s", "price: more than 2 decimal places"),
        (b"2019-10-01 00:00:05 UTC,view,1,2,,b,123456789.00,3,s", "price: out of range"),
        (b"2019-10-01 00:00:05 UTC,view,,2,,b,1.00,3,s", "product_id: empty"),
        (b"2019-10-01 00:00:05 UTC,view,1,2,,b\x00,1.00,3,s", "NUL character"),
        (b"2019-10-01 00:00:05 UTC,view,1,2,,\xff,1.00,3,s", "invalid UTF-8"),
        (b"", "empty line"),
    ],
)
def test_each_kind_of_bad_line_names_its_reason(line, reason):
    with pytest.raises(ValueError, match="^" + reason.replace("(", r"\(").replace(".", r"\.")):
        parse_line(line)


def test_a_block_with_one_bad_line_keeps_the_others_and_numbers_the_bad_one():
    lines = [GOOD, GOOD.replace(",view,", ",click,"), GOOD]
    parsed = parse_block(("\n".join(lines) + "\n").encode(), first_line=10)
    assert parsed.rows.num_rows == 2
    assert [(r.line_number, r.raw_line) for r in parsed.rejects] == [(11, lines[1])]


def test_fast_and_per_line_paths_give_the_same_rows():
    lines = [GOOD, "2019-10-31 23:59:59 UTC,purchase,1,2,x.y,,5,3,"]
    fast = parse_block(("\n".join(lines) + "\n").encode(), first_line=2)
    slow = parse_block(("\n".join([*lines, "bad"]) + "\n").encode(), first_line=2)
    assert fast.rejects == []
    assert len(slow.rejects) == 1
    assert fast.rows.to_pylist() == slow.rows.to_pylist()


def test_day_rollover_in_a_block_is_caught():
    parsed = parse_block(GOOD.replace("2019-10-01", "2019-02-30").encode() + b"\n", first_line=2)
    assert parsed.rows.num_rows == 0
    assert parsed.rejects[0].reason.startswith("event_time")


def test_blocks_carry_line_numbers_across_block_boundaries():
    body = "".join(f"{GOOD.replace('5802432', str(i))}\n" for i in range(1000))
    stream = io.BytesIO((HEADER + "\n" + body).encode())
    blocks = list(read_blocks(stream, "f.csv", block_size=4096))
    assert len(blocks) > 5
    first_lines = [first for _, first in blocks]
    counts = [block.count(b"\n") for block, _ in blocks]
    assert first_lines[0] == 2
    assert all(first_lines[i + 1] == first_lines[i] + counts[i] for i in range(len(blocks) - 1))
    assert sum(counts) == 1000


def test_a_last_line_without_newline_is_read():
    stream = io.BytesIO((HEADER + "\n" + GOOD + "\n" + GOOD).encode())
    blocks = list(read_blocks(stream, "f.csv", block_size=1 << 20))
    assert sum(block.count(b"\n") for block, _ in blocks) == 2


@pytest.mark.parametrize("first_line", ["event_time,event_type,product_id", "", "a,b,c,d,e,f,g,h,i"])
def test_a_wrong_header_raises_before_any_block(first_line):
    stream = io.BytesIO((first_line + "\n" + GOOD + "\n").encode())
    with pytest.raises(HeaderError, match=r"^f\.csv: line 1: expected header"):
        next(read_blocks(stream, "f.csv", block_size=1 << 20))


@pytest.mark.parametrize(
    "first_line", ["postgresql://app:hunter2@db.example/app", "KAGGLE_KEY=hunter2", '{"token": "hunter2"}']
)
def test_a_first_line_that_is_not_a_header_is_not_echoed(first_line):
    """Pointed at a credentials file, the error must not print its content: only its length."""
    stream = io.BytesIO((first_line + "\n").encode())
    with pytest.raises(HeaderError) as error:
        next(read_blocks(stream, "f.csv", block_size=1 << 20))
    assert "hunter2" not in str(error.value)
    assert f"found a line of {len(first_line)} characters that is not a CSV header" in str(error.value)


def test_a_header_like_first_line_is_shown_with_the_expected_one():
    stream = io.BytesIO(b"event_time,event_type,price\n")
    with pytest.raises(HeaderError, match=r"found 'event_time,event_type,price'$"):
        next(read_blocks(stream, "f.csv", block_size=1 << 20))
