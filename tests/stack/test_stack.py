"""`make stack`: compose.yaml brought up for real (scripts/stack.sh on the container stack), this commit's
production deployment on it, a run of it loading the five sample months, and `make stack-down` leaving nothing;
`make stack-ha`: runs on two workers behind two API replicas, surviving the kill of a worker and of a replica.

It runs from a clone of the committed HEAD, as CI does (flowops deploys only a clean checkout), under a compose
project and API port of its own, so a developer's own `make stack` is left alone.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from flowops.local import free_port, git
from tests.helpers import ROOT, run_id

pytestmark = pytest.mark.stack

ROWS_PER_MONTH = 2_000
MONTHS = 5


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture
def stack(container_stack, tmp_path):
    clone = tmp_path / "flowops"
    git(tmp_path, "clone", "--quiet", str(ROOT), str(clone))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "VIRTUAL_ENV"))}
    env.update(
        FLOWOPS_STACK_STATE=str(tmp_path / "state"),
        FLOWOPS_STACK_PROJECT=f"flowops-test-{uuid.uuid4().hex[:6]}",
        PREFECT_PORT=str(port),
        STACK_SAMPLE_ROWS=str(ROWS_PER_MONTH),
    )
    try:
        yield clone, env, f"http://127.0.0.1:{port}/api"
    finally:
        subprocess.run(
            ["bash", "scripts/stack.sh", "down"], env=env, cwd=clone, capture_output=True, timeout=300, check=False
        )


def stack_sql(clone: Path, env: dict[str, str], query: str) -> str:
    command = ["bash", "scripts/stack.sh", "compose", "exec", "-T", "postgres"]
    return run([*command, "psql", "-U", "prefect", "-d", "ecommerce", "-Atc", query], env, clone).stdout.strip()


def test_make_stack_serves_the_api_deploys_production_and_its_run_loads_every_sample_row(stack):
    clone, env, api_url = stack
    up = run(["bash", "scripts/stack.sh", "up"], env, clone)
    assert "+ create    ecommerce-events/production" in up.stdout

    flowops = ["uv", "run", "--quiet", "flowops"]
    result = run([*flowops, "run", "ecommerce-events/production", "--wait"], {**env, "PREFECT_API_URL": api_url}, clone)
    assert result.stdout.strip().endswith("Completed")
    loaded = "select count(*), count(distinct file_id) from ecommerce_events"
    assert stack_sql(clone, env, loaded) == f"{ROWS_PER_MONTH * MONTHS}|{MONTHS}"
    # run again: every file is already in the ledger, nothing is loaded twice
    again = run([*flowops, "run", "ecommerce-events/production", "--wait"], {**env, "PREFECT_API_URL": api_url}, clone)
    assert again.stdout.strip().endswith("Completed")
    assert stack_sql(clone, env, loaded) == f"{ROWS_PER_MONTH * MONTHS}|{MONTHS}"

    run(["bash", "scripts/stack.sh", "down"], env, clone)
    left = run(["bash", "scripts/stack.sh", "compose", "ps", "--all", "--quiet"], env, clone)
    assert left.stdout.strip() == ""


HA_ROWS_PER_MONTH = 200_000
SAMPLE_MONTHS = ["2019-Oct.csv", "2019-Nov.csv", "2019-Dec.csv", "2020-Jan.csv", "2020-Feb.csv"]
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def flow_runs(api_url: str, run_ids: list[str]) -> dict[str, dict]:
    body = {"flow_runs": {"id": {"any_": run_ids}}}
    response = httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    return {run["id"]: run for run in response.json()}


def has_heartbeat(api_url: str, run_id: str) -> bool:
    body = {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
            "occurred": {"since": "2000-01-01T00:00:00Z"},
        },
        "limit": 1,
    }
    response = httpx.post(f"{api_url}/events/filter", json=body, timeout=10)
    response.raise_for_status()
    return bool(response.json()["events"])


def worker_running(clone: Path, env: dict[str, str], project: str, flow_run: dict) -> str:
    """The worker container whose process runs `flow_run`: a process worker records only the pid, in its own
    container's pid namespace, so each worker is asked whether that pid is this run."""
    pid = int(flow_run["infrastructure_pid"])
    found = []
    for worker in (f"{project}-worker-1", f"{project}-worker-2"):
        environ = subprocess.run(
            ["podman", "exec", worker, "cat", f"/proc/{pid}/environ"],
            env=env,
            cwd=clone,
            capture_output=True,
            check=False,
        ).stdout
        if f"PREFECT__FLOW_RUN_ID={flow_run['id']}".encode() in environ.split(b"\0"):
            found.append(worker)
    assert len(found) == 1, f"flow run {flow_run['id']} (pid {pid}) runs in {found or 'no worker'}"
    return found[0]


def wait_until(condition, timeout: float, what: str, interval: float = 1.0):
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


def test_make_stack_ha_runs_survive_killing_an_api_replica_and_a_worker(stack):
    """Five runs, one month each, on two workers behind the proxy. As soon as one run is loading (its first
    heartbeat sent), its worker's container and one API replica are killed (SIGKILL). The shipped automation
    (deployments/automations.yaml) reschedules the silent run, the other worker runs it again, and the table
    ends with every generated row exactly once."""
    clone, env, api_url = stack
    env["STACK_SAMPLE_ROWS"] = str(HA_ROWS_PER_MONTH)
    run(["bash", "scripts/stack.sh", "up", "--ha"], env, clone)
    project = env["FLOWOPS_STACK_PROJECT"]
    flowops = ["uv", "run", "--quiet", "flowops"]
    api_env = {**env, "PREFECT_API_URL": api_url}
    run_ids = []
    for month in SAMPLE_MONTHS:
        started = run(
            [*flowops, "run", "ecommerce-events/production", "--param", f'sources=["{month}"]'], api_env, clone
        )
        run_ids.append(run_id(started.stdout))

    def a_running_run_with_a_heartbeat():
        for flow_run in flow_runs(api_url, run_ids).values():
            if flow_run["state_type"] == "RUNNING" and has_heartbeat(api_url, flow_run["id"]):
                return flow_run
        return None

    victim = wait_until(a_running_run_with_a_heartbeat, 300, "a run loading with a heartbeat sent")
    worker = worker_running(clone, env, project, victim)
    run(["podman", "kill", "--signal", "KILL", worker], env, clone)
    run(["podman", "kill", "--signal", "KILL", f"{project}-prefect-api-1"], env, clone)

    def all_final():
        runs = flow_runs(api_url, run_ids)
        return runs if all(r["state_type"] in FINAL for r in runs.values()) and len(runs) == len(run_ids) else None

    final = wait_until(all_final, 600, "every run to end", interval=2)
    assert {r["state_name"] for r in final.values()} == {"Completed"}, {
        r["name"]: r["state_name"] for r in final.values()
    }
    assert final[victim["id"]]["run_count"] >= 2, "the killed run was not run again"
    loaded = "select count(*), count(distinct file_id) from ecommerce_events"
    assert stack_sql(clone, env, loaded) == f"{HA_ROWS_PER_MONTH * len(SAMPLE_MONTHS)}|{len(SAMPLE_MONTHS)}"
