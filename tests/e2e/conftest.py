"""The end-to-end stack: a real Prefect server backed by PostgreSQL, real git origins on disk, real workers.

One server serves the whole session; each test makes its own repository, origin, work pool and (for the
sample project) its own flow name, so tests never see each other's deployments.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowops.local import PrefectServer, Worker, base_environment, git, make_origin
from tests.conftest import SAMPLE_PROJECT

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@dataclass
class Repo:
    """A work repository (where flowops runs, as a CI checkout) and its bare origin (what workers clone)."""

    path: Path
    origin: Path
    api_url: str
    home: Path
    env: dict
    flow_name: str = "ecommerce-events"

    @property
    def origin_url(self) -> str:
        return self.origin.resolve().as_uri()

    def flowops(self, *args: str, check: bool = True, env_extra: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "flowops", "-C", str(self.path), *args],
            env={**self.env, **(env_extra or {})}, capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"flowops {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def deploy(self, branch: str, *extra: str) -> subprocess.CompletedProcess:
        return self.flowops("deploy", "--branch", branch, "--repository", self.origin_url, *extra)

    def commit(self, message: str, push: list[str] | None = None) -> str:
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "--message", message)
        for branch in push or []:
            git(self.path, "push", "--quiet", "--force", str(self.origin), f"HEAD:refs/heads/{branch}")
        return git(self.path, "rev-parse", "HEAD")

    def worker(self, pool: str, name: str | None = None) -> Worker:
        return Worker(self.api_url, pool, self.home / (name or "worker"), name=name, env=self.env_for_runs)

    @property
    def env_for_runs(self) -> dict:
        names = ("ECOMMERCE_DATABASE_URL", "ECOMMERCE_DATA_DIR", "ECOMMERCE_ALLOWED_URLS")
        return {key: self.env[key] for key in names if key in self.env}


def _repo(source_paths: dict[str, Path], tmp_path: Path, server: PrefectServer, extra_env: dict) -> Repo:
    path = tmp_path / "repo"
    path.mkdir()
    for relative, source in source_paths.items():
        shutil.copytree(source, path / relative, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    git(path, "init", "--quiet")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "--message", "initial")
    origin = tmp_path / "origin.git"
    make_origin(path, origin, ["main", "staging"])
    home = tmp_path / "home"
    env = {**base_environment(home, server.api_url), **extra_env}
    return Repo(path, origin, server.api_url, home, env)


@pytest.fixture
def hello_repo(tmp_path, prefect_server) -> Repo:
    """The sample project with a flow name of its own (`hello-<hex>`), committed, with an origin."""
    repo = _repo({".": SAMPLE_PROJECT}, tmp_path, prefect_server, {})
    flow_file = repo.path / "flows" / "hello.py"
    repo.flow_name = f"hello-{uuid.uuid4().hex[:8]}"
    flow_file.write_text(flow_file.read_text().replace('name="hello"', f'name="{repo.flow_name}"'))
    repo.commit("a flow name of its own", push=["main", "staging"])
    return repo


@pytest.fixture
def ecommerce_repo(tmp_path, prefect_server, postgres_url, sample_month) -> Repo:
    """This repository's flows and deployment files, committed, with an origin; runs load into PostgreSQL and
    read local files under the sample's folder and the test's own (the worker's $ECOMMERCE_DATA_DIR)."""
    sources = {"flows": ROOT / "flows", "deployments": ROOT / "deployments"}
    data_dirs = os.pathsep.join([str(sample_month.parent), str(tmp_path)])
    return _repo(
        sources, tmp_path, prefect_server, {"ECOMMERCE_DATABASE_URL": postgres_url, "ECOMMERCE_DATA_DIR": data_dirs}
    )


def api(api_url: str, path: str, body: dict | None = None):
    """A POST (or GET without body) to the Prefect REST API, as JSON: how the tests look at the server."""
    request = urllib.request.Request(  # noqa: S310 - the local test server
        f"{api_url}/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local test server
        return json.loads(response.read() or b"null")


def deployments(api_url: str, flow_name: str | None = None) -> dict[str, dict]:
    """`flow/name` -> deployment JSON for every deployment on the server (or of one flow)."""
    flows = {flow["id"]: flow["name"] for flow in api(api_url, "flows/filter", {"limit": 200})}
    found = {}
    offset = 0
    while True:
        page = api(api_url, "deployments/filter", {"limit": 200, "offset": offset})
        for deployment in page:
            name = f"{flows.get(deployment['flow_id'])}/{deployment['name']}"
            if flow_name is None or name.startswith(f"{flow_name}/"):
                found[name] = deployment
        if len(page) < 200:
            return found
        offset += 200


def flow_run_logs(api_url: str, flow_run_id: str, containing: str = "", timeout: float = 30) -> str:
    """The run's log messages. A run's last logs reach the server in a batch after its final state, so wait
    (up to `timeout` seconds) until they contain `containing`."""
    deadline = time.monotonic() + timeout
    while True:
        logs = api(api_url, "logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})
        text = "\n".join(log["message"] for log in logs)
        if containing in text or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def run_id(output: str) -> str:
    """The flow run id `flowops run` prints: `flow run NAME (ID): STATE`."""
    return re.search(r"flow run \S+ \(([0-9a-f-]{36})\)", output).group(1)
