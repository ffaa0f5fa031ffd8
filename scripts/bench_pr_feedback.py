"""How long a pull request waits for its proof on data, and how long its teardown takes (issue 21's figures).

On a Prefect server backed by PostgreSQL, with a process worker on staging's pool and the dataset's mirror on
loopback, this repository's committed files are deployed as GitHub Actions would: staging once (and run once, the
baseline), then a pull request's `flowops github-event` (opened, then synchronize `--repeat` - 1 times), each
timed from the command's start to the pull request comment that carries the sample run's result (the last one
also stops loading `brand`, a transform change the comment shows), and split:

    deploy    the command's start to the comment saying the sample runs started (imports, plan, prefect deploy)
    reset     the cleanup run that empties the branch's data environment first (created to Completed)
    pick-up   the sample run's creation to its start on the worker (polling, process start, git clone)
    run       the sample run itself (10,000 rows from the mirror into the branch's schema, its summary)
    comment   the sample run's end to the comment (states, both summaries read, the comment written)

Then the branch loads `--teardown-rows` rows (1,000,000) and `flowops teardown` is timed; nothing may be left.

    uv run python scripts/bench_pr_feedback.py [--repeat 3] [--rows 50000] [--teardown-rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from flowops.local import PrefectServer, Worker, base_environment, git, make_origin
from flowops.render.branches import branch_slug, data_environment_name
from flows.ecommerce.generate import generate_month
from tests.helpers import GitHubAPI  # the same stand-in for GitHub's REST API the tests use

BRANCH = "bench/pr-feedback"
REPOSITORY = "acme/flows"
EVENTS = ROOT / "tests" / "fixtures" / "github_events"
POSTGRES = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
POOL = "ecommerce-staging"  # staging's process pool, as flowops.yaml declares it
RUN_TIMEOUT = "600"


class TimedGitHubAPI(GitHubAPI):
    """The tests' GitHub stand-in, noting when each comment was written and what it said."""

    def __init__(self, repository: str, token: str) -> None:
        super().__init__(repository, token)
        self.writes: list[tuple[float, str]] = []

    def handle(self, request) -> None:
        super().handle(request)
        if request.command in ("POST", "PATCH"):
            comment = next((c for c in reversed(self.comments) if c["user"]["type"] == "Bot"), None)
            self.writes.append((time.time(), comment["body"] if comment else ""))


def database(name: str) -> str:
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f"create database {name}")
    return re.sub(r"/[^/]*$", f"/{name}", POSTGRES)


def drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f"drop database if exists {name} with (force)")


def flowops(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "flowops", "-C", str(cwd), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"flowops {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def serve(folder: Path) -> ThreadingHTTPServer:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def seconds(timestamp: str) -> float:
    return datetime.datetime.fromisoformat(timestamp).timestamp()


def latest_run(api_url: str, flow_name: str) -> dict:
    """The newest run of the flow `flow_name` that has ended (staging's schedule makes runs due later)."""
    ended = {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]}}}
    body = {"flows": {"name": {"any_": [flow_name]}}, "flow_runs": ended, "sort": "END_TIME_DESC", "limit": 1}
    return httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=30).json()[0]


def pull_request_event(action: str, sha: str, folder: Path) -> Path:
    payload = json.loads((EVENTS / f"pull_request_{action}.json").read_text().replace("HEAD_SHA", sha))
    payload["pull_request"]["head"]["ref"] = BRANCH
    path = folder / f"pull_request_{action}-{sha[:8]}.json"
    path.write_text(json.dumps(payload))
    return path


def feedback(env: dict[str, str], checkout: Path, action: str, sha: str, github: TimedGitHubAPI) -> dict[str, float]:
    """One pull request event, timed and split (see the module docstring)."""
    git(checkout, "checkout", "--quiet", sha)
    github.writes.clear()
    event_env = {
        **env,
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(pull_request_event(action, sha, checkout.parent)),
    }
    started = time.time()
    output = flowops(event_env, "github-event", cwd=checkout)
    final = next((at for at, body in reversed(github.writes) if "### Sample runs" in body), None)
    running = next((at for at, body in github.writes if "running..." in body), None)
    if final is None or running is None:
        raise SystemExit(f"no comment with the sample run's result:\n{output.stdout}")
    sample = latest_run(env["PREFECT_API_URL"], "ecommerce-events")
    cleanup = latest_run(env["PREFECT_API_URL"], "ecommerce-drop-branch-data")
    if sample["state_type"] != "COMPLETED":
        raise SystemExit(f"the sample run ended {sample['state_name']}:\n{output.stdout}{output.stderr}")
    return {
        "total": final - started,
        "deploy": running - started,
        "reset": seconds(cleanup["end_time"]) - seconds(cleanup["created"]),
        "pick-up": seconds(sample["start_time"]) - seconds(sample["created"]),
        "run": seconds(sample["end_time"]) - seconds(sample["start_time"]),
        "comment": final - seconds(sample["end_time"]),
    }


def schema_exists(url: str, schema: str) -> bool:
    with psycopg.connect(url) as connection:
        return connection.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone() is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="pull request events timed (opened, then synchronize)")
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the month on the mirror (staging's run)")
    parser.add_argument("--teardown-rows", type=int, default=1_000_000, help="rows the branch loads before teardown")
    parser.add_argument("--comment-out", type=Path, help="write the last pull request comment (markdown) here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flowops-bench-pr-"))
    suffix = uuid.uuid4().hex[:8]
    names = {"server": f"flowops_bench_server_{suffix}", "staging": f"flowops_bench_staging_{suffix}"}
    server_url = database(names["server"]).replace("postgresql://", "postgresql+asyncpg://", 1)
    staging_url = database(names["staging"])
    try:
        with PrefectServer(work / "prefect", database_url=server_url) as server:
            return bench(args, work, server, staging_url)
    finally:
        for name in names.values():
            drop_database(name)


def bench(args: argparse.Namespace, work: Path, server: PrefectServer, staging_url: str) -> int:
    origin = make_origin(ROOT, work / "github" / f"{REPOSITORY}.git", ["main", "staging", BRANCH])
    checkout = work / "checkout"
    git(work, "clone", "--quiet", origin, str(checkout))
    github = TimedGitHubAPI(REPOSITORY, f"ghs_{uuid.uuid4().hex}")
    env = {
        **base_environment(work / "home", server.api_url),
        "GITHUB_SERVER_URL": (work / "github").as_uri(),
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": github.token,
    }
    flowops({**env, "ECOMMERCE_DATABASE_URL": staging_url}, "bootstrap", "--environment", "staging")
    data = work / "data"
    generate_month("2019-10", args.rows, data, seed=7)
    mirror = serve(data)
    worker_env = {
        "ECOMMERCE_MIRROR_URL": f"http://127.0.0.1:{mirror.server_port}",
        "ECOMMERCE_CACHE_DIR": str(work / "cache"),
        "ECOMMERCE_DATA_DIR": str(data),
    }
    schema = data_environment_name("branch_", BRANCH)
    with Worker(server.api_url, POOL, work / "worker", env=worker_env):
        git(checkout, "checkout", "--quiet", "origin/staging")
        flowops(env, "deploy", "--branch", "staging", "--policy-ref", "origin/main", cwd=checkout)
        flowops(env, "run", "ecommerce-events/staging", "--wait", "--timeout", RUN_TIMEOUT)  # the baseline

        splits = []
        git(checkout, "checkout", "--quiet", "-B", BRANCH, f"origin/{BRANCH}")
        for attempt in range(args.repeat):
            (checkout / "flows" / "bench_marker.py").write_text(f"ATTEMPT = {attempt}\n")
            if attempt == args.repeat - 1 > 0:  # the last push changes the transform: brand is no longer loaded
                schema_file = checkout / "flows" / "ecommerce" / "schema.py"
                brand = 'Column("brand", TEXT, nullable=True)'
                schema_file.write_text(schema_file.read_text().replace(brand, brand[:-1] + ", loaded=False)"))
            git(checkout, "add", "--all")
            git(checkout, "commit", "--quiet", "--message", f"pull request work {attempt}")
            git(checkout, "push", "--quiet", "--force", origin, f"HEAD:refs/heads/{BRANCH}")
            sha = git(checkout, "rev-parse", "HEAD")
            split = feedback(env, checkout, "opened" if attempt == 0 else "synchronize", sha, github)
            splits.append(split)
            print(f"event {attempt + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in split.items()), flush=True)
        if args.comment_out:
            args.comment_out.write_text(github.writes[-1][1])

        big = generate_month("2019-10", args.teardown_rows, data / "big", seed=11)  # under $ECOMMERCE_DATA_DIR
        sources = json.dumps([str(big)])
        branch_deployment = f"ecommerce-events/staging-{branch_slug(BRANCH)}"
        loading = ["--param", f"sources={sources}", "--param", "replace=true"]  # its sample holds the name already
        flowops(env, "run", branch_deployment, *loading, "--wait", "--timeout", RUN_TIMEOUT)
        with psycopg.connect(staging_url) as connection:
            loaded = connection.execute(f"select count(*) from {schema}.ecommerce_events").fetchone()[0]
        started = time.monotonic()
        flowops(env, "teardown", "--branch", BRANCH, cwd=checkout)
        teardown = time.monotonic() - started
        cleanup = latest_run(server.api_url, "ecommerce-drop-branch-data")
        pick_up = seconds(cleanup["start_time"]) - seconds(cleanup["created"])
        dropping = seconds(cleanup["end_time"]) - seconds(cleanup["start_time"])
        left = schema_exists(staging_url, schema)
        deployments = httpx.post(f"{server.api_url}/deployments/filter", json={}, timeout=30).json()
        branch_left = [d["name"] for d in deployments if d["name"].endswith(branch_slug(BRANCH))]
    github.close()
    mirror.shutdown()

    print(f"\nPull request feedback, {args.repeat} events (median; 10,000-row sample, process worker, PostgreSQL):")
    print("| phase | seconds |\n|---|---|")
    for phase in splits[0]:
        print(f"| {phase} | {statistics.median(s[phase] for s in splits):.1f} |")
    total = statistics.median(s["total"] for s in splits)
    print(f"\nfeedback {total:.1f} s against the 60 s target: {total / 60:.2f}x")
    print(f"teardown of {loaded:,} rows: {teardown:.1f} s against the 5 s target: {teardown / 5:.2f}x;"
          f" schema left: {left}, deployments left: {branch_left or 'none'}")  # fmt: skip
    print(f"  its cleanup run: worker pick-up {pick_up:.1f} s, run {dropping:.1f} s;"
          f" the rest (the command's start, reads, deletes) {teardown - pick_up - dropping:.1f} s")  # fmt: skip
    return 0 if not left and not branch_left else 1


if __name__ == "__main__":
    sys.exit(main())
