"""How long flowops' commands take against a local Prefect server, next to a bare `prefect deploy --all`, as the
number of deployments grows.

For each N of `--deployments`, a clone of this commit gets a staging file of N deployments (copies of its first),
deployed once for a branch. Then, `--repeats` times, alternating, each a whole process (as CI runs them):

- a new commit that edits one deployment, then `flowops deploy` (every deployment's pin and commit tag move);
- a bare `prefect deploy --all` of the same rendered file (what flowops would be without its plan);
- `flowops deploy` again (nothing changed), `flowops plan`, `flowops validate`.

The table shows medians, and ratios from the same run: deploy / bare deploy at each N, and each command's time at
the largest N / at the smallest (flat in N is the goal for the ones that change nothing).

    uv run python scripts/bench_deploy.py [--deployments 1 100] [--repeats 3] [--postgres URL] [--loop]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from flowops.local import PrefectServer, base_environment, git, make_origin

ROOT = Path(__file__).resolve().parent.parent
POOL = "bench-process"
BRANCH = "bench/deploy"
STAGING_FILE = Path("deployments/staging/prefect.yaml")
NEW_COMMIT = "flowops deploy, new commit (1 edited)"
BARE = "prefect deploy --all (rendered file)"
UNCHANGED = "flowops deploy (nothing changed)"
PLAN = "flowops plan"
VALIDATE = "flowops validate"


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return seconds


def server_cpu_seconds(server: PrefectServer) -> float:
    """CPU time used so far by the server's process group (it runs in a session of its own)."""
    group, total = os.getpgid(server.process.pid), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def settle(server: PrefectServer, most: float = 30.0) -> None:
    """Wait until the server is idle (under 10% of a core for a second), at most `most` seconds. After a deploy
    of 100 deployments it goes on working through their events for seconds; a command timed meanwhile would share
    the two cores with that, and measure the previous command as much as its own."""
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        before = server_cpu_seconds(server)
        time.sleep(1.0)
        if server_cpu_seconds(server) - before < 0.1:
            return


def work_copy(folder: Path, deployments: int) -> Path:
    """A clone of this repository's HEAD whose staging file holds `deployments` copies of its first deployment,
    committed (flowops deploys only a clean checkout of the commit it pins)."""
    work = folder / f"work-{deployments}"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(work)], check=True)
    content = yaml.safe_load((work / STAGING_FILE).read_text())
    first, *others = content["deployments"]  # the others (the branch environment's cleanup) stay as they are
    # the first keeps its name: flowops.yaml's sample run names it
    content["deployments"] = [
        {**copy.deepcopy(first), "name": first["name"] if index == 0 else f"{first['name']}-{index:03d}"}
        for index in range(deployments)
    ] + others
    (work / STAGING_FILE).write_text(yaml.safe_dump(content, sort_keys=False))
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "--message", f"{deployments} staging deployments")
    return work


def edit_one_deployment(work: Path, revision: int) -> None:
    content = yaml.safe_load((work / STAGING_FILE).read_text())
    content["deployments"][0]["description"] = f"edited, revision {revision}"
    (work / STAGING_FILE).write_text(yaml.safe_dump(content, sort_keys=False))
    git(work, "commit", "--quiet", "--all", "--message", f"revision {revision}")


@contextlib.contextmanager
def server_database(postgres_url: str | None):
    """A fresh PostgreSQL database for the Prefect server (as production runs it), dropped afterwards; None: the
    server's own SQLite."""
    if not postgres_url:
        yield None
        return
    import psycopg

    database = f"flowops_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"create database {database}")
    try:
        yield re.sub(r"/[^/]*$", f"/{database}", postgres_url).replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f"drop database if exists {database} with (force)")


def measure(folder: Path, deployments: int, repeats: int, postgres_url: str | None) -> dict[str, list[float]]:
    flowops = [sys.executable, "-m", "flowops"]
    prefect = [str(Path(sys.executable).with_name("prefect")), "--no-prompt"]
    work = work_copy(folder, deployments)
    with (
        server_database(postgres_url) as database_url,
        PrefectServer(folder / f"prefect-{deployments}", database_url=database_url) as server,
    ):
        env = base_environment(server.home, server.api_url)
        origin = make_origin(work, folder / f"origin-{deployments}.git", ["main", BRANCH])
        overrides = ["--branch", BRANCH, "--repository", origin, "--work-pool", POOL]
        bootstrap = [*flowops, "bootstrap", "--work-pool", POOL, "--type", "process", "--environment", "staging"]
        timed(bootstrap, {**env, "ECOMMERCE_DATABASE_URL": f"sqlite:///{folder / 'staging.sqlite'}"}, work)
        timed([*flowops, "deploy", *overrides], env, work)
        rendered = folder / f"rendered-{deployments}.yaml"
        times: dict[str, list[float]] = {name: [] for name in (NEW_COMMIT, BARE, UNCHANGED, PLAN, VALIDATE)}
        for revision in range(repeats):
            edit_one_deployment(work, revision)
            settle(server)
            times[NEW_COMMIT].append(timed([*flowops, "deploy", *overrides], env, work))
            timed([*flowops, "render", *overrides, "-o", str(rendered)], env, work)
            settle(server)
            times[BARE].append(timed([*prefect, "deploy", "--all", "--prefect-file", str(rendered)], env, work))
            settle(server)
            times[UNCHANGED].append(timed([*flowops, "deploy", *overrides], env, work))
            settle(server)
            times[PLAN].append(timed([*flowops, "plan", *overrides], env, work))
            settle(server)
            times[VALIDATE].append(timed([*flowops, "validate"], env, work))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, nargs="+", default=[1], metavar="N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--postgres", metavar="URL", help="back the Prefect server with a new database on this PostgreSQL server"
        " (e.g. postgresql://postgres@127.0.0.1:5432/postgres); default: the server's own SQLite",
    )  # fmt: skip
    parser.add_argument("--loop", action="store_true", help="also time the whole local loop (scripts/local_loop.py)")
    args = parser.parse_args()

    medians: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="flowops-bench-") as folder:
        for deployments in sorted(set(args.deployments)):
            times = measure(Path(folder), deployments, args.repeats, args.postgres)
            medians[deployments] = {name: statistics.median(values) for name, values in times.items()}
            bare = medians[deployments][BARE]
            backend = "PostgreSQL" if args.postgres else "SQLite"
            print(f"\nN = {deployments} deployments, Prefect server on {backend} ({args.repeats} runs each, medians)")
            print(f"{'command':<40} {'median s':>9} {'min s':>7} {'max s':>7} {'/ bare deploy':>14}")
            for name, values in times.items():
                median = medians[deployments][name]
                print(f"{name:<40} {median:>9.2f} {min(values):>7.2f} {max(values):>7.2f} {median / bare:>14.2f}")

    smallest, largest = min(medians), max(medians)
    print(f"\nflowops deploy of a new commit / bare prefect deploy --all, N = {largest}:"
          f" {medians[largest][NEW_COMMIT] / medians[largest][BARE]:.2f}x (goal <= 0.25x at N = 100)")  # fmt: skip
    if largest != smallest:
        for name in (UNCHANGED, PLAN):
            ratio = medians[largest][name] / medians[smallest][name]
            print(f"{name}, N = {largest} / N = {smallest}: {ratio:.2f}x (goal <= 1.3x)")

    if args.loop:
        started = time.perf_counter()
        subprocess.run([sys.executable, "scripts/local_loop.py"], cwd=ROOT, check=True, capture_output=True)
        print(f"local loop (make demo's script, 100,000 rows): {time.perf_counter() - started:.1f} s (goal < 180 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
