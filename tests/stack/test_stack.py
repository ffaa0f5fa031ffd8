"""`make stack`: compose.yaml brought up for real (scripts/stack.sh on the container stack), this commit's
production deployment on it, a run of it loading the five sample months, and `make stack-down` leaving nothing;
`make stack-ha`: runs on two workers behind two API replicas, surviving the kill of a worker and of a replica.

It runs from a clone of the committed HEAD, as CI does (flowops deploys only a clean checkout), under a compose
project and API port of its own, so a developer's own `make stack` is left alone.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flowops.local import free_port, git
from scripts.stack_runs import (
    FINAL,
    SAMPLE_MONTHS,
    a_worker_with_every_run_running,
    all_final,
    flow_runs,
    kill,
    start_month_runs,
    wait_until,
)
from tests.helpers import ROOT

# a stack test waits on image builds, compose and runs on a loaded machine: minutes, not the default 300 s
pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

ROWS_PER_MONTH = 2_000
MONTHS = 5


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def stack_up(env: dict[str, str], clone: Path, *options: str) -> subprocess.CompletedProcess:
    """`make stack` (or `stack-ha`). When it fails the message carries the containers' last log lines too: a 500
    from the API says nothing of its cause, the server's traceback does."""
    try:
        return run(["bash", "scripts/stack.sh", "up", *options], env, clone)
    except AssertionError as failure:
        command = ["bash", "scripts/stack.sh", "compose", "logs", "--no-color", "--tail", "60"]
        logs = subprocess.run(command, env=env, cwd=clone, capture_output=True, text=True, timeout=120, check=False)
        raise AssertionError(f"{failure}\nthe containers' logs, last lines:\n{logs.stdout}{logs.stderr}") from None


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


@contextmanager
def holding_the_flows_lock(clone: Path, env: dict[str, str], name: str) -> Iterator[None]:
    """Hold the advisory lock the flow's load.py takes as `name`, in a psql session of the stack's database, until
    the block ends: a run that needs it waits, Running, until then."""
    command = ["bash", "scripts/stack.sh", "compose", "exec", "-T", "postgres", "psql", "-U", "prefect"]
    session = subprocess.Popen(
        [*command, "-d", "ecommerce", "-Aqt"], env=env, cwd=clone, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    assert session.stdin is not None
    key = f"hashtextextended('{name}', 0)"
    session.stdin.write(f"select pg_advisory_lock({key});\n".encode())
    session.stdin.flush()
    held = (
        f"select count(*) from pg_locks where locktype = 'advisory' and granted and objid = ({key} & 4294967295)::oid"
    )
    try:
        wait_until(lambda: stack_sql(clone, env, held) == "1", 60, f"the test's psql session to hold lock {name!r}")
        yield
    finally:
        session.stdin.close()  # psql ends, and its session's lock with it
        session.wait(timeout=60)


def test_make_stack_serves_the_api_deploys_production_and_its_run_loads_every_sample_row(stack):
    clone, env, api_url = stack
    up = stack_up(env, clone)
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


def test_make_stack_ha_runs_survive_killing_an_api_replica_and_a_worker(stack):
    """Five runs, one month each, on two workers behind the proxy, each held Running at its first step by a lock
    the test holds. Once one worker's runs are all Running, its container and one API replica are killed (SIGKILL),
    and the lock is let go. The shipped automation
    (deployments/automations.yaml) reschedules each run the dead worker held, the other worker runs it again, and
    the table ends with every generated row exactly once."""
    clone, env, api_url = stack
    env["STACK_SAMPLE_ROWS"] = str(HA_ROWS_PER_MONTH)
    stack_up(env, clone, "--ha")
    project = env["FLOWOPS_STACK_PROJECT"]
    # Every run waits, Running, at its first step (the lock its table set-up takes) until the kill is done: a
    # run that ended between the choice of the worker and the kill made CI fail twice.
    with holding_the_flows_lock(clone, env, "ecommerce_events:prepare:ecommerce_events"):
        run_ids = start_month_runs(clone, env, api_url)
        worker, held = wait_until(
            lambda: a_worker_with_every_run_running(env, project, api_url, run_ids),
            300,
            "a worker whose runs are all Running",
            interval=0.5,
        )
        kill(env, worker)
        kill(env, f"{project}-prefect-api-1")
        # what the dead worker's runs had reported when it died: one that had not finished died with it
        at_kill = wait_until(lambda: flow_runs(api_url, sorted(held)), 60, "the runs' states after the kill")
    killed = sorted(run_id for run_id, flow_run in at_kill.items() if flow_run["state_type"] not in FINAL)
    assert killed == sorted(held), f"a run of {worker} ended while every run waited on the test's lock: {at_kill}"

    final = wait_until(lambda: all_final(api_url, run_ids), 600, "every run to end", interval=2)
    assert {r["state_name"] for r in final.values()} == {"Completed"}, {
        r["name"]: r["state_name"] for r in final.values()
    }
    assert {run_id: final[run_id]["run_count"] >= 2 for run_id in killed} == dict.fromkeys(killed, True)
    loaded = "select count(*), count(distinct file_id) from ecommerce_events"
    assert stack_sql(clone, env, loaded) == f"{HA_ROWS_PER_MONTH * len(SAMPLE_MONTHS)}|{len(SAMPLE_MONTHS)}"
