"""The whole GitOps loop on one machine, with nothing but Python and git (the README's main command).

Starts a Prefect server (SQLite) on a free port, makes a bare "origin" from the current commit, bootstraps a
process work pool and each environment's database block (production and staging: two databases), deploys
`main` and a demo branch from the committed deployment files (only the repository URL and the work pool are
overridden, explicitly), starts a process worker, generates a sample month, runs the production deployment and
the branch's, prints the rows each loaded (the branch into its own data environment), tears the demo branch down
(its data environment too) and stops everything.

    uv run python scripts/local_loop.py [--rows 100000] [--database-url postgresql://...] [--keep] [--serve]
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowops.config.project import load_project
from flowops.local import PrefectServer, Worker, base_environment, git, make_origin
from flowops.render.branches import branch_slug, data_environment_name

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from flows.ecommerce.environments import sqlite_schema_path  # the flows' own naming of a schema's file

ROOT = Path(__file__).resolve().parent.parent
POOL = "local-process"
DEMO_BRANCH = "demo/local-loop"
TABLE = "ecommerce_events"


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def run(command: list[str], env: dict[str, str]) -> str:
    print("$ " + shlex.join(command), flush=True)
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    print(output.rstrip(), flush=True)
    if result.returncode != 0:
        raise SystemExit(f"local loop failed: `{shlex.join(command)}` exited with {result.returncode}")
    return output


def count_rows(database_url: str, schema: str | None = None) -> int | None:
    """The rows of the events table (in `schema`, a branch's data environment); None when it is not there."""
    if database_url.startswith("sqlite:///"):
        main = Path(database_url.removeprefix("sqlite:///"))
        path = sqlite_schema_path(main, schema) if schema else main
        if not path.exists():
            return None
        with sqlite3.connect(path) as connection:
            return connection.execute(f"select count(*) from {TABLE}").fetchone()[0]
    import psycopg

    with psycopg.connect(database_url) as connection:
        if schema and not connection.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone():
            return None
        return connection.execute(f"select count(*) from {f'{schema}.' if schema else ''}{TABLE}").fetchone()[0]


def database_name(database_url: str) -> str:
    return "SQLite" if database_url.startswith("sqlite") else "PostgreSQL"


def serve_until_interrupted(ui_url: str, env: dict[str, str]) -> None:
    # Python leaves SIGINT ignored when it started so (a job a non-interactive shell put in the background):
    # Ctrl-C, or `kill -INT`, must end the wait whatever started it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # Ctrl-C may come as soon as the address is out
        step(f"the UI is at {ui_url} (deployments, the runs and their artifact); Ctrl-C tears down and stops all")
        print(f"PREFECT_API_URL={env['PREFECT_API_URL']} uv run flowops run ecommerce-events/production", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the generated sample month")
    parser.add_argument("--database-url", default=os.environ.get("ECOMMERCE_DATABASE_URL"), help="default: SQLite")
    parser.add_argument("--workdir", help="where the server, origin and data live (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="before the teardown, leave the server, its UI and the worker up until Ctrl-C",
    )
    args = parser.parse_args()

    started = time.monotonic()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="flowops-loop-")).resolve()
    # Two environments, two databases (SQLite files by default); with --database-url both use that database, and
    # the branch still loads into a schema of its own.
    database_url = args.database_url or f"sqlite:///{workdir / 'ecommerce.sqlite'}"
    staging_url = args.database_url or f"sqlite:///{workdir / 'ecommerce-staging.sqlite'}"
    branch_environments = load_project(ROOT).config.branch_environments
    schema = data_environment_name(branch_environments.prefix, DEMO_BRANCH) if branch_environments else None
    flowops = [sys.executable, "-m", "flowops"]
    if git(ROOT, "status", "--porcelain", "--untracked-files=no"):
        print("note: uncommitted changes are not deployed: workers clone the current commit from origin")

    step(f"Prefect server (SQLite) under {workdir}")
    with PrefectServer(workdir / "prefect", ui=args.serve) as server:
        env = base_environment(server.home, server.api_url)
        print(f"server up at {server.api_url} in {time.monotonic() - started:.0f} s")

        step("bare origin from the current commit, with branches main and " + DEMO_BRANCH)
        origin = make_origin(ROOT, workdir / "origin.git", ["main", DEMO_BRANCH])
        print(origin)
        overrides = ["--repository", origin, "--work-pool", POOL]
        # flowops deploys only a clean checkout of the commit it pins: deploy from a clone of that commit
        checkout = workdir / "checkout"
        git(workdir, "clone", "--quiet", origin, str(checkout))
        deploy = [*flowops, "-C", str(checkout), "deploy"]

        step("bootstrap: a process work pool, and each environment's database Secret block from its own URL")
        bootstrap = [*flowops, "bootstrap", "--work-pool", POOL, "--type", "process", "--environment"]
        run([*bootstrap, "production"], {**env, "ECOMMERCE_DATABASE_URL": database_url})
        run([*bootstrap, "staging"], {**env, "ECOMMERCE_DATABASE_URL": staging_url})

        step("deploy main (production) and the demo branch")
        run([*deploy, "--branch", "main", *overrides], env)
        run([*deploy, "--branch", DEMO_BRANCH, *overrides], env)

        step("a sample month")
        data = workdir / "data"
        run(
            [
                sys.executable,
                "-m",
                "flows.ecommerce",
                "generate",
                "--month",
                "2019-10",
                "--rows",
                str(args.rows),
                "--out",
                str(data),
            ],
            env,
        )

        # The worker's runs read local files only under $ECOMMERCE_DATA_DIR (a run parameter names the file).
        worker_env = {"ECOMMERCE_DATA_DIR": str(data)}
        with Worker(server.api_url, POOL, workdir / "worker", env=worker_env):
            step("run the production deployment and wait")
            sources = f'["{(data / "2019-Oct.csv").as_uri()}"]'
            run(
                [
                    *flowops,
                    "run",
                    "ecommerce-events/production",
                    "--param",
                    f"sources={sources}",
                    "--wait",
                    "--timeout",
                    "300",
                ],
                env,
            )
            step(f"run the demo branch's deployment (pinned to the commit): it loads into its own {schema}")
            branch_deployment = f"ecommerce-events/staging-{branch_slug(DEMO_BRANCH)}"
            run(
                [*flowops, "run", branch_deployment, "--param", f"sources={sources}", "--wait", "--timeout", "300"], env
            )
            rows, branch_rows = count_rows(database_url), count_rows(staging_url, schema)
            step(f"{rows:,} rows in {TABLE} (production, {database_name(database_url)})")
            step(f"{branch_rows or 0:,} rows in {schema}.{TABLE} (the demo branch's own, {database_name(staging_url)})")
            if args.serve:
                serve_until_interrupted(server.ui_url, env)

            step("tear the demo branch down: its data environment, then its deployments")
            run([*flowops, "teardown", "--branch", DEMO_BRANCH], env)
            left = count_rows(staging_url, schema)
            print(
                f"{schema}: {'gone' if left is None else f'{left:,} rows LEFT'}; production keeps {count_rows(database_url):,} rows"
            )
            if left is not None:
                raise SystemExit("local loop failed: the branch's data environment outlived its teardown")
    step(f"done in {time.monotonic() - started:.0f} s; everything started here is stopped")
    if args.keep:
        print(f"kept {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
