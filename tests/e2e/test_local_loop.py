"""The README's main command: the whole GitOps loop on one machine, started and stopped by one script."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_database(postgres_url):
    name = f"flowops_loop_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"create database {name}")
    yield re.sub(r"/[^/]*$", f"/{name}", postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"drop database if exists {name} with (force)")


def processes_working_under(folder: Path) -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(proc / "cwd").resolve().is_relative_to(folder):
                found.append((proc / "cmdline").read_text().replace("\0", " "))
        except OSError:
            continue
    return found


def run_serving(command: list[str]) -> subprocess.CompletedProcess:
    """`make demo KEEP=1`: wait for the UI's address, check it serves the UI, then Ctrl-C (SIGINT) the loop."""
    loop = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in loop.stdout:
            lines.append(line)
            if "==> the UI is at" in line:
                break
        found = re.search(r"the UI is at (http://\S+)", "".join(lines))
        assert found, "the loop ended before serving its UI:\n" + "".join(lines)[-4000:]
        ui_url = found.group(1)
        with urllib.request.urlopen(ui_url, timeout=30) as page:  # noqa: S310 - the loop's server
            assert "<title>Prefect Server</title>" in page.read().decode()  # the UI's page
        loop.send_signal(signal.SIGINT)
        rest, _ = loop.communicate(timeout=120)
    finally:
        if loop.poll() is None:
            loop.kill()
    return subprocess.CompletedProcess(command, loop.returncode, "".join(lines) + rest, "")


@pytest.mark.parametrize(("database", "serve"), [("sqlite", True), ("postgresql", False)])
def test_the_local_loop_deploys_runs_loads_tears_down_and_stops_everything_it_started(
    database, serve, tmp_path, request
):
    command = [
        sys.executable,
        "scripts/local_loop.py",
        "--rows",
        "20000",
        "--workdir",
        str(tmp_path / "loop"),
        "--keep",
    ]
    if database == "postgresql":
        command += ["--database-url", request.getfixturevalue("empty_database")]
    if serve:
        result = run_serving([*command, "--serve"])
    else:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    assert "+ create    ecommerce-events/production" in output
    assert "+ create    ecommerce-events/staging-demo-local-loop-" in output
    assert output.count(": Completed\n") >= 2  # production's run, then the demo branch's
    expected = "PostgreSQL" if database == "postgresql" else "SQLite"
    assert f"==> 20,000 rows in ecommerce_events (production, {expected})" in output
    schema = re.search(
        r"==> 20,000 rows in (branch_demo_local_loop_[0-9a-f]{8})\.ecommerce_events \(the demo branch's own", output
    )
    assert schema, output  # the branch loaded every row too, into a data environment of its own
    assert f"dropped data environment {schema.group(1)}" in output
    assert f"{schema.group(1)}: gone; production keeps 20,000 rows" in output
    assert "2 deployment(s) of branch 'demo/local-loop' deleted" in output

    port = int(re.search(r"server up at http://127\.0\.0\.1:(\d+)/api", output).group(1))
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the Prefect server is still listening"
    assert processes_working_under(tmp_path / "loop") == []
