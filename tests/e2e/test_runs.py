"""Flow runs of deployed branches on real process workers: the code comes from the git clone, rows land in
PostgreSQL, and with two workers on one pool every run happens exactly once."""

from __future__ import annotations

import json
import os
import re
import uuid

import psycopg

from flowops.render.branches import branch_slug, data_environment_name
from scripts.stack_runs import wait_until
from tests.helpers import api, deployments, drop_schema, flow_run_logs, run_id, schema_rows

ECOMMERCE = "ecommerce-events-e2e"  # the e2e copy's flow name (tests/e2e/conftest.py)

RUN_TIMEOUT = "240"


def sources_param(*paths) -> str:
    return "sources=" + json.dumps([path.as_uri() for path in paths])


def test_production_and_a_branch_each_load_all_the_rows_into_their_own_data_and_teardown_drops_the_branchs(
    ecommerce_repo, sample_month, postgres_url, table_name
):
    """One table name, one database: production loads into `public`, the branch into its own schema (it does
    not find the file "already loaded"), and tearing the branch down drops its schema and nothing else."""
    pool = f"e2e-{uuid.uuid4().hex[:8]}"
    ecommerce_repo.bootstrap(pool, "production", "staging")
    ecommerce_repo.deploy("main", "--work-pool", pool)
    ecommerce_repo.deploy("feature/load-test", "--work-pool", pool)
    schema = data_environment_name("branch_", "feature/load-test")
    try:
        with ecommerce_repo.worker(pool):
            for deployment in (
                f"{ECOMMERCE}/production",
                f"{ECOMMERCE}/staging-{branch_slug('feature/load-test')}",
            ):
                result = ecommerce_repo.flowops(
                    "run", deployment, "--param", sources_param(sample_month), "--param", f"table={table_name}",
                    "--wait", "--timeout", RUN_TIMEOUT,
                )  # fmt: skip
                assert result.stdout.rstrip().endswith(": Completed"), result.stdout
            assert schema_rows(postgres_url, schema, table_name) == 50_000
            assert schema_rows(postgres_url, "public", table_name) == 50_000
            teardown = ecommerce_repo.flowops("teardown", "--branch", "feature/load-test")
        assert f"dropped data environment {schema}" in teardown.stdout, teardown.stdout
        assert schema_rows(postgres_url, schema, table_name) is None
        assert schema_rows(postgres_url, "public", table_name) == 50_000
        assert [name for name in deployments(ecommerce_repo.api_url) if branch_slug("feature/load-test") in name] == []
    finally:
        drop_schema(postgres_url, schema)


def test_runs_execute_the_code_of_the_commit_each_deployment_is_pinned_to_until_it_is_deployed_again(hello_repo):
    pool = f"e2e-{uuid.uuid4().hex[:8]}"
    pools = ["--work-pool", pool, "--work-pool-type", "process"]
    hello_repo.deploy("main", *pools)
    hello_repo.deploy("feature/pinned", *pools)
    flow_file = hello_repo.path / "flows" / "hello.py"
    flow_file.write_text(flow_file.read_text().replace('CODE_VERSION = "v1"', 'CODE_VERSION = "v2"'))
    hello_repo.commit("code v2", push=["main", "feature/pinned"])  # pushed, not deployed
    branch_deployment = f"staging-{branch_slug('feature/pinned')}"

    def code_versions() -> dict[str, list[str]]:
        versions = {}
        for deployment in ("production", branch_deployment):
            result = hello_repo.flowops(
                "run", f"{hello_repo.flow_name}/{deployment}", "--wait", "--timeout", RUN_TIMEOUT
            )
            assert result.stdout.rstrip().endswith(": Completed"), result.stdout
            logs = flow_run_logs(hello_repo.api_url, run_id(result.stdout), containing="from code")
            versions[deployment] = re.findall(r"from code (v\d)", logs)
        return versions

    with hello_repo.worker(pool):
        # a push alone changes nothing that runs: production, too, runs the commit it was deployed from
        assert code_versions() == {"production": ["v1"], branch_deployment: ["v1"]}
        hello_repo.deploy("main", *pools)
        assert code_versions() == {"production": ["v2"], branch_deployment: ["v1"]}


def test_two_workers_on_one_pool_run_every_flow_run_exactly_once_and_the_row_count_is_exact(
    ecommerce_repo, postgres_url, table_name, tmp_path
):
    from flows.ecommerce.generate import generate_month

    months = ["2019-10", "2019-11", "2019-12", "2020-01"]
    files = [generate_month(month, 10_000, tmp_path / "data", seed=index) for index, month in enumerate(months)]
    pool = f"e2e-{uuid.uuid4().hex[:8]}"
    ecommerce_repo.bootstrap(pool, "staging")
    ecommerce_repo.deploy("perf/two-workers", "--work-pool", pool)
    deployment = f"{ECOMMERCE}/staging-{branch_slug('perf/two-workers')}"
    schema = data_environment_name("branch_", "perf/two-workers")

    run_ids = []
    with ecommerce_repo.worker(pool, "worker-a") as worker_a, ecommerce_repo.worker(pool, "worker-b") as worker_b:
        for path in files:  # queue them all first, then wait: both workers pick from the same pool
            result = ecommerce_repo.flowops(
                "run", deployment, "--param", sources_param(path), "--param", f"table={table_name}"
            )
            run_ids.append(run_id(result.stdout))
        for flow_run_id in run_ids:
            state = _wait_for_final_state(ecommerce_repo.api_url, flow_run_id)
            assert state == "COMPLETED", flow_run_logs(ecommerce_repo.api_url, flow_run_id)
        logs = {"worker-a": worker_a.log(), "worker-b": worker_b.log()}

    for flow_run_id in run_ids:
        flow_run = api(ecommerce_repo.api_url, f"flow_runs/{flow_run_id}")
        assert flow_run["run_count"] == 1
        # Both workers may try; the server lets exactly one move the run to PENDING, the other is told to abort.
        started_by = [
            worker
            for worker, log in logs.items()
            if f"submitting flow run '{flow_run_id}'" in log
            and f"Aborted submission of flow run '{flow_run_id}'" not in log
        ]
        assert len(started_by) == 1, (flow_run_id, started_by)
    try:
        with psycopg.connect(postgres_url) as connection:
            assert connection.execute(f"select count(*) from {schema}.{table_name}").fetchone() == (40_000,)
            ledger = connection.execute(f"select count(*), count(distinct name) from {schema}.{table_name}_files")
            assert ledger.fetchone() == (4, 4)
    finally:
        drop_schema(postgres_url, schema)


def _wait_for_final_state(api_url: str, flow_run_id: str, timeout: float = 240) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = api(api_url, f"flow_runs/{flow_run_id}")["state"]
        if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state["type"]
        time.sleep(1)
    return "TIMEOUT"


A_FLOW_THAT_WAITS = """
import os
import time
from pathlib import Path

from prefect import flow


@flow(name="FLOW_NAME")
def hello(name: str = "world", count: int = 1, pid_file: str = "", go_file: str = "") -> None:
    Path(pid_file).write_text(str(os.getpid()))
    while not Path(go_file).exists():
        time.sleep(0.1)
    Path(pid_file).with_suffix(".wrote").write_text("written after the go file came")
"""


def test_teardown_stops_the_branchs_running_run_before_it_deletes_anything(hello_repo, tmp_path):
    """A run still going at teardown is cancelled, and the teardown waits until its process is gone: it would
    otherwise write on into the environment the cleanup drops."""
    flow_file = hello_repo.path / "flows" / "hello.py"
    flow_file.write_text(A_FLOW_THAT_WAITS.replace("FLOW_NAME", hello_repo.flow_name))
    hello_repo.commit("a flow that waits for a file", push=["main", "feature/busy"])
    pool = f"e2e-{uuid.uuid4().hex[:8]}"
    hello_repo.deploy("feature/busy", "--work-pool", pool, "--work-pool-type", "process")
    deployment = f"{hello_repo.flow_name}/staging-{branch_slug('feature/busy')}"
    pid_file, go_file = tmp_path / "run.pid", tmp_path / "go"
    with hello_repo.worker(pool):
        started = hello_repo.flowops(
            "run", deployment, "--param", f"pid_file={pid_file}", "--param", f"go_file={go_file}"
        )
        flow_run_id = run_id(started.stdout)
        flow_run_name = re.findall(r"flow run (\S+) \(", started.stdout)[-1]

        def state() -> str:
            return api(hello_repo.api_url, f"flow_runs/{flow_run_id}")["state"]["type"]

        wait_until(lambda: pid_file.exists() and state() == "RUNNING", 120, "the run to start and write its pid")
        pid = int(pid_file.read_text())

        teardown = hello_repo.flowops("teardown", "--branch", "feature/busy")
        assert f"cancelled run {flow_run_name} of {deployment} (Running): it had not ended" in teardown.stdout
        assert state() == "CANCELLED"
        wait_until(lambda: not _alive(pid), 30, f"the run's process {pid} to be gone")
        assert deployments(hello_repo.api_url, hello_repo.flow_name) == {}
    go_file.write_text("go")
    assert not pid_file.with_suffix(".wrote").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
