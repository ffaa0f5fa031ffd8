"""Another team's repository adopts flowops as docs/getting-started.md says, under act against a real Prefect
server: a weather flow, a root prefect.yaml, a process pool, no image, no Makefile. It uses only the built
distribution, `flowops init` and the reusable workflow at the release's tag
(`flowops-dev/flowops/.github/workflows/flowops.yml@v1`, which init writes); the team writes its flow and its
prefect.yaml, and nothing else."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from flowops.github.pull_request_comment import MARKER
from flowops.local import base_environment, git
from flowops.render.branches import branch_slug
from tests.helpers import GitHubAPI, build_release, deployments, event, git_clone_step
from tests.workflows.conftest import OWNER_REPOSITORY, Repository, act_environment

RELEASE, RELEASE_TAG = "flowops-dev/flowops", "v1"
FLOW = """\
from prefect import flow


@flow(name="FLOW_NAME", log_prints=True)
def summarize(city: str = "Oslo", days: int = 7) -> str:
    summary = f"{city}: {days} days of weather"
    print(summary)
    return summary
"""
TEAM_TEST = """\
from flows.weather import summarize


def test_the_summary_names_the_city_and_the_days():
    assert summarize.fn("Bergen", 3) == "Bergen: 3 days of weather"
"""
PULL_REQUEST_JOB = "branch deployments of the pull request"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, Path]:
    """flowops as its users get it: this repository's files committed and tagged v1 (what `uses: ...@v1` reads:
    act reads the folder, as it cannot fetch from a file:// remote what it would from GitHub), and the wheel built
    from them (version 1), in a folder standing in for PyPI (flowops-prefect is not published yet)."""
    source, wheels = tmp_path_factory.mktemp("flowops-release"), tmp_path_factory.mktemp("index")
    build_release(source, RELEASE_TAG, wheels)
    return source, wheels


def test_a_weather_repository_adopts_flowops_from_git_init_to_a_deployed_pull_request(
    tmp_path, prefect_server, stand_ins, release
):
    source, wheels = release
    started = time.monotonic()
    commands = []

    def team(*command: str, cwd: Path, env: dict | None = None) -> str:
        """A command the team types; counted."""
        commands.append(" ".join(command))
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
        return result.stdout

    # The team's machine: flowops from the distribution (PyPI's stand-in folder), nothing of this repository.
    tool = tmp_path / "tool"
    team("uv", "venv", "--quiet", str(tool), cwd=tmp_path)
    team("uv", "pip", "install", "--quiet", "--python", str(tool), "--find-links", str(wheels),
         "flowops-prefect[act]", cwd=tmp_path)  # fmt: skip
    flowops = str(tool / "bin" / "flowops")

    # The repository as the team has it: a flow and its prefect.yaml, on a process pool.
    suffix = uuid.uuid4().hex[:8]
    flow_name, pool = f"weather-{suffix}", f"weather-{suffix}"
    path = tmp_path / "weather"
    (path / "flows").mkdir(parents=True)
    (path / "flows" / "weather.py").write_text(FLOW.replace("FLOW_NAME", flow_name))
    prefect_yaml = {
        "name": "weather",
        "pull": [{"prefect.deployments.steps.git_clone": {"repository": f"https://github.com/{OWNER_REPOSITORY}.git",
                                                          "branch": "main"}}],
        "deployments": [{"name": "daily", "entrypoint": "flows/weather.py:summarize", "parameters": {"city": "Oslo"},
                         "schedules": [{"cron": "0 6 * * *"}], "work_pool": {"name": pool}}],
    }  # fmt: skip
    (path / "prefect.yaml").write_text(yaml.safe_dump(prefect_yaml, sort_keys=False))
    (path / "tests").mkdir()
    (path / "tests" / "test_weather.py").write_text(TEAM_TEST)
    hand_written = {"flows/weather.py", "prefect.yaml", "tests/test_weather.py"}  # the team's own, before flowops
    team("git", "init", "--quiet", "--initial-branch", "main", cwd=path)
    team("git", "remote", "add", "origin", f"https://github.com/{OWNER_REPOSITORY}.git", cwd=path)

    # flowops init writes flowops.yaml, staging's file and the workflows calling flowops' own at this release's tag
    output = team(flowops, "init", cwd=path)
    written = {line.removeprefix("wrote ") for line in output.splitlines() if line.startswith("wrote ")}
    assert written == {
        "deployments/flowops.yaml", "deployments/staging/prefect.yaml",
        ".github/workflows/deploy.yml", ".github/workflows/checks.yml",
    }  # fmt: skip
    workflows = [(path / ".github" / "workflows" / name).read_text() for name in ("deploy.yml", "checks.yml")]
    assert f"/.github/workflows/flowops.yml@{RELEASE_TAG}\n" in workflows[0]
    assert f"/.github/workflows/flowops-checks.yml@{RELEASE_TAG}\n" in workflows[1]
    workflow_lines = [
        line for workflow in workflows for line in workflow.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]  # fmt: skip
    hand_written_workflow_lines = 0  # the team wrote none of them
    team(flowops, "validate", cwd=path)

    server = tmp_path / "github"
    repository = Repository(path, server, prefect_server.api_url, stand_ins)
    repository.repositories[f"{RELEASE}@{RELEASE_TAG}"] = source  # the release, as GitHub would serve it
    repository.origin.parent.mkdir(parents=True)
    git(tmp_path, "init", "--quiet", "--bare", str(repository.origin))
    github = GitHubAPI(OWNER_REPOSITORY, f"ghs_{uuid.uuid4().hex}")
    try:
        repository.env.update(GITHUB_API_URL=github.url, UV_FIND_LINKS=str(wheels))
        repository.secrets.update(PREFECT_API_URL=prefect_server.api_url, GITHUB_TOKEN=github.token)
        first = repository.commit("adopt flowops")  # committed, not pushed yet
        commands += ["git add --all", "git commit"]
        # The operator's one-time bootstrap (what init said): the pools (no Secret blocks: the flow loads none).
        operator = base_environment(tmp_path / "operator", prefect_server.api_url)
        team(flowops, "bootstrap", "--environment", "production", cwd=path, env=operator)
        # Before any push, the team runs its delivery on its own machine, offline: production deploys.
        secrets = tmp_path / "secrets"
        secrets.write_text(f"PREFECT_API_URL={prefect_server.api_url}\n")
        local = act_environment({"UV_FIND_LINKS": str(wheels)})
        output = team(flowops, "act", "push", "--secret-file", str(secrets), cwd=path, env=local)
        assert re.search(r"^\[[^\]]*deploy production *\] 🏁  Job succeeded", output, re.MULTILINE), output[-3000:]
        production = deployments(prefect_server.api_url, flow_name)[f"{flow_name}/daily"]
        assert git_clone_step(production)["commit_sha"] == first
        for branch in ("main", "staging"):
            git(path, "push", "--quiet", str(repository.origin), f"HEAD:refs/heads/{branch}")
        commands.append("git push")

        run = repository.act("deploy.yml", "push", event("push_main", HEAD_SHA=first))
        assert run.job("deploy production") == "succeeded", run.output[-3000:]
        assert run.job("flows image") == "succeeded"  # it ran, and built nothing: flowops.yaml declares no image
        assert "flowops.yaml declares no image: nothing to build" in run.output
        live = deployments(prefect_server.api_url, flow_name)
        assert git_clone_step(live[f"{flow_name}/daily"])["commit_sha"] == first

        git(path, "checkout", "--quiet", "-b", "feature/rain")
        (path / "flows" / "weather.py").write_text(FLOW.replace("FLOW_NAME", flow_name).replace("Oslo", "Bergen"))
        head = repository.commit("rain in Bergen", push=["feature/rain"])
        opened, closed = (event(f"pull_request_{action}", HEAD_SHA=head) for action in ("opened", "closed"))
        for payload in (opened, closed):
            payload["pull_request"]["head"]["ref"] = "feature/rain"
        run = repository.act("deploy.yml", "pull_request", opened)
        elapsed = time.monotonic() - started
        assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
        branch_deployment = f"{flow_name}/daily-staging-{branch_slug('feature/rain')}"
        assert git_clone_step(deployments(prefect_server.api_url, flow_name)[branch_deployment])["commit_sha"] == head
        comment = next(c for c in github.comments if c["user"]["type"] == "Bot")
        assert comment["body"].startswith(MARKER)
        assert f"`{branch_deployment}` | create" in comment["body"]
        # the pull request's checks: validate and the team's own test (no lint is set up: that job is left out)
        run = repository.act("checks.yml", "pull_request", opened)
        for job in ("flowops validate", "tests", "pass"):
            assert run.job(job) == "succeeded", f"{job}: {run.job(job)}\n{run.output[-3000:]}"
        assert run.job("lint") == "not run"
        assert "1 passed" in run.output

        # merged: production deploys the merge
        git(path, "checkout", "--quiet", "main")
        git(path, "merge", "--quiet", "--no-ff", "--no-edit", "feature/rain")
        merge = repository.commit("merge pull request #7", push=["main"])
        run = repository.act("deploy.yml", "push", event("push_main", HEAD_SHA=merge))
        assert run.job("deploy production") == "succeeded", run.output[-3000:]
        assert (
            git_clone_step(deployments(prefect_server.api_url, flow_name)[f"{flow_name}/daily"])["commit_sha"] == merge
        )
        run = repository.act("deploy.yml", "pull_request", closed)
        assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
        assert set(deployments(prefect_server.api_url, flow_name)) == {f"{flow_name}/daily"}
        assert github.problems == []
    finally:
        github.close()
    tracked = set(git(path, "ls-files").splitlines())
    assert tracked == hand_written | written  # nothing else was written, by hand or by a tool
    print(  # noqa: T201 - the adoption figures in docs/getting-started.md
        f"\nadoption: {len(hand_written)} files written by hand ({', '.join(sorted(hand_written))}),"
        f" {hand_written_workflow_lines} workflow lines by hand (init wrote {len(workflow_lines)}),"
        f" {len(commands)} commands, {elapsed:.0f} s from git init to a deployed pull request"
    )
