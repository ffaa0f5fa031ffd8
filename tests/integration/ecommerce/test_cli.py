"""`python -m flows.ecommerce` as a person runs it: real processes, real PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PREFECT_API_URL": "", **env}
    return subprocess.run(
        [sys.executable, "-m", "flows.ecommerce", *args],
        check=False,
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )


def test_generate_is_deterministic_for_a_seed(tmp_path):
    first = run("generate", "--month", "2020-02", "--rows", "30000", "--out", str(tmp_path / "a"), "--seed", "3")
    second = run("generate", "--month", "2020-02", "--rows", "30000", "--out", str(tmp_path / "b"), "--seed", "3")
    assert first.returncode == second.returncode == 0
    a, b = tmp_path / "a" / "2020-Feb.csv", tmp_path / "b" / "2020-Feb.csv"
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    lines = a.read_text().splitlines()
    assert len(lines) == 30_001
    assert lines[0] == "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    assert lines[1].startswith("2020-02-01 ")
    assert lines[-1].startswith("2020-02-29 ")


def test_ingest_prints_the_summary_and_exits_1_when_a_file_fails(postgres_url, table_name, sample_month, tmp_path):
    bad = tmp_path / "2019-Dec.csv"
    bad.write_text("wrong header\n")
    result = run("ingest", str(sample_month), str(bad), "--database-url", postgres_url, "--table", table_name)
    assert result.returncode == 1
    # columns are as wide as their widest cell, rows/s's too: matched by cells, whatever the speed
    assert re.search(r"^2019-Oct\.csv +50,000 +0 +[0-9.]+ +[0-9,]+  loaded$", result.stdout, re.MULTILINE)
    assert re.search(r"^2019-Dec\.csv +0 +0 +0\.00 +0  FAILED \(see below\)$", result.stdout, re.MULTILINE)
    assert result.stderr.startswith(f"error: {bad}: line 1: expected header")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"select count(*) from {table_name}").fetchone() == (50_000,)


def test_ingest_with_a_bad_database_url_fails_in_one_line_without_the_password(sample_month):
    result = run("ingest", str(sample_month), "--database-url", "postgresql://u:hunter2@127.0.0.1:1/db")
    assert result.returncode == 1
    assert "hunter2" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "postgresql://u:***@127.0.0.1:1/db" in result.stderr


def test_ingest_refuses_a_different_file_under_a_loaded_name_unless_replace(
    postgres_url, table_name, sample_month, tmp_path
):
    assert run("ingest", str(sample_month), "--database-url", postgres_url, "--table", table_name).returncode == 0
    other = tmp_path / sample_month.name  # same name, another folder, three rows
    other.write_bytes(b"".join(sample_month.read_bytes().splitlines(keepends=True)[:4]))
    refused = run("ingest", str(other), "--database-url", postgres_url, "--table", table_name)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {other}: a different {sample_month.name} is already loaded (50,000 rows")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"select count(*) from {table_name}").fetchone() == (50_000,)
    replaced = run("ingest", str(other), "--database-url", postgres_url, "--table", table_name, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"select count(*) from {table_name}").fetchone() == (3,)
