"""Benchmark the ingest command against `psql \\copy` and the seed tutorial's pandas.to_sql.

For each file size it generates a month file (kept in --workdir between runs) and times, as whole
processes and with a CHECKPOINT before each:
  (a) `psql \\copy` of the raw CSV into an equivalent typed table: the speed limit of text COPY;
  (b) `python -m flows.ecommerce ingest FILE` (process start, validation, rejects, ledger included),
      with its peak RSS, in a virtual environment holding only the flows' runtime group, as the
      flows' image does (in the dev environment pyarrow imports pandas, which adds ~1 s);
and once (c) the seed's pandas chunks + `to_sql` on a --to-sql-rows slice.
It prints rows/s, the time ratio a/b (above 1.0: the ingest command beats \\copy) and peak RSS.

    uv run python scripts/bench_ingest.py [--rows 2000000 4100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]

COPY_LABEL = "(a) psql \\copy, raw CSV into typed table"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 4_100_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--to-sql-rows", type=int, default=200_000)
    parser.add_argument(
        "--database-url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "flowops-bench")
    args = parser.parse_args()

    runtime_python = _runtime_environment(args.workdir / "runtime-venv")
    results = []
    for rows in args.rows:
        path = _month_file(args.workdir / str(rows), rows)
        copy_runs, ingest_runs = [], []
        for _ in range(args.repeat):  # alternate, so drift in the machine's speed hits both alike
            copy_runs.append(_time_psql_copy(args.database_url, path))
            ingest_runs.append(_time_ingest(runtime_python, args.database_url, path))
        copy_seconds = statistics.median(copy_runs)
        ingest_seconds = statistics.median(seconds for seconds, _ in ingest_runs)
        peak_mib = max(rss for _, rss in ingest_runs)
        results.append((rows, copy_seconds, ingest_seconds, peak_mib))
    to_sql_rows = min(args.to_sql_rows, args.rows[0])
    to_sql_seconds = _time_to_sql(args.database_url, args.workdir / str(args.rows[0]) / "2019-Oct.csv", to_sql_rows)

    print(f"\n{'method':<42}{'rows':>11}{'seconds':>9}{'rows/s':>11}{'a/b':>7}{'peak RSS':>11}")
    for rows, copy_seconds, ingest_seconds, peak_mib in results:
        ratio = copy_seconds / ingest_seconds
        print(f"{COPY_LABEL:<42}{rows:>11,}{copy_seconds:>9.2f}{rows / copy_seconds:>11,.0f}")
        print(
            f"{'(b) python -m flows.ecommerce ingest':<42}{rows:>11,}{ingest_seconds:>9.2f}"
            f"{rows / ingest_seconds:>11,.0f}{ratio:>7.2f}{peak_mib:>8.0f} MiB"
        )
    print(
        f"{'(c) pandas chunks + to_sql (seed approach)':<42}{to_sql_rows:>11,}{to_sql_seconds:>9.2f}"
        f"{to_sql_rows / to_sql_seconds:>11,.0f}"
    )
    slowest = results[0][2] / results[0][0] * to_sql_rows
    print(f"\nto_sql is {to_sql_seconds / slowest:.0f}x slower per row than the ingest command.")
    print(f"peak RSS of (b): {', '.join(f'{rss:.0f} MiB at {rows:,} rows' for rows, _, _, rss in results)}")
    return 0


def _runtime_environment(folder: Path) -> Path:
    """A virtual environment with only the locked `flows` group: what the flows' image carries."""
    python = folder / "bin" / "python"
    if not python.exists():
        requirements = subprocess.run(
            ["uv", "export", "--only-group", "flows", "--no-hashes", "--no-emit-project", "--frozen"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, str(folder)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "--quiet", "--python", str(python), "-r", "-"],
            input=requirements,
            text=True,
            check=True,
        )
    return python


def _month_file(folder: Path, rows: int) -> Path:
    path = folder / "2019-Oct.csv"
    if not path.exists():
        # In a process of its own: a child's peak RSS counts the parent's memory when it was spawned.
        generate = ["-m", "flows.ecommerce", "generate", "--rows", str(rows), "--out", str(folder), "--seed", "1"]
        subprocess.run([sys.executable, *generate], cwd=ROOT, check=True)
    return path


def _reset(url: str, *tables: str, create: str | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"drop table if exists {table}")
        if create:
            conn.execute(create)
        conn.execute("checkpoint")


def _time_psql_copy(url: str, path: Path) -> float:
    _reset(
        url,
        "bench_copy",
        create="create table bench_copy (event_time timestamptz, event_type text, product_id bigint,"
        " category_id bigint, category_code text, brand text, price numeric(10,2), user_id bigint,"
        " user_session text)",
    )
    started = time.perf_counter()
    subprocess.run(["psql", url, "-qc", f"\\copy bench_copy from '{path}' csv header"], check=True)
    seconds = time.perf_counter() - started
    print(f"  psql \\copy   {path.parent.name:>9} rows: {seconds:6.2f} s", flush=True)
    return seconds


def _time_ingest(python: Path, url: str, path: Path) -> tuple[float, float]:
    _reset(url, "bench_ingest", "bench_ingest_rejects", "bench_ingest_files")
    command = [str(python), "-m", "flows.ecommerce", "ingest", str(path), "--database-url", url]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--table", "bench_ingest"],
        cwd=ROOT,
        env={**os.environ, "PREFECT_API_URL": ""},
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"ingest exited with {process.returncode}")
    peak_mib = usage.ru_maxrss / 1024
    print(f"  ingest       {path.parent.name:>9} rows: {seconds:6.2f} s, peak RSS {peak_mib:.0f} MiB", flush=True)
    return seconds, peak_mib


def _time_to_sql(url: str, path: Path, rows: int) -> float:
    """The seed tutorial's way: pandas chunks, parsed timestamps, `to_sql` inserts."""
    import pandas as pd
    import sqlalchemy

    _reset(url, "bench_to_sql")
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    started = time.perf_counter()
    for chunk in pd.read_csv(path, nrows=rows, chunksize=100_000):
        chunk["event_time"] = pd.to_datetime(chunk["event_time"].str.slice(0, 19), utc=True)
        chunk = chunk.drop(columns=["category_code"])
        chunk.to_sql("bench_to_sql", engine, if_exists="append", index=False)
    seconds = time.perf_counter() - started
    engine.dispose()
    print(f"  to_sql       {rows:>9} rows: {seconds:6.2f} s", flush=True)
    return seconds


if __name__ == "__main__":
    sys.exit(main())
