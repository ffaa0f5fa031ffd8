"""Prefect's deploy as flowops runs it (deploy/prefect_deploy.py), against a real Prefect server: two deployments at
a time, but one at a time when the file has build or push steps. Prefect runs those for every deployment, each in
a thread of its own: two Docker builds of one image, or two `cd`s of the process, must never overlap."""

from __future__ import annotations

import subprocess
import sys
import uuid

import yaml

from tests.helpers import api, deployments

DEPLOY = """
import sys
from pathlib import Path
from flowops.deploy.prefect_deploy import prefect_deploy_all
outcome = prefect_deploy_all(Path(sys.argv[1]), Path(sys.argv[2]))
print(outcome.output)
sys.exit(outcome.exit_code)
"""


def test_a_file_with_build_steps_deploys_one_deployment_at_a_time(hello_repo, tmp_path):
    pool = f"e2e-{uuid.uuid4().hex[:8]}"
    api(hello_repo.api_url, "work_pools/", {"name": pool, "type": "process"})
    lock, overlaps = tmp_path / "building", tmp_path / "overlaps"
    # each deployment's build holds a lock for a while: a build that finds it held ran beside another
    build = f"mkdir {lock} || echo overlap >> {overlaps}; sleep 0.3; rmdir {lock} 2>/dev/null; true"
    names = [f"built-{index}" for index in range(4)]
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(
        yaml.safe_dump(
            {
                "name": "built",
                "build": [{"prefect.deployments.steps.run_shell_script": {"script": build, "shell": True}}],
                "deployments": [
                    {"name": name, "entrypoint": "flows/hello.py:hello", "work_pool": {"name": pool}} for name in names
                ],
            }
        )
    )

    result = subprocess.run(
        [sys.executable, "-c", DEPLOY, str(prefect_file), str(hello_repo.path)],
        env=hello_repo.env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(deployments(hello_repo.api_url, hello_repo.flow_name)) == [
        f"{hello_repo.flow_name}/{name}" for name in names
    ]
    assert not overlaps.exists(), overlaps.read_text()
