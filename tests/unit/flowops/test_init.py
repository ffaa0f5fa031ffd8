"""`flowops init` in a Prefect repository of its own (a weather summary, a root prefect.yaml, a process pool, no
Docker): what it writes validates at once, running it again changes nothing, and it never overwrites a file
without --force."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flowops.checks.validate import validate_project
from flowops.config.project import load_project
from flowops.local import git

FLOW = """\
from prefect import flow


@flow(name="weather-summary")
def summarize(city: str = "Oslo", days: int = 7, database_block: str = "weather-db") -> str:
    return f"{city}: {days} days"
"""
PREFECT_YAML = {
    "name": "weather",
    "pull": [
        {"prefect.deployments.steps.git_clone": {"repository": "https://github.com/acme/weather.git", "branch": "main"}}
    ],
    "deployments": [
        {
            "name": "daily",
            "entrypoint": "flows/weather.py:summarize",
            "parameters": {"city": "Oslo", "database_block": "weather-db"},
            "schedules": [{"cron": "0 6 * * *"}],
            "work_pool": {"name": "weather-pool"},
        }
    ],
}


@pytest.fixture
def weather(tmp_path) -> Path:
    root = tmp_path / "weather"
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "weather.py").write_text(FLOW)
    (root / "prefect.yaml").write_text(yaml.safe_dump(PREFECT_YAML, sort_keys=False))
    git(root, "init", "--quiet")
    git(root, "remote", "add", "origin", "git@github.com:acme/weather.git")
    return root


def flowops(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowops", "-C", str(root), *args], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_init_writes_what_validates_at_once_and_says_what_only_the_user_can_set(weather):
    result = flowops(weather, "init")
    assert result.returncode == 0, result.stderr
    assert {line for line in result.stdout.splitlines() if line.startswith("wrote ")} == {
        "wrote deployments/flowops.yaml",
        "wrote deployments/staging/prefect.yaml",
        "wrote .github/workflows/deploy.yml",
        "wrote .github/workflows/checks.yml",
    }
    workflow = yaml.safe_load((weather / ".github" / "workflows" / "deploy.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["uses"].startswith("flowops-dev/flowops/.github/workflows/flowops.yml@")
    # no uv project, no requirements.txt: flowops alone, without extras (a process pool needs none)
    assert job["with"]["install"] == "uv venv --quiet .venv && uv pip install --quiet --python .venv 'flowops-prefect'"
    assert job["secrets"] == "inherit"
    config = yaml.safe_load((weather / "deployments" / "flowops.yaml").read_text())
    assert config["project"] == "acme/weather"  # from the origin remote
    assert config["environments"] == {
        "production": {"branch": "main", "file": "../prefect.yaml", "secrets": {"weather-db": "WEATHER_DB"}},
        "staging": {
            "branch": "staging",
            "file": "staging/prefect.yaml",
            "secrets": {"weather-db-staging": "WEATHER_DB"},
        },
    }
    assert config["work_pools"] == {"weather-pool": {"type": "process"}, "weather-pool-staging": {"type": "process"}}
    assert "image" not in config  # no Dockerfile, no Docker pool
    staging = yaml.safe_load((weather / "deployments" / "staging" / "prefect.yaml").read_text())
    (deployment,) = staging["deployments"]
    assert (deployment["name"], deployment["work_pool"]["name"]) == ("daily-staging", "weather-pool-staging")
    assert deployment["parameters"]["database_block"] == "weather-db-staging"  # never production's block
    assert staging["pull"][0]["prefect.deployments.steps.git_clone"]["branch"] == "staging"
    assert yaml.safe_load((weather / "prefect.yaml").read_text()) == PREFECT_YAML  # the user's file is untouched
    for todo in (
        "work pool 'weather-pool': its type is not known here; process assumed",
        "repository secrets: PREFECT_API_URL",
        "GitHub environments `production` (deployment branches: main only)",
        "environment 'staging': secret WEATHER_DB (block 'weather-db-staging')",
    ):
        assert todo in result.stdout, todo
    assert validate_project(load_project(weather)) == []
    assert flowops(weather, "validate").returncode == 0


def test_the_checks_caller_runs_validate_and_only_the_lint_and_tests_the_repository_has(weather):
    """No lint set up and no tests: validate alone (empty commands leave their jobs out), and init says so; with
    pre-commit and a tests/ folder, those run, pytest installed beside flowops."""
    result = flowops(weather, "init")
    checks_file = weather / ".github" / "workflows" / "checks.yml"
    (job,) = yaml.safe_load(checks_file.read_text())["jobs"].values()
    assert job["uses"].startswith("flowops-dev/flowops/.github/workflows/flowops-checks.yml@")
    assert job["permissions"] == {"contents": "read"}
    assert (job["with"]["lint"], job["with"]["test"], job["with"]["flowops"]) == ("", "", ".venv/bin/flowops")
    assert ".github/workflows/checks.yml: no lint set up here (pre-commit or ruff)" in result.stdout
    assert ".github/workflows/checks.yml: no tests/ folder here" in result.stdout

    (weather / ".pre-commit-config.yaml").write_text("repos: []\n")
    (weather / "tests").mkdir()
    again = flowops(weather, "init", "--force")
    assert again.returncode == 0, again.stderr
    (job,) = yaml.safe_load(checks_file.read_text())["jobs"].values()
    assert job["with"]["lint"] == "uvx pre-commit run --all-files"
    assert job["with"]["test"] == ".venv/bin/python -m pytest"
    assert job["with"]["install"].endswith("'flowops-prefect' pytest")
    assert "`postgres: true` if the tests need PostgreSQL" in again.stdout


def test_init_again_changes_nothing_and_never_overwrites_without_force(weather):
    flowops(weather, "init")
    again = flowops(weather, "init")
    assert again.returncode == 0
    assert {line for line in again.stdout.splitlines() if line.startswith(("unchanged ", "wrote "))} == {
        "unchanged deployments/flowops.yaml",
        "unchanged deployments/staging/prefect.yaml",
        "unchanged .github/workflows/deploy.yml",
        "unchanged .github/workflows/checks.yml",
    }
    config_file = weather / "deployments" / "flowops.yaml"
    # a pool's type set by hand is what init knows of the pool from then on: nothing to change
    config_file.write_text(config_file.read_text().replace("type: process", "type: docker", 1))
    assert "unchanged deployments/flowops.yaml" in flowops(weather, "init").stdout
    edited = config_file.read_text().replace("project: acme/weather", "project: acme/renamed")
    config_file.write_text(edited)
    kept = flowops(weather, "init")
    assert kept.returncode == 1
    assert (
        "error: deployments/flowops.yaml is there with other content: kept (pass --force to overwrite it)"
        in kept.stderr
    )
    assert config_file.read_text() == edited
    forced = flowops(weather, "init", "--force")
    assert forced.returncode == 0
    assert "wrote deployments/flowops.yaml" in forced.stdout
    config = yaml.safe_load(config_file.read_text())
    assert (config["project"], config["work_pools"]["weather-pool"]) == ("acme/weather", {"type": "docker"})


def test_init_points_at_per_environment_files_that_are_there_and_refuses_a_repository_without_prefect_yaml(
    sample_project, tmp_path
):
    (sample_project / "deployments" / "flowops.yaml").unlink()
    git(sample_project, "init", "--quiet")
    result = flowops(sample_project, "init", "--name", "acme/hello")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("wrote ")] == [
        "wrote deployments/flowops.yaml",
        "wrote .github/workflows/deploy.yml",
        "wrote .github/workflows/checks.yml",
    ]  # no prefect.yaml: those are there
    config = yaml.safe_load((sample_project / "deployments" / "flowops.yaml").read_text())
    assert {env: spec["file"] for env, spec in config["environments"].items()} == {
        "production": "main/prefect.yaml",
        "staging": "staging/prefect.yaml",
    }
    assert flowops(sample_project, "validate").returncode == 0

    empty = tmp_path / "empty"
    empty.mkdir()
    refused = flowops(empty, "init", "--name", "acme/empty")
    assert refused.returncode == 1
    assert "no prefect.yaml here" in refused.stderr
    assert not (empty / "deployments").exists()
