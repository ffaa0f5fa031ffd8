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
    first_lines = [first for _, first, _ in blocks]
    counts = [block.count(b"\n") for block, _, _ in blocks]
    assert first_lines[0] == 2
    assert all(first_lines[i + 1] == first_lines[i] + counts[i] for i in range(len(blocks) - 1))
    assert sum(counts) == 1000


def test_a_last_line_without_newline_is_read():
    stream = io.BytesIO((HEADER + "\n" + GOOD + "\n" + GOOD).encode())
    blocks = list(read_blocks(stream, "f.csv", block_size=1 << 20))
    assert sum(block.count(b"\n") for block, _, _ in blocks) == 2


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


def load_all(text: str, block_size: int) -> tuple[list[list], list[tuple[int, str]]]:
    """Every row and every reject (line, reason) of a file, read `block_size` bytes at a time."""
    stream = io.BytesIO((HEADER + "\n" + text).encode())
    rows, rejects = [], []
    for parsed in (parse_block(*block) for block in read_blocks(stream, "f.csv", block_size)):
        rows += parsed.rows.to_pylist()
        rejects += [(reject.line_number, reject.reason) for reject in parsed.rejects]
    return rows, rejects


ODD_ROWS = {
    "a padded integer": GOOD.replace("5802432", " 777"),
    "a hexadecimal integer": GOOD.replace("5802432", "0x10"),
    "a one-digit day": GOOD.replace("2019-10-01", "2019-10-1"),
    "a quoted newline": GOOD.replace("5802432,", "5802432,").replace(",,", ',"two\nlines",', 1),
    "a 200 KB brand": GOOD.replace(",,", f",{'b' * 200_000},", 1),
    "an unclosed quote": GOOD.replace(",,", ',"never closed,', 1),
}


@pytest.mark.parametrize("odd", ODD_ROWS)
def test_a_row_is_accepted_or_rejected_on_its_own_content_whatever_block_it_falls_in(odd):
    good = [GOOD.replace("5802432", str(1000 + i)) for i in range(300)]
    bad = "x,y,z"  # a bad line: the block it shares goes through the per-line path
    text = "\n".join([*good[:150], ODD_ROWS[odd], *good[150:]]) + "\n"
    beside_a_bad_line = "\n".join([*good[:150], ODD_ROWS[odd], bad, *good[150:]]) + "\n"
    outcomes = set()
    for block_size in (1 << 10, 1 << 14, 1 << 16, 1 << 22):
        rows, rejects = load_all(text, block_size)
        with_bad_rows, with_bad_rejects = load_all(beside_a_bad_line, block_size)
        odd_rejects = [r for r in rejects if r[0] == 152]
        assert [r for r in with_bad_rejects if r[0] == 152] == odd_rejects  # same verdict on the slow path
        assert len(with_bad_rows) == len(rows)
        outcomes.add((len(rows), tuple(odd_rejects)))
    assert len(outcomes) == 1, outcomes  # the same rows and rejects at every block size
    ((row_count, odd_rejects),) = outcomes
    assert row_count + len(odd_rejects) == 301  # the odd row is one row or one reject, never two
    assert all(line == 152 for line, _ in odd_rejects)


def test_a_one_digit_day_is_a_reject_of_its_line_not_a_failure_of_the_file():
    rows, rejects = load_all(GOOD + "\n" + GOOD.replace("2019-10-01", "2019-10-1") + "\n", 1 << 20)
    assert len(rows) == 1
    assert rejects == [(3, "event_time: not a time like 2019-10-01 00:00:00 UTC: '2019-10-1 00:00:05 UTC'")]


def test_a_huge_line_is_one_reject_and_is_never_held_whole_in_memory():
    import tracemalloc

    huge = GOOD.replace(",,", f",{'b' * (30 << 20)},", 1)  # 30 MiB in one line
    stream = io.BytesIO((HEADER + "\n" + GOOD + "\n" + huge + "\n" + GOOD + "\n").encode())
    tracemalloc.start()
    parsed = [parse_block(*block) for block in read_blocks(stream, "f.csv", block_size=1 << 20)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sum(p.rows.num_rows for p in parsed) == 2
    rejects = [r for p in parsed for r in p.rejects]
    assert [(r.line_number, r.reason) for r in rejects] == [(3, "line longer than 1,048,576 bytes")]
    assert rejects[0].raw_line.endswith("... (cut: too long to keep)")
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB for a 30 MiB line"


def test_a_sample_holds_the_header_and_the_first_records_a_quoted_newline_inside_its_own(tmp_path):
    from flows.ecommerce.load import first_records

    rows = [
        "2019-10-01 00:00:00 UTC,view,1,2,,brand,1.00,3,s1",
        '2019-10-01 00:00:01 UTC,cart,1,2,,"two\nlines",1.00,3,s2',
        "2019-10-01 00:00:02 UTC,view,1,2,,brand,1.00,3,s3",
    ]
    source = tmp_path / "2019-Oct.csv"
    source.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    sample = first_records(source, 2, tmp_path)
    assert sample.read_text() == HEADER + "\n" + rows[0] + "\n" + rows[1] + "\n"
    parsed = parse_block(sample.read_bytes().split(b"\n", 1)[1], 2)
    assert (parsed.rows.num_rows, parsed.rejects) == (2, [])
    assert first_records(source, 10, tmp_path).read_text() == source.read_text()  # fewer records than asked: all
    with pytest.raises(ValueError, match="sample_rows must be at least 1"):
        first_records(source, 0, tmp_path)
