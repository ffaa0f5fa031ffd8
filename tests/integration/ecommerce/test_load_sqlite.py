"""The embedded SQLite fallback keeps the same guarantees as PostgreSQL."""

from __future__ import annotations

import sqlite3

import pytest

from flows.ecommerce.load import load_file, prepare_tables
from flows.ecommerce.parse import HeaderError


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'events.sqlite'}"


def rows(url: str, sql: str):
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql).fetchall()


def test_every_row_loads_with_exact_values(sqlite_url, sample_month):
    prepare_tables(sqlite_url, "events")
    summary = load_file(sqlite_url, "events", sample_month, str(sample_month))
    assert (summary.rows_loaded, summary.rows_rejected) == (50_000, 0)
    first_line = sample_month.read_text().splitlines()[1].split(",")
    loaded = rows(sqlite_url, "select * from events order by rowid limit 1")[0]
    expected_time = first_line[0].replace(" UTC", "+00:00")
    assert loaded[:8] == (
        expected_time,
        first_line[1],
        int(first_line[2]),
        int(first_line[3]),
        first_line[5] or None,
        first_line[6],
        int(first_line[7]),
        first_line[8] or None,
    )
    assert rows(sqlite_url, "select count(*), count(brand) < count(*), sum(price < 0) > 0 from events") == [
        (50_000, 1, 1)
    ]


def test_reload_is_idempotent_and_a_bad_header_loads_nothing(sqlite_url, sample_month, tmp_path):
    prepare_tables(sqlite_url, "events")
    load_file(sqlite_url, "events", sample_month, str(sample_month))
    assert load_file(sqlite_url, "events", sample_month, str(sample_month)).already_loaded
    bad = tmp_path / "2019-Nov.csv"
    bad.write_text("nope\n" + sample_month.read_text().split("\n", 1)[1])
    with pytest.raises(HeaderError):
        load_file(sqlite_url, "events", bad, str(bad))
    assert rows(sqlite_url, "select count(*) from events") == [(50_000,)]
    assert rows(sqlite_url, "select name from events_files") == [(sample_month.name,)]


def test_rejects_are_recorded(sqlite_url, sample_month, tmp_path):
    path = tmp_path / "2019-Dec.csv"
    path.write_text(sample_month.read_text().split("\n", 1)[0] + "\n2019-10-01 00:00:05 UTC,view,x,2,,b,1,3,s\n")
    prepare_tables(sqlite_url, "events")
    summary = load_file(sqlite_url, "events", path, str(path))
    assert (summary.rows_loaded, summary.rows_rejected) == (0, 1)
    assert rows(sqlite_url, "select line_number, reason from events_rejects") == [
        (2, "product_id: not a 64-bit integer: 'x'")
    ]
