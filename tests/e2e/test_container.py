"""Production's shape, for real, on this machine: the flows' image built with prefect-docker's steps and pushed to
a private registry (TLS, a login), a Docker work pool (host networking) whose worker, on a podman storage of its
own that has never seen the image, logs in with the DockerRegistryCredentials block, pulls, and runs each flow run
in a container that git-clones the code from origin and loads rows into PostgreSQL. A code-only commit builds
nothing and runs the new code; a wrong password fails the next pull with one line, and no password is logged.

Needs the local container stack: `bash scripts/container-stack.sh up` and `eval "$(bash scripts/container-stack.sh
env)"` (.ci/run does both). Elsewhere these tests are skipped, saying so.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import psycopg
import pytest

from flowops.local import Worker, free_port
from tests.helpers import ROOT, api, deployments, edit_yaml, flow_run_logs, make_repo, run_id

# 110 s alone; a first run on a new machine builds the image from an empty cache, and under CI's load one took
# over the default 300 s
pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]

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
    server.server_close()  # its listening socket too


@pytest.fixture
def private_registry(container_stack) -> tuple[str, str, Path]:
    """The stack's registry that wants a login, over TLS: (host, password of user `flowops`, its CA)."""
    folder = Path(os.environ["FLOWOPS_AUTH_REGISTRY_DIR"])
    return os.environ["FLOWOPS_AUTH_REGISTRY"], (folder / "password").read_text().strip(), folder / "ca.crt"


@pytest.fixture
def fresh_docker_host(container_stack):
    """A second podman API service on a storage of its own, empty: a worker machine that never pulled the image.
    Yields its DOCKER_HOST and the service's log."""
    stack = Path(os.environ["FLOWOPS_CONTAINER_STACK"])
    root = Path(tempfile.mkdtemp(prefix="fresh-", dir=stack))  # short: a socket path has a length limit
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/storage"\nrunroot = "{root}/run"\n'
    )
    # its own libpod state too: only the registries and engine settings are shared
    containers_conf = (stack / "containers.conf").read_text().replace(str(stack / "tmp"), str(root / "tmp"))
    (root / "containers.conf").write_text(containers_conf)
    env = {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
        "CONTAINERS_CONF": str(root / "containers.conf"),
    }
    socket, log = root / "podman.sock", root / "service.log"
    with log.open("w") as output:
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{socket}"], env=env, stdout=output, stderr=output,
            start_new_session=True,
        )  # fmt: skip
    for _ in range(60):
        if socket.exists():
            break
        time.sleep(0.5)
    try:
        yield f"unix://{socket}", log
    finally:
        subprocess.run(["podman", "rmi", "--all", "--force"], env=env, capture_output=True, check=False)
        service.terminate()
        service.wait(30)
        subprocess.run(["podman", "system", "reset", "--force"], env=env, capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_a_docker_pool_runs_the_flow_in_the_flows_image_and_a_code_only_change_builds_nothing(
    tmp_path, prefect_server, postgres_url, table_name, git_daemon, http_files, sample_month, private_registry,
    fresh_docker_host,
):  # fmt: skip
    registry, password, ca = private_registry
    docker_host, podman_log = fresh_docker_host
    sources = {name: ROOT / name for name in ("flows", "deployments")}
    repo = make_repo(sources, tmp_path, prefect_server, {"ECOMMERCE_DATABASE_URL": postgres_url})
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, repo.path / name)
    # a block of this test's own: the session's server is shared, and other tests save `flowops-registry` there
    block = f"e2e-registry-{uuid.uuid4().hex[:8]}"
    edit_yaml(
        repo.path / "deployments" / "flowops.yaml", lambda config: config["image"].update(registry_credentials=block)
    )
    repo.commit("the image's inputs", push=["main"])
    # the registry's certificate is signed by the stack's own CA: flowops asks it over https, trusting that CA
    repo.env.update(FLOWOPS_IMAGE_NAME=f"{registry}/flowops-flows-e2e", SSL_CERT_FILE=str(ca))
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
    bootstrap = [
        "bootstrap",
        "--environment",  # production's database block, from this repository's ECOMMERCE_DATABASE_URL
        "production",
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
    ]

    unauthenticated = repo.flowops("image", "ensure", "--build-arg", build_arg, check=False)
    assert unauthenticated.returncode == 1
    assert f"error: registry {registry} wants a login" in unauthenticated.stderr
    saved = repo.flowops(*bootstrap, env_extra={"REGISTRY_USERNAME": "flowops", "REGISTRY_PASSWORD": password})
    assert f"block '{block}': created for registry {registry}" in saved.stdout
    first = repo.flowops("image", "ensure", "--build-arg", build_arg)  # no credentials in its environment
    assert f"registry credentials: block '{block}'" in first.stderr
    assert re.match(
        rf"(built and pushed|present:) {registry}/flowops-flows-e2e:flows-[0-9a-f]{{12}}", first.stdout.splitlines()[-1]
    )
    repo.flowops("deploy", "--branch", "main", *deploy)
    image = repo.flowops("image", "tag", "--ref").stdout.strip()
    production = deployments(repo.api_url)["ecommerce-events/production"]
    assert production["job_variables"]["image"] == image  # filled in by the deploy: the flows' image
    assert "registry_credentials" not in production["job_variables"]  # the pool's default refers to the block

    worker_env = {**repo.env_for_runs, "DOCKER_HOST": docker_host}
    worker = Worker(repo.api_url, pool, repo.home / "worker", env=worker_env)
    with worker:
        result = repo.flowops("run", "ecommerce-events/production", *run)
        assert result.stdout.rstrip().endswith(": Completed"), result.stdout + worker.log()[-3000:]
        with psycopg.connect(postgres_url) as connection:
            assert connection.execute(f"select count(*) from {table_name}").fetchone() == (50_000,)
        flow_run = api(repo.api_url, f"flow_runs/{run_id(result.stdout)}")
        assert "Logging into Docker registry..." in worker.log()
        assert f"Pulling image '{image}'" in worker.log()  # its storage had never seen it
        assert f"Docker container '{flow_run['name']}' has status 'running'" in worker.log()
        assert re.search(r"[0-9a-f]{64}$", flow_run["infrastructure_pid"] or "")  # <docker host>:<container id>

        flow_file = repo.path / "flows" / "ecommerce" / "flow.py"
        before = flow_file.read_text()
        flow_file.write_text(
            flow_file.read_text().replace(
                "    prepare_database(database_secret_block, table, database_schema)",
                '    print("code revision 2")\n    prepare_database(database_secret_block, table, database_schema)',
                1,
            )
        )
        assert flow_file.read_text() != before, "flow.py no longer has the line this code change edits"
        repo.commit("a code-only change", push=["main"])
        second = repo.flowops("image", "ensure", "--build-arg", build_arg)
        assert second.stdout.splitlines()[-1] == f"present: {image} (nothing built)"
        repo.flowops("deploy", "--branch", "main", *deploy)
        result = repo.flowops("run", "ecommerce-events/production", *run)
        assert result.stdout.rstrip().endswith(": Completed"), result.stdout + worker.log()[-3000:]
        assert "code revision 2" in flow_run_logs(repo.api_url, run_id(result.stdout), containing="code revision 2")

        # The password changes (rotated, mistyped): a worker that must pull again fails, saying why, on one line.
        wrong = f"wrong-{uuid.uuid4().hex}"
        repo.flowops(*bootstrap, env_extra={"REGISTRY_USERNAME": "flowops", "REGISTRY_PASSWORD": wrong})
        docker.DockerClient(base_url=docker_host).images.remove(image, force=True)  # a new machine, or a new tag
        failed = repo.flowops("run", "ecommerce-events/production", *run, check=False)
        assert failed.returncode == 1
        [error] = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
        assert re.search(
            rf"login attempt to (https://)?{re.escape(registry)}(/v2/)? failed with status: 401 Unauthorized", error
        ), failed.stderr
    flow_runs = api(repo.api_url, "flow_runs/filter", {})
    logs = api(repo.api_url, "logs/filter", {})
    everything = "\n".join([
        worker.log(), podman_log.read_text(), failed.stdout, failed.stderr, saved.stdout, saved.stderr,
        first.stdout, first.stderr, str(flow_runs), str(logs), str(deployments(repo.api_url)),
    ])  # fmt: skip
    assert password not in everything
    assert wrong not in everything
