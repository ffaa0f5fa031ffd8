"""Loading generated month files into a real PostgreSQL server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from flows.ecommerce.load import FileChangedError, load_file, prepare_tables
from flows.ecommerce.parse import HeaderError
from flows.ecommerce.schema import HEADER

ROOT = Path(__file__).resolve().parents[3]
AGGREGATES = (
    "select count(*), sum(price), count(brand), count(user_session), min(event_time), max(event_time),"
    " sum(product_id), sum(category_id::numeric), sum(user_id), count(*) filter (where price < 0),"
    " count(distinct event_type) from {table}"
)


def query(url: str, sql: str, *params):
    with psycopg.connect(url) as conn:
        cursor = conn.execute(sql, params or None)
        return cursor.fetchall() if cursor.description else None


def load(url: str, table: str, path: Path, **options):
    prepare_tables(url, table)
    return load_file(url, table, path, str(path), **options)


def test_every_row_loads_with_the_same_values_as_psql_copy(postgres_url, table_name, sample_month):
    """It loads exactly what `psql \\copy` of the raw file loads, minus category_code."""
    summary = load(postgres_url, table_name, sample_month, block_size=1 << 20)
    assert (summary.rows_loaded, summary.rows_rejected) == (50_000, 0)

    raw = f"{table_name}_raw"
    query(
        postgres_url,
        f"create table {raw} (event_time timestamptz, event_type text, product_id bigint, category_id bigint,"
        " category_code text, brand text, price numeric(10,2), user_id bigint, user_session text)",
    )
    try:
        subprocess.run(["psql", postgres_url, "-qc", f"\\copy {raw} from '{sample_month}' csv header"], check=True)
        assert query(postgres_url, AGGREGATES.format(table=table_name)) == query(
            postgres_url, AGGREGATES.format(table=raw)
        )
        only_in_one = f"""
            (select event_time, event_type, product_id, category_id, brand, price, user_id, user_session
             from {table_name} except all
             select event_time, event_type, product_id, category_id, brand, price, user_id, user_session from {raw})
            union all
            (select event_time, event_type, product_id, category_id, brand, price, user_id, user_session
             from {raw} except all
             select event_time, event_type, product_id, category_id, brand, price, user_id, user_session
             from {table_name})"""
        assert query(postgres_url, f"select count(*) from ({only_in_one}) differences") == [(0,)]
    finally:
        query(postgres_url, f"drop table {raw}")


def test_real_data_quirks_load(postgres_url, table_name, sample_month):
    load(postgres_url, table_name, sample_month)
    negative, no_brand, no_session = query(
        postgres_url,
        f"select count(*) filter (where price < 0), count(*) filter (where brand is null),"
        f" count(*) filter (where user_session is null) from {table_name}",
    )[0]
    duplicates = query(
        postgres_url,
        f"select count(*) from (select count(*) from {table_name} group by event_time, event_type, product_id,"
        " category_id, brand, price, user_id, user_session having count(*) > 1) d",
    )[0][0]
    assert negative >= 1
    assert 0.3 < no_brand / 50_000 < 0.55
    assert no_session >= 1
    assert duplicates >= 1


def test_loading_the_same_file_again_leaves_one_copy(postgres_url, table_name, sample_month):
    load(postgres_url, table_name, sample_month)
    again = load(postgres_url, table_name, sample_month)
    assert again.already_loaded
    assert query(postgres_url, f"select count(*) from {table_name}") == [(50_000,)]
    assert query(postgres_url, f"select name, rows_loaded, rows_rejected from {table_name}_files") == [
        (sample_month.name, 50_000, 0)
    ]


def test_a_different_file_under_a_loaded_name_is_refused_and_changes_nothing(
    postgres_url, table_name, sample_month, tmp_path
):
    load(postgres_url, table_name, sample_month)
    other = tmp_path / "other-folder" / sample_month.name
    other.parent.mkdir()
    other.write_bytes(b"".join(sample_month.read_bytes().splitlines(keepends=True)[:4]))  # a 3-row month
    with pytest.raises(FileChangedError, match=rf"{other}: a different {sample_month.name} is already loaded"):
        load(postgres_url, table_name, other)
    assert query(postgres_url, f"select count(*) from {table_name}") == [(50_000,)]
    assert query(postgres_url, f"select rows_loaded from {table_name}_files") == [(50_000,)]


def test_a_changed_file_replaces_its_earlier_rows_when_the_load_says_so(
    postgres_url, table_name, sample_month, tmp_path
):
    load(postgres_url, table_name, sample_month)
    changed = tmp_path / sample_month.name
    lines = sample_month.read_bytes().splitlines(keepends=True)
    changed.write_bytes(b"".join(lines[:1001]) + b"2019-10-31 23:59:59 UTC,click,1,2,,,1.00,3,s\n")
    summary = load(postgres_url, table_name, changed, replace=True)
    assert (summary.rows_loaded, summary.rows_rejected, summary.already_loaded) == (1000, 1, False)
    assert query(postgres_url, f"select count(*) from {table_name}") == [(1000,)]
    assert query(postgres_url, f"select count(*) from {table_name}_rejects") == [(1,)]


def test_each_kind_of_invalid_row_lands_in_rejects_with_its_reason(postgres_url, table_name, tmp_path):
    good = "2019-10-01 00:00:05 UTC,view,5802432,1487580009286598681,,runail,2.50,463240011,s1"
    bad = {
        3: ("2019-10-01 00:00:05 UTC,view,5802432,1487580009286598681,,runail,2.50", "expected 9 fields, found 7"),
        4: ("2019-13-01 00:00:05 UTC,view,1,2,,b,2.50,3,s", "event_time: not a time"),
        5: ("2019-10-01 00:00:05 UTC,like,1,2,,b,2.50,3,s", "event_type: unknown 'like'"),
        6: ("2019-10-01 00:00:05 UTC,view,abc,2,,b,2.50,3,s", "product_id: not a 64-bit integer"),
        7: ("2019-10-01 00:00:05 UTC,view,1,2,,b,free,3,s", "price: not a number"),
    }
    lines = [HEADER, good, *(line for line, _ in bad.values()), good]
    path = tmp_path / "2019-Nov.csv"
    path.write_text("\n".join(lines) + "\n")
    summary = load(postgres_url, table_name, path)
    assert (summary.rows_loaded, summary.rows_rejected) == (2, 5)
    rejects = query(
        postgres_url, f"select line_number, reason, raw_line, source from {table_name}_rejects order by line_number"
    )
    assert [(n, raw, source) for n, _, raw, source in rejects] == [(n, line, str(path)) for n, (line, _) in bad.items()]
    for (_, reason, _, _), (_, expected) in zip(rejects, bad.values(), strict=True):
        assert reason.startswith(expected)


def test_a_file_of_only_bad_rows_loads_none_and_rejects_all(postgres_url, table_name, tmp_path):
    path = tmp_path / "2020-Jan.csv"
    path.write_text(HEADER + "\nbad,line\n\n2020-01-01 00:00:00 UTC,view,1,2,,b,1.00,3\n")
    summary = load(postgres_url, table_name, path)
    assert (summary.rows_loaded, summary.rows_rejected) == (0, 3)
    assert query(postgres_url, f"select line_number, reason from {table_name}_rejects order by 1") == [
        (2, "expected 9 fields, found 2"),
        (3, "empty line"),
        (4, "expected 9 fields, found 8"),
    ]


def test_a_wrong_header_loads_nothing(postgres_url, table_name, sample_month, tmp_path):
    path = tmp_path / "2019-Dec.csv"
    path.write_bytes(b"time,type,product\n" + sample_month.read_bytes().split(b"\n", 1)[1])
    with pytest.raises(HeaderError, match=r"2019-Dec\.csv: line 1: expected header"):
        load(postgres_url, table_name, path)
    assert query(postgres_url, f"select count(*) from {table_name}") == [(0,)]
    assert query(postgres_url, f"select count(*) from {table_name}_files") == [(0,)]


def test_a_load_killed_half_way_leaves_no_rows_and_a_rerun_loads_once(postgres_url, table_name, tmp_path):
    from flows.ecommerce.generate import generate_month

    path = generate_month("2019-11", 400_000, tmp_path)
    prepare_tables(postgres_url, table_name)
    loader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.ecommerce",
            "ingest",
            str(path),
            "--database-url",
            postgres_url,
            "--table",
            table_name,
            "--chunk-size",
            str(1 << 18),
        ],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": ""},
    )
    deadline = time.monotonic() + 60
    copied = 0
    while copied == 0 and time.monotonic() < deadline and loader.poll() is None:
        rows = query(
            postgres_url, "select tuples_processed from pg_stat_progress_copy where relid = %s::regclass", table_name
        )
        copied = rows[0][0] if rows else 0
        time.sleep(0.01)
    loader.send_signal(signal.SIGKILL)
    loader.wait()
    assert copied > 0, "the COPY was not seen in progress before the loader finished"
    assert query(postgres_url, f"select count(*) from {table_name}") == [(0,)]
    assert query(postgres_url, f"select count(*) from {table_name}_files") == [(0,)]

    summary = load(postgres_url, table_name, path)
    assert summary.rows_loaded == 400_000
    assert query(postgres_url, f"select count(*) from {table_name}") == [(400_000,)]


def test_two_files_load_concurrently_into_one_table(postgres_url, table_name, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from flows.ecommerce.generate import generate_month

    files = [generate_month(month, 20_000, tmp_path, seed=i) for i, month in enumerate(["2019-10", "2019-11"])]
    prepare_tables(postgres_url, table_name)
    with ThreadPoolExecutor(2) as pool:
        summaries = list(pool.map(lambda p: load_file(postgres_url, table_name, p, str(p)), files))
    assert [s.rows_loaded for s in summaries] == [20_000, 20_000]
    assert query(
        postgres_url,
        f"select f.name, count(*) from {table_name} e join {table_name}_files f"
        " on f.id = e.file_id group by f.name order by 1",
    ) == [("2019-Nov.csv", 20_000), ("2019-Oct.csv", 20_000)]
