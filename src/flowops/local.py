"""A whole Prefect stack on one machine, for the local loop and the end-to-end tests: a Prefect server, process
workers and a bare git "origin" on disk. Every process started here is stopped by the context manager that
started it, whatever happens.

    with PrefectServer(home) as server, Worker(server.api_url, "local-process", home):
        ...  # flowops deploy / run with PREFECT_API_URL=server.api_url
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

from flowops.api.client import server_is_healthy

SERVER_START_TIMEOUT = 180
STOP_TIMEOUT = 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def prefect_executable() -> str:
    return str(Path(sys.executable).with_name("prefect"))


def base_environment(home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment of a local Prefect process: its own PREFECT_HOME, no analytics, quick polling."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    environment.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="1",
    )
    if api_url:
        environment["PREFECT_API_URL"] = api_url
    return environment


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, wait, then SIGKILL it (a worker often ignores the first SIGTERM)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class PrefectServer:
    """`prefect server start` on a free port: SQLite under `home`, or the database URL given; with `ui`, its web
    UI at the port's root too."""

    def __init__(self, home: Path, database_url: str | None = None, port: int | None = None, ui: bool = False):
        self.home = Path(home)
        self.ui = ui
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log_path = self.home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.home.mkdir(parents=True, exist_ok=True)
        environment = base_environment(self.home)
        if self.ui:  # where the UI's page calls the API: unset, it is 127.0.0.1:4200, whatever the port
            environment.update(PREFECT_SERVER_UI_ENABLED="true", PREFECT_SERVER_UI_API_URL=self.api_url)
        if self.database_url:
            environment["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        command = [prefect_executable(), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("w") as log:
            process = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.process = process
        try:
            self._wait_until_healthy(process)
        except BaseException:
            _stop(process)
            raise
        return self

    def _wait_until_healthy(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"prefect server exited with {process.returncode}: see {self.log_path}")
            if server_is_healthy(self.api_url):
                return
            time.sleep(0.5)
        raise RuntimeError(f"prefect server not healthy after {SERVER_START_TIMEOUT} s: see {self.log_path}")

    def __exit__(self, *exc_info: object) -> None:
        if self.process:
            _stop(self.process)


class Worker:
    """`prefect worker start --pool POOL`, run from its own folder (each flow run clones into a temp dir)."""

    def __init__(self, api_url: str, pool: str, home: Path, name: str | None = None, env: dict[str, str] | None = None):
        self.api_url, self.pool, self.home = api_url, pool, Path(home)
        self.name = name or f"{pool}-worker"
        self.env = env or {}
        self.log_path = self.home / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.home.mkdir(parents=True, exist_ok=True)
        environment = {**base_environment(self.home, self.api_url), **self.env}
        command = [prefect_executable(), "worker", "start", "--pool", self.pool, "--name", self.name]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, env=environment, cwd=self.home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __exit__(self, *exc_info: object) -> None:
        if self.process:
            _stop(self.process)


def git(repository: Path, *args: str) -> str:
    """Run git in `repository` with an identity of its own; arguments are a list, never a shell line."""
    identity = ["-c", "user.name=flowops", "-c", "user.email=flowops@localhost", "-c", "init.defaultBranch=main"]
    result = subprocess.run(
        ["git", *identity, "-C", str(repository), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repository}: {result.stderr.strip()}")
    return result.stdout.strip()


def make_origin(source: Path, origin: Path, branches: list[str], revision: str = "HEAD") -> str:
    """A bare repository at `origin` whose `branches` all point at `revision` of `source`; returns its file:// URL."""
    origin.mkdir(parents=True, exist_ok=True)
    git(origin, "init", "--quiet", "--bare")
    git(source, "push", "--quiet", "--force", str(origin), *(f"{revision}:refs/heads/{branch}" for branch in branches))
    return origin.resolve().as_uri()
