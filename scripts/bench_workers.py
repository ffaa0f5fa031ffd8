"""Rows per second of the five sample months with one worker and with two, and how long a run whose worker is
killed takes to be brought back, on a running `make stack-ha`.

Each measurement empties the events table, starts one production run per month (scripts/stack_runs.py) and
waits until every run has ended. With --kill-worker it then starts them again and, as soon as one worker's runs
are all Running, SIGKILLs its container, and prints when one of them was rescheduled (the
automation in deployments/automations.yaml) and when it completed on the other worker.

    STACK_SAMPLE_ROWS=200000 make stack-ha && uv run python scripts/bench_workers.py --workers 1 2 --kill-worker
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, only scripts/ is on the path

from scripts.stack_runs import (
    SAMPLE_MONTHS,
    a_worker_with_every_run_running,
    all_final,
    flow_runs,
    kill,
    start_month_runs,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
TABLE = "ecommerce_events"


def stack(*args: str) -> str:
    command = ["bash", "scripts/stack.sh", "compose", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def sql(query: str) -> str:
    return stack("exec", "-T", "postgres", "psql", "-U", "prefect", "-d", "ecommerce", "-Atc", query).strip()


def scale_workers(count: int) -> None:
    stack("up", "--detach", "--no-build", "--no-deps", "--scale", f"worker={count}", "worker")
    time.sleep(15)  # each worker's first poll


def empty_table() -> None:
    sql(f"drop table if exists {TABLE}, {TABLE}_rejects, {TABLE}_files")


def measure(api_url: str, env: dict[str, str], workers: int) -> None:
    scale_workers(workers)
    empty_table()
    started = time.monotonic()
    run_ids = start_month_runs(ROOT, env, api_url)
    final = wait_until(lambda: all_final(api_url, run_ids), 1800, "every run to end", interval=0.5)
    seconds = time.monotonic() - started
    states = sorted({run["state_name"] for run in final.values()})
    rows = int(sql(f"select count(*) from {TABLE}"))
    print(f"{workers} worker(s): {rows:,} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s; runs {states}")


def measure_worker_kill(api_url: str, env: dict[str, str], project: str) -> None:
    scale_workers(2)
    empty_table()
    run_ids = start_month_runs(ROOT, env, api_url)
    worker, held = wait_until(
        lambda: a_worker_with_every_run_running(env, project, api_url, run_ids), 300, "runs loading", interval=0.2
    )
    kill(env, worker)
    victim = {"id": min(held)}
    killed = time.monotonic()

    def left_running() -> dict | None:
        run = flow_runs(api_url, [victim["id"]])[victim["id"]]
        return run if run["state_type"] != "RUNNING" else None

    rescheduled = wait_until(left_running, 600, "the killed run to be rescheduled", interval=0.5)
    rescheduled_after = time.monotonic() - killed

    def completed() -> dict | None:
        run = flow_runs(api_url, [victim["id"]])[victim["id"]]
        return run if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    done = wait_until(completed, 600, "the killed run to end", interval=0.5)
    done_after = time.monotonic() - killed
    final = wait_until(lambda: all_final(api_url, run_ids), 600, "every run to end", interval=0.5)
    rows = int(sql(f"select count(*) from {TABLE}"))
    files = int(sql(f"select count(distinct file_id) from {TABLE}"))
    print(
        f"worker {worker} killed: its run went to {rescheduled['state_name']} after {rescheduled_after:.0f} s and"
        f" ended {done['state_name']} (run {done['run_count']}) after {done_after:.0f} s;"
        f" all runs {sorted({r['state_name'] for r in final.values()})}; {rows:,} rows from {files} files"
    )
    scale_workers(2)  # the killed one again


def container_stack_env() -> dict[str, str]:
    """What `eval "$(bash scripts/container-stack.sh env)"` would export: podman's storage and configuration."""
    exports = subprocess.run(
        ["bash", "scripts/container-stack.sh", "env"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines() if "=" in line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kill-worker", action="store_true")
    parser.add_argument("--api-url", default=f"http://127.0.0.1:{os.environ.get('PREFECT_PORT', '4200')}/api")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(container_stack_env())
    project = os.environ.get("FLOWOPS_STACK_PROJECT", "flowops")
    print(f"{len(SAMPLE_MONTHS)} months, one run each, through {args.api_url}")
    for workers in args.workers:
        measure(args.api_url, env, workers)
    if args.kill_worker:
        measure_worker_kill(args.api_url, env, project)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
