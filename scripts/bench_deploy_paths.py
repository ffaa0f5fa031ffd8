"""Each deploy path of flowops, timed against a bare `prefect deploy --all` of the same rendered file, as the
number of deployments N grows, on a Prefect server backed by PostgreSQL and by SQLite (the embedded default).

For each backend and N, a clone of this commit gets a staging file of N deployments (copies of its first) and a
fresh server (a new PostgreSQL database, or a new SQLite file). Each command is a whole process, as CI runs it:

- a. create N from nothing: `flowops deploy` of a branch never deployed, and the bare deploy of another such
  branch's rendered file (each repeat with new branch names: both start from nothing);
- b. a new commit that edits one deployment: `flowops deploy` (one redefined, every other pin moves), and the bare
  deploy of the whole rendered file;
- c. nothing changed: `flowops deploy` again, and `flowops plan`;
- c'. a new commit that touches no deployment (every pin moves): `flowops deploy`.

Medians of `--repeats` runs; the ratios to the bare deploy are from the same run, next to the goals of issue 24.
With `--phases`, one more round of each flowops path, not timed for the table, prints where its seconds went
(`FLOWOPS_TIMINGS=1`).

    uv run python scripts/bench_deploy_paths.py [--deployments 1 10 100 300] [--repeats 3]
        [--backends postgres sqlite] [--postgres URL] [--phases]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_deploy import POOL, edit_one_deployment, server_database, settle, timed, work_copy

from flowops.local import PrefectServer, base_environment, git, make_origin

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
CREATE, CREATE_BARE = "a. flowops deploy, N new", "a. bare deploy, N new"
EDIT, EDIT_BARE = "b. flowops deploy, 1 edited", "b. bare deploy, 1 edited"
UNCHANGED, PLAN = "c. flowops deploy, nothing changed", "c. flowops plan, nothing changed"
PINS = "c'. flowops deploy, no deployment touched"
GOALS = {CREATE: ("ratio", 0.25), EDIT: ("ratio", 0.05), UNCHANGED: ("seconds", 0.6), PLAN: ("seconds", 0.6),
         PINS: ("seconds", 1.5)}  # fmt: skip


def commit_touching_no_deployment(work: Path, revision: int) -> None:
    (work / "NOTES.md").write_text(f"a note, revision {revision}\n")
    git(work, "add", "NOTES.md")
    git(work, "commit", "--quiet", "--message", f"a note, revision {revision}")


def drop_branch(env: dict[str, str], work: Path, branch: str) -> None:
    """Delete a branch's deployments straight through the API (teardown would wait for a worker to drop its data)."""
    script = (
        "from flowops.api.client import connect; from flowops.render.prefect_yaml import ownership_tags; "
        "from flowops.config.project import load_project; import sys; "
        "project = load_project(sys.argv[1]).config.project\n"
        "with connect() as server: server.delete_deployments(server.read_tagged_deployments("
        "ownership_tags(project, sys.argv[2])))"
    )
    subprocess.run([sys.executable, "-c", script, str(work), branch], env=env, check=True, capture_output=True)


def phases(command: list[str], env: dict[str, str], cwd: Path) -> str:
    """The command's own account of its seconds (FLOWOPS_TIMINGS), run once more outside the timed ones."""
    environment = {**env, "FLOWOPS_TIMINGS": "1"}
    result = subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return next(line for line in result.stderr.splitlines() if line.startswith("timings: "))


def measure(
    folder: Path, deployments: int, repeats: int, database: str | None, show_phases: bool = False
) -> dict[str, list[float]]:
    flowops = [sys.executable, "-m", "flowops"]
    prefect = [str(Path(sys.executable).with_name("prefect")), "--no-prompt", "deploy", "--all", "--prefect-file"]
    backend = "postgres" if database else "sqlite"
    (folder / backend).mkdir(exist_ok=True)
    work = work_copy(folder / backend, deployments)
    times: dict[str, list[float]] = {name: [] for name in (CREATE, CREATE_BARE, EDIT, EDIT_BARE, UNCHANGED, PLAN, PINS)}
    with (
        server_database(database) as database_url,
        PrefectServer(folder / backend / f"prefect-{deployments}", database_url=database_url) as server,
    ):
        env = base_environment(server.home, server.api_url)
        branches = [f"bench/{kind}-{r}" for r in range(repeats) for kind in ("flowops", "bare")] + ["bench/phases"]
        origin = make_origin(work, folder / backend / f"origin-{deployments}.git", ["main", *branches])
        bootstrap = [*flowops, "bootstrap", "--work-pool", POOL, "--type", "process", "--environment", "staging"]
        timed(bootstrap, {**env, "ECOMMERCE_DATABASE_URL": f"sqlite:///{folder / 'staging.sqlite'}"}, work)

        def flowops_on(branch: str, *command: str) -> list[str]:
            return [*flowops, *command, "--branch", branch, "--repository", origin, "--work-pool", POOL]

        rendered = folder / backend / f"rendered-{deployments}.yaml"
        kept = "bench/flowops-0"  # the branch b, c and c' work on
        for revision in range(repeats):
            mine, bare = f"bench/flowops-{revision}", f"bench/bare-{revision}"
            settle(server)
            times[CREATE].append(timed(flowops_on(mine, "deploy"), env, work))
            timed(flowops_on(bare, "render", "-o", str(rendered)), env, work)
            settle(server)
            times[CREATE_BARE].append(timed([*prefect, str(rendered)], env, work))
            drop_branch(env, work, bare)
            if mine != kept:
                drop_branch(env, work, mine)
        for revision in range(repeats):
            edit_one_deployment(work, revision)
            settle(server)
            times[EDIT].append(timed(flowops_on(kept, "deploy"), env, work))
            timed(flowops_on(kept, "render", "-o", str(rendered)), env, work)
            settle(server)
            times[EDIT_BARE].append(timed([*prefect, str(rendered)], env, work))
            settle(server)
            timed(flowops_on(kept, "deploy"), env, work)  # back to flowops' own state after the bare deploy
            settle(server)
            times[UNCHANGED].append(timed(flowops_on(kept, "deploy"), env, work))
            times[PLAN].append(timed(flowops_on(kept, "plan"), env, work))
            commit_touching_no_deployment(work, revision)
            settle(server)
            times[PINS].append(timed(flowops_on(kept, "deploy"), env, work))
        if show_phases:
            settle(server)
            print(f"\n{backend}, N={deployments}, where the seconds go:")
            print(f"{CREATE}: {phases(flowops_on('bench/phases', 'deploy'), env, work)}")
            edit_one_deployment(work, repeats)
            settle(server)
            print(f"{EDIT}: {phases(flowops_on(kept, 'deploy'), env, work)}")
            settle(server)
            print(f"{UNCHANGED}: {phases(flowops_on(kept, 'deploy'), env, work)}")
            commit_touching_no_deployment(work, repeats)
            settle(server)
            print(f"{PINS}: {phases(flowops_on(kept, 'deploy'), env, work)}", flush=True)
    return times


def report(backend: str, medians: dict[int, dict[str, float]]) -> None:
    print(f"\nPrefect server on {backend}: medians, seconds (ratios to the bare deploy of the same N and run)")
    sizes = sorted(medians)
    print(f"{'path':<44}" + "".join(f"{f'N={n}':>10}" for n in sizes) + f"{'goal':>16}")
    for name in (CREATE, CREATE_BARE, EDIT, EDIT_BARE, UNCHANGED, PLAN, PINS):
        print(f"{name:<44}" + "".join(f"{medians[n][name]:>10.2f}" for n in sizes) + f"{goal_text(name):>16}")
    for name, bare in ((CREATE, CREATE_BARE), (EDIT, EDIT_BARE)):
        ratios = "".join(f"{medians[n][name] / medians[n][bare]:>10.2f}" for n in sizes)
        print(f"{name + ' / bare':<44}" + ratios + f"{goal_text(name):>16}")
    if len(sizes) > 1:
        for name in (EDIT, UNCHANGED, PLAN):
            print(f"{name}: N={sizes[-1]} / N={sizes[0]} = {medians[sizes[-1]][name] / medians[sizes[0]][name]:.2f}x")


def goal_text(name: str) -> str:
    if name not in GOALS:
        return ""
    kind, value = GOALS[name]
    return f"<= {value}x bare" if kind == "ratio" else f"<= {value} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, nargs="+", default=[1, 10, 100], metavar="N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", choices=("postgres", "sqlite"), default=["postgres", "sqlite"])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, metavar="URL", help="where the servers' databases go")
    parser.add_argument("--phases", action="store_true", help="also print where each path's seconds go")
    args = parser.parse_args()
    started = time.monotonic()
    for backend in args.backends:
        medians: dict[int, dict[str, float]] = {}
        for deployments in sorted(set(args.deployments)):
            with tempfile.TemporaryDirectory(prefix="flowops-bench-paths-") as folder:
                database = args.postgres if backend == "postgres" else None
                times = measure(Path(folder), deployments, args.repeats, database, args.phases)
            medians[deployments] = {name: statistics.median(values) for name, values in times.items()}
            print(f"{backend}, N={deployments}: " + ", ".join(f"{k} {v:.2f}" for k, v in medians[deployments].items()),
                  flush=True)  # fmt: skip
        report(backend, medians)
    print(f"\n(whole benchmark: {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
