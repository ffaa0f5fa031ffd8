"""The `ecommerce-events` flow against a real (test) Prefect server and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def data_dirs(monkeypatch, sample_month, tmp_path):
    """The flow reads local paths only under $ECOMMERCE_DATA_DIR: the sample's folder and the test's own."""
    import os

    monkeypatch.setenv("ECOMMERCE_DATA_DIR", os.pathsep.join([str(sample_month.parent), str(tmp_path)]))
    monkeypatch.delenv("ECOMMERCE_ALLOWED_URLS", raising=False)


@pytest.fixture
def database_block(prefect_server, postgres_url):
    from prefect.blocks.system import Secret

    name = f"test-db-{uuid.uuid4().hex[:8]}"
    Secret(value=postgres_url).save(name)
    return name


def test_the_flow_loads_from_the_secret_blocks_database_and_publishes_an_artifact(
    database_block, postgres_url, table_name, sample_month, monkeypatch
):
    from prefect.artifacts import Artifact

    from flows.ecommerce.flow import ingest_events

    monkeypatch.delenv("ECOMMERCE_DATABASE_URL", raising=False)
    summaries = ingest_events(
        sources=[str(sample_month)], table=table_name, database_secret_block=database_block, concurrency=1
    )
    assert [(s.source, s.rows_loaded, s.rows_rejected) for s in summaries] == [(sample_month.name, 50_000, 0)]
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"select count(*) from {table_name}").fetchone() == (50_000,)
    artifact = Artifact.get("ecommerce-events-load")
    assert f"| {sample_month.name} | 50,000 | 0 |" in artifact.data
    # the summary flowops shows on a pull request: per file, per event type, and the table's columns and types
    summary = {row["measure"]: row["value"] for row in json.loads(Artifact.get("flowops-summary").data)}
    assert (summary[f"{sample_month.name}: rows loaded"], summary[f"{sample_month.name}: rows rejected"]) == (50_000, 0)
    assert sum(v for k, v in summary.items() if k.startswith("rows with event_type ")) == 50_000
    assert summary["column event_time"] == "timestamp with time zone"
    assert "column category_code" not in summary  # dropped


def test_a_bad_file_fails_the_run_without_retries_and_the_good_files_still_load(
    database_block, postgres_url, table_name, sample_month, tmp_path
):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.ecommerce.flow import ingest_events

    bad = tmp_path / "2019-Nov.csv"
    bad.write_text("not,the,header\n")
    state = ingest_events(
        sources=[str(bad), str(sample_month)],
        table=table_name,
        database_secret_block=database_block,
        return_state=True,
    )
    assert state.is_failed()
    assert str(state.result(raise_on_failure=False)) == "1 of 2 files failed: 2019-Nov.csv"
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"select name, rows_loaded from {table_name}_files").fetchall() == [
            (sample_month.name, 50_000)
        ]
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    bad_runs = [run for run in task_runs if run.name == f"load-{bad}"]
    assert len(bad_runs) == 1
    assert bad_runs[0].run_count == 1  # a wrong header is not retried


def test_a_different_file_under_a_loaded_name_fails_once_unless_the_run_says_replace(
    database_block, postgres_url, table_name, sample_month, tmp_path
):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.ecommerce.flow import ingest_events

    options = {"table": table_name, "database_secret_block": database_block}
    ingest_events(sources=[str(sample_month)], **options)
    other = tmp_path / sample_month.name
    other.write_bytes(b"".join(sample_month.read_bytes().splitlines(keepends=True)[:4]))
    state = ingest_events(sources=[str(other)], **options, return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    assert [run.run_count for run in task_runs if run.name.startswith("load-")] == [1]  # not retried
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"select count(*) from {table_name}").fetchone() == (50_000,)
    summaries = ingest_events(sources=[str(other)], **options, replace=True)
    assert [(s.rows_loaded, s.already_loaded) for s in summaries] == [(3, False)]


def test_ingest_runs_as_a_flow_run_when_a_prefect_api_is_configured(
    prefect_server, postgres_url, table_name, sample_month
):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    del environment["ECOMMERCE_DATA_DIR"]  # a person's own paths need no allowance
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.ecommerce",
            "ingest",
            str(sample_month),
            "--database-url",
            postgres_url,
            "--table",
            table_name,
        ],
        cwd=Path(__file__).resolve().parents[3],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2019-Oct.csv       50,000         0" in result.stdout
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    assert any(run.parameters.get("table") == table_name and run.state.is_completed() for run in runs)
    assert all(postgres_url not in str(run.parameters) for run in runs)  # the URL is never a parameter


def test_a_transient_download_failure_is_retried_and_loads_the_file_once(
    database_block, postgres_url, table_name, sample_month, tmp_path, monkeypatch
):
    """The first GET of the file answers 503; the task's retry downloads and loads it once."""
    import functools
    import http.server
    import threading

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.ecommerce.flow import ingest_events

    failures_left = [1]

    class FlakyHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self):
            if failures_left[0]:
                failures_left[0] -= 1
                self.send_error(503, "busy")
                return None
            return super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(FlakyHandler, directory=str(sample_month.parent))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ECOMMERCE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ECOMMERCE_ALLOWED_URLS", f"http://127.0.0.1:{server.server_address[1]}/")
    url = f"http://127.0.0.1:{server.server_address[1]}/{sample_month.name}"
    try:
        state = ingest_events(sources=[url], table=table_name, database_secret_block=database_block, return_state=True)
    finally:
        server.shutdown()
        server.server_close()  # its listening socket too
        server.server_close()
    assert state.is_completed()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"select count(*) from {table_name}").fetchone() == (50_000,)
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    assert [run.run_count for run in task_runs if run.name.startswith("load-")] == [2]


def test_secrets_in_a_source_url_and_a_malformed_database_url_never_leave_the_flow(
    database_block, postgres_url, table_name, sample_month, tmp_path, monkeypatch
):
    """Canaries in a source URL's userinfo and query, and in a Secret block whose database URL is malformed (a
    driver echoes such fragments): none reaches a log, a task run name, the artifact, the ledger or the cache."""
    import functools
    import http.server
    import threading

    from prefect import get_client
    from prefect.artifacts import Artifact
    from prefect.blocks.system import Secret
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    from flows.ecommerce.flow import ingest_events

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sample_month.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache = tmp_path / "cache"
    monkeypatch.setenv("ECOMMERCE_CACHE_DIR", str(cache))
    monkeypatch.setenv("ECOMMERCE_ALLOWED_URLS", f"http://127.0.0.1:{server.server_address[1]}")
    canaries = ["canary-userinfo-7f3a", "canary-signature-9b1c", "canary-db-pass-4e2d"]
    source = f"http://reader:{canaries[0]}@127.0.0.1:{server.server_address[1]}/{sample_month.name}?sig={canaries[1]}"
    broken_block = f"broken-db-{uuid.uuid4().hex[:8]}"
    Secret(value=f"postgresql://app:{canaries[2]}%zz@127.0.0.1:5432/test").save(broken_block)
    try:
        loaded = ingest_events(
            sources=[source], table=table_name, database_secret_block=database_block, return_state=True
        )
        broken = ingest_events(
            sources=[source], table=table_name, database_secret_block=broken_block, return_state=True
        )
    finally:
        server.shutdown()
        server.server_close()  # its listening socket too
    assert loaded.is_completed()
    assert broken.is_failed()

    seen = []
    with get_client(sync_client=True) as client:
        for state in (loaded, broken):
            run_id = state.state_details.flow_run_id
            (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            seen += [run.name, str(run.state.message)]
            seen += [task_run.name for task_run in client.read_task_runs() if task_run.flow_run_id == run_id]
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            seen += [log.message for log in logs]
    seen.append(Artifact.get("ecommerce-events-load").data)
    with psycopg.connect(postgres_url) as conn:
        seen += [str(row) for row in conn.execute(f"select * from {table_name}_files")]
    seen += [path.read_text() for path in cache.glob("**/*.json")]
    text = "\n".join(seen)
    assert "load-http://reader:***@127.0.0.1" in text  # the task run name, redacted
    assert "canary-db-pass" not in text
    assert "%zz" not in text
    for canary in canaries:
        assert canary not in text
    assert any("sig=***" in entry for entry in seen)  # the ledger and the sidecar keep the redacted source


def test_a_source_of_a_kind_not_allowed_fails_the_run_before_anything_is_read_or_written(
    database_block, postgres_url, table_name, sample_month, tmp_path, monkeypatch
):
    """A run parameter naming the worker's environment, memory, ftp, an internal http service or a path outside
    $ECOMMERCE_DATA_DIR: the run fails at once, naming the source and the allowed kinds; no table is made."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.ecommerce.flow import ingest_events

    outside = tmp_path.parent / f"outside-{uuid.uuid4().hex[:6]}.csv"
    outside.write_bytes(sample_month.read_bytes())
    escape = tmp_path / ".." / outside.name  # `..` out of an allowed folder
    for index, source in enumerate(
        ["file:///proc/self/environ", "memory://x.csv", "ftp://127.0.0.1/x.csv", "http://169.254.169.254/x.csv",
         str(outside), str(escape), "zip://x.csv::" + sample_month.as_uri()]
    ):  # fmt: skip
        state = ingest_events(
            sources=[str(sample_month), source], table=table_name, database_secret_block=database_block,
            return_state=True,
        )  # fmt: skip
        assert state.is_failed()
        message = state.message or ""
        assert f"sources[1]: {source}: refused" in message, message
        assert "allowed: Kaggle file names (2019-Oct.csv), https:// URLs" in message
        with get_client(sync_client=True) as client:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
        assert task_runs == [], index  # not even the good source was loaded
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("select to_regclass(%s)", (table_name,)).fetchone() == (None,)
