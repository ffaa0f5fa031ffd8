"""Production's shape, for real, on this machine: the flows' image built with prefect-docker's steps and pushed to
a registry, a Docker work pool (host networking) whose worker runs each flow run in a container that git-clones
the code from origin and loads rows into PostgreSQL. A code-only commit builds nothing and runs the new code.

Needs the local container stack: `bash scripts/container-stack.sh up` and `eval "$(bash scripts/container-stack.sh
env)"` (.ci/run does both). Elsewhere these tests are skipped, saying so.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from flowops.local import free_port
from tests.e2e.conftest import ROOT, _repo, api, deployments, flow_run_logs, run_id

pytestmark = pytest.mark.container

RUN_TIMEOUT = "300"


@pytest.fixture
def git_daemon(tmp_path):
    """Serve the repo's bare origin over git:// on 127.0.0.1: containers on the host network clone from it."""
    port = free_port()
    process = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={tmp_path}", "--listen=127.0.0.1", f"--port={port}", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    yield f"git://127.0.0.1:{port}/origin.git"
    process.terminate()
    process.wait(10)


@pytest.fixture
def http_files(tmp_path):
    """A folder served over HTTP on 127.0.0.1: where the flow, in its container, downloads the month file from."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_docker_pool_runs_the_flow_in_the_flows_image_and_a_code_only_change_builds_nothing(
    container_stack, tmp_path, prefect_server, postgres_url, table_name, git_daemon, http_files, sample_month
):
    sources = {name: ROOT / name for name in ("flows", "deployments")}
    repo = _repo(sources, tmp_path, prefect_server, {"ECOMMERCE_DATABASE_URL": postgres_url})
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, repo.path / name)
    repo.commit("the image's inputs", push=["main"])
    repo.env.update(FLOWOPS_IMAGE_NAME="localhost:5000/flowops-flows-e2e")
    build_arg = f"BASE_IMAGE={os.environ.get('FLOWOPS_BASE_IMAGE', 'localhost:5000/debian-base:bookworm')}"
    folder, base_url = http_files
    shutil.copy(sample_month, folder / sample_month.name)
    pool = f"e2e-docker-{uuid.uuid4().hex[:8]}"
    deploy = ["--work-pool", pool, "--work-pool-type", "docker", "--repository", git_daemon]
    run = [
        "--param",
        f'sources=["{base_url}/{sample_month.name}"]',
        "--param",
        f"table={table_name}",
        "--wait",
        "--timeout",
        RUN_TIMEOUT,
    ]

    first = repo.flowops("image", "ensure", "--build-arg", build_arg)
    assert re.match(
        r"(built and pushed|present:) localhost:5000/flowops-flows-e2e:flows-[0-9a-f]{12}",
        first.stdout.splitlines()[-1],
    )
    repo.flowops(
        "bootstrap",
        "--work-pool",
        pool,
        "--type",
        "docker",
        "--default",
        "network_mode=host",
        "--default",
        "auto_remove=true",
        "--default",  # the operator lets the flow read plain http from the test's file server
        f'env={{"ECOMMERCE_ALLOWED_URLS": "{base_url}/"}}',
    )
    repo.flowops("deploy", "--branch", "main", *deploy)
    image = repo.flowops("image", "tag", "--ref").stdout.strip()

    with repo.worker(pool) as worker:
        result = repo.flowops("run", "ecommerce-events/production", *run)
        assert result.stdout.rstrip().endswith(": Completed"), result.stdout + worker.log()[-3000:]
        with psycopg.connect(postgres_url) as connection:
            assert connection.execute(f"select count(*) from {table_name}").fetchone() == (50_000,)
        production = deployments(repo.api_url)["ecommerce-events/production"]
        assert production["job_variables"]["image"] == image  # filled in by the deploy: the flows' image
        flow_run = api(repo.api_url, f"flow_runs/{run_id(result.stdout)}")
        assert f"Docker container '{flow_run['name']}' has status 'running'" in worker.log()
        assert re.search(r"[0-9a-f]{64}$", flow_run["infrastructure_pid"] or "")  # <docker host>:<container id>

        flow_file = repo.path / "flows" / "ecommerce" / "flow.py"
        flow_file.write_text(
            flow_file.read_text().replace(
                "    prepare_database(database_secret_block, table)",
                '    print("code revision 2")\n    prepare_database(database_secret_block, table)',
                1,
            )
        )
        repo.commit("a code-only change", push=["main"])
        second = repo.flowops("image", "ensure", "--build-arg", build_arg)
        assert second.stdout.splitlines()[-1] == f"present: {image} (nothing built)"
        repo.flowops("deploy", "--branch", "main", *deploy)
        result = repo.flowops("run", "ecommerce-events/production", *run)
        assert result.stdout.rstrip().endswith(": Completed"), result.stdout + worker.log()[-3000:]
        assert "code revision 2" in flow_run_logs(repo.api_url, run_id(result.stdout), containing="code revision 2")
