"""Driving flow runs on a running `make stack` / `make stack-ha`, and killing what runs them: what the HA test
(tests/stack) and the workers benchmark (scripts/bench_workers.py) share."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

SAMPLE_MONTHS = ["2019-Oct.csv", "2019-Nov.csv", "2019-Dec.csv", "2020-Jan.csv", "2020-Feb.csv"]
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
T = TypeVar("T")


def start_month_runs(root: Path, env: dict[str, str], api_url: str) -> list[str]:
    """One production run per sample month (so that several workers share the load); their ids."""
    run_ids = []
    for month in SAMPLE_MONTHS:
        started = subprocess.run(
            ["uv", "run", "--quiet", "flowops", "run", "ecommerce-events/production", "--param", f'sources=["{month}"]'],
            env={**env, "PREFECT_API_URL": api_url}, cwd=root, capture_output=True, text=True, check=True,
        )  # fmt: skip
        run_ids.append(started.stdout.split("(", 1)[1].split(")", 1)[0])
    return run_ids


def flow_runs(api_url: str, run_ids: list[str]) -> dict[str, dict]:
    body = {"flow_runs": {"id": {"any_": run_ids}}}
    response = httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    return {run["id"]: run for run in response.json()}


def all_final(api_url: str, run_ids: list[str]) -> dict[str, dict] | None:
    runs = flow_runs(api_url, run_ids)
    return runs if len(runs) == len(run_ids) and all(r["state_type"] in FINAL for r in runs.values()) else None


def runs_in(env: dict[str, str], container: str) -> set[str]:
    """The flow runs whose processes live in a worker's container: a process worker records only a run's pid (in
    its container's pid namespace), so each process's environment is read for its PREFECT__FLOW_RUN_ID."""
    script = "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | sed -n 's/^PREFECT__FLOW_RUN_ID=//p'"
    listed = subprocess.run(
        ["podman", "exec", container, "sh", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    return set(listed.stdout.split())


def worker_running(env: dict[str, str], project: str, flow_run: dict, workers: int = 2) -> tuple[str, set[str]]:
    """The worker container that runs `flow_run`, and every run it holds."""
    for worker in (f"{project}-worker-{index}" for index in range(1, workers + 1)):
        held = runs_in(env, worker)
        if flow_run["id"] in held:
            return worker, held
    raise AssertionError(f"no worker runs flow run {flow_run['id']}")


def a_worker_with_every_run_running(
    env: dict[str, str], project: str, api_url: str, run_ids: list[str]
) -> tuple[str, set[str]] | None:
    """A worker whose runs that have not ended are all Running (so all covered by the automation that reschedules
    silent runs: it watches a run from its Running event on; a Pending one is left to the other automation, three
    minutes later), and those runs. A run that already ended needs no rescheduling: on a loaded machine a worker's
    first run can end before its second one starts, and two Running at once may never come."""
    runs = flow_runs(api_url, run_ids)
    # the latest started first: its worker's runs are the furthest from their end, so the kill that follows still
    # finds one unfinished (a run that had been Running for a while ended before the kill once, in CI)
    for flow_run in sorted(runs.values(), key=lambda run: run.get("start_time") or "", reverse=True):
        if flow_run["state_type"] == "RUNNING":
            worker, held = worker_running(env, project, flow_run)
            states = [runs[run_id]["state_type"] for run_id in held if run_id in runs]
            if all(state == "RUNNING" or state in FINAL for state in states):
                return worker, held
    return None


def kill(env: dict[str, str], container: str) -> None:
    subprocess.run(["podman", "kill", "--signal", "KILL", container], env=env, capture_output=True, check=True)


def wait_until(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition()
        except httpx.HTTPError:  # the proxy while a replica goes: asked again
            found = None
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
