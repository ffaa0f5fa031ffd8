"""How long flowops' commands take against a local Prefect server, next to a bare `prefect deploy --all`.

Each command runs as a whole process (as CI runs it), alternating, 5 times; the table shows medians.
`flowops deploy --force` does everything a deploy does (validate, plan, pools, prefect deploy, prune) on the
same rendered file the bare `prefect deploy --all` gets, so their ratio is flowops' overhead (goal: <= 1.2).

    uv run python scripts/bench_deploy.py [--repeats 5] [--loop]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowops.local import PrefectServer, base_environment, make_origin

ROOT = Path(__file__).resolve().parent.parent
POOL = "bench-process"
BRANCH = "bench/deploy"


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop", action="store_true", help="also time the whole local loop (scripts/local_loop.py)")
    args = parser.parse_args()

    flowops = [sys.executable, "-m", "flowops"]
    prefect = [str(Path(sys.executable).with_name("prefect")), "--no-prompt"]
    with (
        tempfile.TemporaryDirectory(prefix="flowops-bench-") as folder,
        PrefectServer(Path(folder) / "prefect") as server,
    ):
        env = base_environment(server.home, server.api_url)
        origin = make_origin(ROOT, Path(folder) / "origin.git", ["main", BRANCH])
        overrides = ["--branch", BRANCH, "--repository", origin, "--work-pool", POOL]
        subprocess.run(
            [*flowops, "bootstrap", "--work-pool", POOL, "--type", "process"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        rendered = Path(folder) / "rendered.yaml"
        subprocess.run(
            [*flowops, "render", *overrides, "-o", str(rendered)], env=env, cwd=ROOT, check=True, capture_output=True
        )
        subprocess.run([*flowops, "deploy", *overrides], env=env, cwd=ROOT, check=True, capture_output=True)

        commands = {
            "prefect deploy --all (rendered file)": [*prefect, "deploy", "--all", "--prefect-file", str(rendered)],
            "flowops deploy --force": [*flowops, "deploy", *overrides, "--force"],
            "flowops deploy (nothing changed)": [*flowops, "deploy", *overrides],
            "flowops plan": [*flowops, "plan", *overrides],
            "flowops validate": [*flowops, "validate"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                times[name].append(timed(command, env))

    medians = {name: statistics.median(values) for name, values in times.items()}
    bare = medians["prefect deploy --all (rendered file)"]
    print(f"\n{'command':<40} {'median s':>9} {'min s':>7} {'max s':>7} {'/ bare deploy':>14}")
    for name, values in times.items():
        print(f"{name:<40} {medians[name]:>9.2f} {min(values):>7.2f} {max(values):>7.2f} {medians[name] / bare:>14.2f}")
    print(f"\nflowops deploy / prefect deploy --all: {medians['flowops deploy --force'] / bare:.2f}x (goal <= 1.2x)")

    if args.loop:
        started = time.perf_counter()
        subprocess.run([sys.executable, "scripts/local_loop.py"], cwd=ROOT, check=True, capture_output=True)
        print(f"local loop (make demo's script, 100,000 rows): {time.perf_counter() - started:.1f} s (goal < 180 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
