"""Figures for the flows' image on the local container stack: build time cold and warm, size, the time from
`flowops deploy` to the first container run Completed, and how many builds a code-only change causes.

    bash scripts/container-stack.sh up && eval "$(bash scripts/container-stack.sh env)"
    uv run python scripts/bench_image.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from flowops.local import PrefectServer, Worker, base_environment, free_port, git, make_origin
from flowops.render.image import ImageRef, image_tag

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = os.environ.get("FLOWOPS_BASE_IMAGE", "localhost:5000/debian-base:bookworm")


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return time.perf_counter() - started, result.stdout


def main() -> int:
    import docker

    if not os.environ.get("DOCKER_HOST"):
        raise SystemExit(
            'no DOCKER_HOST: bash scripts/container-stack.sh up && eval "$(bash scripts/container-stack.sh env)"'
        )
    client = docker.from_env()
    name = f"localhost:5000/flowops-bench-{uuid.uuid4().hex[:6]}"
    ref = ImageRef(name, image_tag(ROOT))

    started = time.perf_counter()
    client.images.build(
        path=str(ROOT), tag=f"{ref}-cold", buildargs={"BASE_IMAGE": BASE_IMAGE}, nocache=True, rm=True, pull=True
    )
    cold = time.perf_counter() - started
    size_mb = client.images.get(f"{ref}-cold").attrs["Size"] / 1e6

    flowops = [sys.executable, "-m", "flowops"]
    with tempfile.TemporaryDirectory(prefix="flowops-bench-image-") as folder:
        Path(folder).chmod(0o755)  # the run's container (uid 10001) reads origin and the month file here
        repo = Path(folder) / "repo"
        repo.mkdir()
        for item in ("flows", "deployments"):
            shutil.copytree(ROOT / item, repo / item, ignore=shutil.ignore_patterns("__pycache__"))
        for item in ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock"):
            shutil.copy(ROOT / item, repo / item)
        git(repo, "init", "--quiet")
        git(repo, "add", "--all")
        git(repo, "commit", "--quiet", "--message", "bench")
        make_origin(repo, Path(folder) / "origin.git", ["main"])
        # Containers clone over git:// from the host network (a file:// origin owned by root is "dubious" to uid 10001).
        port = free_port()
        daemon = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                f"--base-path={folder}",
                "--listen=127.0.0.1",
                f"--port={port}",
                folder,
            ]
        )
        origin = f"git://127.0.0.1:{port}/origin.git"
        env = {**os.environ, "FLOWOPS_IMAGE_NAME": name}
        build_arg = ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
        warm, _ = timed([*flowops, "-C", str(repo), "image", "ensure", *build_arg], env, ROOT)
        present, _ = timed([*flowops, "-C", str(repo), "image", "ensure", *build_arg], env, ROOT)

        data = Path(folder) / "data"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.ecommerce",
                "generate",
                "--month",
                "2019-10",
                "--rows",
                "100000",
                "--out",
                str(data),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        with PrefectServer(Path(folder) / "prefect") as server:
            env = {**base_environment(server.home, server.api_url), "FLOWOPS_IMAGE_NAME": name}
            env["ECOMMERCE_DATABASE_URL"] = os.environ.get(
                "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
            )
            pool = "bench-docker"
            timed(
                [
                    *flowops,
                    "-C",
                    str(repo),
                    "bootstrap",
                    "--work-pool",
                    pool,
                    "--type",
                    "docker",
                    "--default",
                    "network_mode=host",
                    "--default",
                    "auto_remove=true",
                    "--default",
                    f'volumes=["{folder}:{folder}:ro"]',
                    "--default",  # the runs read the mounted folder's files: the operator allows it
                    f'env={{"ECOMMERCE_DATA_DIR": "{folder}"}}',
                ],
                # the registry login workers pull with (flowops.yaml image.registry_credentials); this registry is
                # open, so any login will do
                {**env, "REGISTRY_USERNAME": "bench", "REGISTRY_PASSWORD": "bench"},
                ROOT,
            )
            deploy_started = time.perf_counter()
            timed(
                [
                    *flowops,
                    "-C",
                    str(repo),
                    "deploy",
                    "--branch",
                    "main",
                    "--repository",
                    origin,
                    "--work-pool",
                    pool,
                    "--work-pool-type",
                    "docker",
                ],
                env,
                ROOT,
            )
            with Worker(
                server.api_url, pool, Path(folder) / "worker", env={"DOCKER_HOST": os.environ["DOCKER_HOST"]}
            ) as worker:
                params = [
                    "--param",
                    f'sources=["{data / "2019-Oct.csv"}"]',
                    "--param",
                    f"table=bench_{uuid.uuid4().hex[:6]}",
                ]
                try:
                    _, output = timed(
                        [*flowops, "run", "ecommerce-events/production", *params, "--wait", "--timeout", "600"],
                        env,
                        ROOT,
                    )
                except SystemExit:
                    print(worker.log()[-4000:], file=sys.stderr)
                    raise
            first_run = time.perf_counter() - deploy_started
        (repo / "flows" / "ecommerce" / "CHANGED.md").write_text("a code-only change\n")
        git(repo, "add", "--all")
        git(repo, "commit", "--quiet", "--message", "code only")
        _, after_change = timed(
            [*flowops, "-C", str(repo), "image", "ensure", *build_arg], {**os.environ, "FLOWOPS_IMAGE_NAME": name}, ROOT
        )

        daemon.terminate()

    builds_on_code_change = 0 if after_change.strip().endswith("(nothing built)") else 1
    print(f"image {ref}: {size_mb:.0f} MB (base image included)")
    print(f"build cold (no cache) + local tag:   {cold:6.1f} s")
    print(f"flowops image ensure, warm cache:    {warm:6.1f} s (build from cache + push)")
    print(f"flowops image ensure, tag present:   {present:6.1f} s (nothing built)")
    print(
        f"flowops deploy -> first container run Completed (worker start included): {first_run:.1f} s  [{output.strip().splitlines()[-1]}]"
    )
    print(f"builds after a code-only commit: {builds_on_code_change} (goal 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
