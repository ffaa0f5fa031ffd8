"""Helpers the tests share (fixtures stay in the conftest files): paths, the Prefect server's REST API as JSON, a
work repository with its origin, GitHub event payloads, and a stand-in for GitHub's REST API."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from flowops.local import PrefectServer, Worker, base_environment, git, make_origin

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PROJECT = ROOT / "tests" / "fixtures" / "sample_project"
EVENTS = ROOT / "tests" / "fixtures" / "github_events"
FLOW = "ecommerce-events"


def edit_yaml(path: Path, change) -> None:
    """Load a YAML file, let `change(content)` modify it in place, write it back."""
    import yaml

    content = yaml.safe_load(path.read_text())
    change(content)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


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


WORKER_WRITTEN = ("last_polled", "status")  # a worker's poll writes them (no deploy does): never compared


def deployments_as_deployed(api_url: str, flow_name: str | None = None) -> dict[str, dict]:
    """`deployments`, less what a worker's poll writes: what a test compares to show that nothing was deployed."""
    return {
        name: {key: value for key, value in deployment.items() if key not in WORKER_WRITTEN}
        for name, deployment in deployments(api_url, flow_name).items()
    }


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


@dataclass
class Repo:
    """A work repository (where flowops runs, as a CI checkout) and its bare origin (what workers clone)."""

    path: Path
    origin: Path
    api_url: str
    home: Path
    env: dict
    flow_name: str = "ecommerce-events"
    blocks: dict = field(default_factory=dict)  # environment -> its database Secret block, where it has one
    project: str = ""  # flowops.yaml's project, where the test gave it one of its own

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

    def bootstrap(self, pool: str, *environments: str, pool_type: str = "process") -> None:
        """The test's own work pool, and each environment's Secret blocks (from this repository's environment)."""
        for environment in environments or ("staging",):
            self.flowops("bootstrap", "--work-pool", pool, "--type", pool_type, "--environment", environment)

    def worker(self, pool: str, name: str | None = None) -> Worker:
        return Worker(self.api_url, pool, self.home / (name or "worker"), name=name, env=self.env_for_runs)

    @property
    def env_for_runs(self) -> dict:
        names = ("ECOMMERCE_DATABASE_URL", "ECOMMERCE_DATA_DIR", "ECOMMERCE_ALLOWED_URLS")
        return {key: self.env[key] for key in names if key in self.env}


def make_repo(source_paths: dict[str, Path], tmp_path: Path, server: PrefectServer, extra_env: dict) -> Repo:
    path = tmp_path / "repo"
    path.mkdir()
    for relative, source in source_paths.items():
        if source.is_file():
            shutil.copy(source, path / relative)
        else:
            shutil.copytree(source, path / relative, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    git(path, "init", "--quiet")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "--message", "initial")
    origin = tmp_path / "origin.git"
    make_origin(path, origin, ["main", "staging"])
    home = tmp_path / "home"
    env = {**base_environment(home, server.api_url), **extra_env}
    return Repo(path, origin, server.api_url, home, env)


def event(fixture: str, **replace: str) -> dict:
    """A payload from tests/fixtures/github_events, with placeholders (HEAD_SHA, FLOW/) replaced."""
    text = (EVENTS / f"{fixture}.json").read_text()
    for placeholder, value in replace.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def schema_rows(postgres_url: str, schema: str, table: str) -> int | None:
    """The rows of `schema.table`, or None when there is no such table."""
    import psycopg

    with psycopg.connect(postgres_url) as connection:
        if connection.execute("select to_regclass(%s)", [f"{schema}.{table}"]).fetchone()[0] is None:
            return None
        return connection.execute(f"select count(*) from {schema}.{table}").fetchone()[0]


def drop_schema(postgres_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"drop schema if exists {schema} cascade")


def deployment_names(api_url: str) -> set[str]:
    return {name.split("/", 1)[1] for name in deployments(api_url, FLOW)}


def git_clone_step(deployment: dict) -> dict:
    return deployment["pull_steps"][0]["prefect.deployments.steps.git_clone"]


class GitHubAPI:
    """A local stand-in for GitHub's REST API: issue comments of one repository, as documented (list with
    per_page/page, create, update). It checks each call's method, path, headers, token and body, records it, and
    answers 401/404/422 as GitHub would to anything else."""

    def __init__(self, repository: str, token: str) -> None:
        self.repository, self.token = repository, token
        self.comments: list[dict] = []
        self.calls: list[tuple[str, str]] = []
        self.problems: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                api.handle(self)

            def do_POST(self):
                api.handle(self)

            def do_PATCH(self):
                api.handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def comment_by(self, number: int, body: str, user_type: str = "User") -> None:
        self.comments.append(
            {"id": 1000 + len(self.comments), "issue": number, "body": body, "user": {"type": user_type}}
        )

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path, _, query = request.path.partition("?")
        self.calls.append((request.command, request.path))
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"null") if length else None
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer(request, 401, {"message": "Bad credentials"})
        if request.headers.get("Accept") != "application/vnd.github+json":
            self.problems.append(f"{request.command} {path}: Accept {request.headers.get('Accept')!r}")
        if request.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            self.problems.append(f"{request.command} {path}: no X-GitHub-Api-Version")
        prefix = f"/repos/{self.repository}/issues/"
        listing = re.fullmatch(re.escape(prefix) + r"(\d+)/comments", path)
        single = re.fullmatch(re.escape(prefix) + r"comments/(\d+)", path)
        if listing and request.command == "GET":
            parameters = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
            per_page, page = int(parameters.get("per_page", 30)), int(parameters.get("page", 1))
            mine = [c for c in self.comments if c["issue"] == int(listing.group(1))]
            return self._answer(request, 200, mine[(page - 1) * per_page : page * per_page])
        if listing and request.command == "POST" and isinstance(body, dict) and set(body) == {"body"}:
            comment = {"id": 1000 + len(self.comments), "issue": int(listing.group(1)), "body": body["body"]}
            self.comments.append({**comment, "user": {"type": "Bot"}})
            return self._answer(request, 201, comment)
        if single and request.command == "PATCH" and isinstance(body, dict) and set(body) == {"body"}:
            comment = next((c for c in self.comments if c["id"] == int(single.group(1))), None)
            if comment is None:
                return self._answer(request, 404, {"message": "Not Found"})
            if comment["user"]["type"] != "Bot":
                self.problems.append(f"PATCH of comment {comment['id']}, which a person wrote")
                return self._answer(request, 403, {"message": "Resource not accessible by integration"})
            comment["body"] = body["body"]
            return self._answer(request, 200, comment)
        self.problems.append(f"unexpected call {request.command} {request.path} {body!r}")
        return self._answer(request, 404, {"message": "Not Found"})

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, content) -> None:
        data = json.dumps(content).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # its listening socket too


def tracked_files() -> list[str]:
    """The repository's files as they are now (committed or not, never ignored ones): what a push would carry."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def uv(*args: str, cwd: Path = ROOT) -> str:
    """`uv args` outside this test run's own environment; its output."""
    found = shutil.which("uv")  # else where scripts/ensure-uv.sh installed it off PATH, as the Makefile does
    command = [found, *args] if found else ["python3", "-m", "uv", *args]
    environment = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"uv {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def build_release(source: Path, tag: str, wheels: Path) -> Path:
    """This repository's files committed into `source` and tagged `tag` (a release as its users get it), and its
    wheel built into `wheels`; the wheel's path."""
    for name in tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    git(source, "init", "--quiet")
    git(source, "add", "--all")
    git(source, "commit", "--quiet", "--message", "a release")
    git(source, "tag", tag)
    uv("build", "--wheel", "--quiet", "--out-dir", str(wheels), cwd=source)
    (built,) = wheels.glob("flowops_prefect-*.whl")
    return built
