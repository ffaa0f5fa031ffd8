"""flowops as an adopter installs it: the built wheel in a virtual environment of its own. Its integrations are
extras: without them it installs fewer packages, validates and deploys a project of process pools, and names the
extra to install when flowops.yaml uses what is missing, before anything changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import build_release, edit_yaml, uv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this repository's files, committed and tagged v1.2.3: its version comes from the tag."""
    built = build_release(tmp_path_factory.mktemp("source"), "v1.2.3", tmp_path_factory.mktemp("dist"))
    assert built.name == "flowops_prefect-1.2.3-py3-none-any.whl"
    return built


def venv_with(tmp_path: Path, requirement: str) -> Path:
    """A new virtual environment holding `requirement` and what it needs; its python."""
    uv("venv", "--quiet", "--python", sys.executable, str(tmp_path))
    python = tmp_path / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", str(python), requirement)
    return python


def packages(python: Path) -> int:
    return len(uv("pip", "freeze", "--python", str(python)).splitlines())


def test_without_its_extras_flowops_installs_less_runs_and_names_an_extra_a_project_needs(
    wheel, tmp_path, sample_project
):
    bare = venv_with(tmp_path / "bare", str(wheel))
    full = venv_with(tmp_path / "full", f"flowops-prefect[docker,kubernetes,github] @ {wheel.as_uri()}")
    counts = (packages(bare), packages(full))
    print(f"\ninstalled packages: {counts[0]} without extras, {counts[1]} with all three")  # noqa: T201 - README's figure
    assert counts[0] < counts[1]

    def flowops(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(python), "-m", "flowops", "-C", str(sample_project), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    assert flowops(bare, "--version").stdout == "flowops 1.2.3\n"
    by_its_name = subprocess.run(
        [str(bare.parent / "flowops-prefect"), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert by_its_name.returncode == 0  # what `uvx flowops-prefect ...` runs
    # the sample project's production pool is a Docker pool: validate names the extra, one line
    refused = flowops(bare, "validate")
    assert refused.returncode == 1
    assert (
        "deployments/main/prefect.yaml: production: work_pool.name: 'hello-production' is a docker pool: install"
        " flowops' docker extra: pip install 'flowops-prefect[docker]' (it brings prefect_docker)"
    ) in refused.stderr
    assert flowops(full, "validate").returncode == 0

    # a project of process pools only needs none of them
    edit_yaml(
        sample_project / "deployments" / "flowops.yaml",
        lambda c: c["work_pools"]["hello-production"].update(type="process"),
    )
    edit_yaml(
        sample_project / "deployments" / "main" / "prefect.yaml",
        lambda c: c["deployments"][0]["work_pool"].update(job_variables={}),
    )
    result = flowops(bare, "validate")
    assert result.returncode == 0, result.stderr
    assert flowops(bare, "schema", "--markdown").stdout.startswith("# flowops.yaml reference")
