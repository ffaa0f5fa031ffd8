""" "Nothing changed" answered without Prefect (deploy/unchanged.py) against a real Prefect server: a deploy or a
plan of what was deployed reads the server and stops, without importing Prefect; anything done to the branch's
deployments by hand since (a field edited, a deployment deleted) takes the whole way again, which puts it back;
teardown removes the record with the deployments."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from flowops.deploy.unchanged import record_name
from flowops.render.branches import branch_slug
from tests.e2e.test_deploy import pool_args, server_state
from tests.helpers import api, deployments

FAST = "read without Prefect"


def flowops_timed_imports(repo, *args: str, env_extra: dict | None = None) -> tuple[subprocess.CompletedProcess, bool]:
    """Run flowops as a user would, and say whether the process imported Prefect (`python -X importtime`)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flowops", "-C", str(repo.path), *args],
        env={**repo.env, **(env_extra or {})}, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    imported = any(line.split("|")[-1].strip() == "prefect" for line in result.stderr.splitlines())
    return result, imported


def request(api_url: str, method: str, path: str, body: dict | None = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(  # noqa: S310 - the local test server
        f"{api_url}/{path}", data=data, headers={"Content-Type": "application/json"}, method=method
    )
    with urllib.request.urlopen(call, timeout=30):  # noqa: S310 - the local test server
        pass


def test_nothing_changed_is_answered_without_prefect_and_a_hand_made_change_takes_the_whole_way(hello_repo):
    pools = pool_args()
    deploy = ["deploy", "--branch", "feature/same", "--repository", hello_repo.origin_url, *pools]
    plan = ["plan", "--branch", "feature/same", "--repository", hello_repo.origin_url, *pools]
    first, imported = flowops_timed_imports(hello_repo, *deploy)
    assert "+ create" in first.stdout
    assert imported  # the first deploy goes the whole way
    before = server_state(hello_repo)

    again, imported = flowops_timed_imports(hello_repo, *deploy)
    assert FAST in again.stdout
    assert "nothing to deploy: the server already matches this commit" in again.stdout
    assert not imported
    summary = hello_repo.path.parent / "step-summary.md"
    planned, imported = flowops_timed_imports(hello_repo, *plan, env_extra={"GITHUB_STEP_SUMMARY": str(summary)})
    assert "nothing to change" in planned.stdout
    assert "nothing to change" in summary.read_text()  # the job's summary says it too
    assert FAST in planned.stdout
    assert not imported
    assert server_state(hello_repo) == before  # not one write, not even an `updated` timestamp

    name = f"{hello_repo.flow_name}/staging-{branch_slug('feature/same')}"
    deployment = deployments(hello_repo.api_url, hello_repo.flow_name)[name]
    edited = {"tags": [*deployment["tags"], "added-in-the-ui"]}
    request(hello_repo.api_url, "PATCH", f"deployments/{deployment['id']}", edited)
    drifted = hello_repo.flowops(*deploy)
    assert FAST not in drifted.stdout
    assert f"~ update    {name}" in drifted.stdout
    assert deployments(hello_repo.api_url, hello_repo.flow_name)[name]["tags"] == deployment["tags"]
    assert FAST in hello_repo.flowops(*deploy).stdout  # the whole way recorded the state it left

    request(hello_repo.api_url, "DELETE", f"deployments/{deployment['id']}")
    recreated = hello_repo.flowops(*deploy)
    assert FAST not in recreated.stdout
    assert f"+ create    {name}" in recreated.stdout
    assert FAST not in hello_repo.flowops(*deploy, "--force").stdout  # --force always takes the whole way

    variable = record_name("acme/hello", branch_slug("feature/same"))
    assert api(hello_repo.api_url, f"variables/name/{variable}")["value"]["rendered"]
    hello_repo.flowops("teardown", "--branch", "feature/same")
    assert name not in deployments(hello_repo.api_url, hello_repo.flow_name)
    assert api(hello_repo.api_url, "variables/filter", {"variables": {"name": {"any_": [variable]}}}) == []


def test_a_configuration_prefects_client_would_apply_takes_the_whole_way(hello_repo):
    """With a setting only Prefect's client knows how to apply (here, custom headers), flowops never calls the API
    on its own: the deploy goes through Prefect, and still finds nothing to change."""
    pools = pool_args()
    hello_repo.deploy("feature/headers", *pools)
    again = hello_repo.flowops(
        "deploy", "--branch", "feature/headers", "--repository", hello_repo.origin_url, *pools,
        env_extra={"PREFECT_CLIENT_CUSTOM_HEADERS": '{"X-Test": "1"}'},
    )  # fmt: skip
    assert FAST not in again.stdout
    assert "nothing to deploy: the server already matches this commit" in again.stdout


MOVED = "only moved to this commit (their pin, tags and version, written without Prefect)"


def three_copies(repo) -> None:
    """The branch file's deployment three times, and an origin remote (Prefect then versions by commit)."""
    from flowops.local import git
    from tests.e2e.test_deploy import STAGING_FILE
    from tests.helpers import edit_yaml

    def copies(content):
        first = content["deployments"][0]
        content["deployments"] = [{**json.loads(json.dumps(first)), "name": f"copy-{i}"} for i in range(3)]

    edit_yaml(repo.path / STAGING_FILE, copies)
    git(repo.path, "remote", "add", "origin", repo.origin_url)
    repo.commit("three deployments")


def pins(repo) -> dict[str, tuple[str, str, str]]:
    """Each deployment's commit: in its pull step, its commit tag and its version."""
    found = {}
    for name, deployment in deployments(repo.api_url, repo.flow_name).items():
        clone = deployment["pull_steps"][0]["prefect.deployments.steps.git_clone"]
        tag = next(t for t in deployment["tags"] if t.startswith("commit:"))
        found[name] = (clone["commit_sha"][:8], tag.removeprefix("commit:"), deployment["version"])
    return found


def test_a_commit_that_changes_no_deployment_moves_every_pin_without_prefect_and_code_takes_the_whole_way(
    hello_repo,
):
    pools = pool_args()
    deploy = ["deploy", "--branch", "feature/docs", "--repository", hello_repo.origin_url, *pools]
    three_copies(hello_repo)
    assert "+ create" in hello_repo.flowops(*deploy).stdout

    (hello_repo.path / "NOTES.md").write_text("a commit that changes no deployment\n")
    head = hello_repo.commit("notes")
    moved, imported = flowops_timed_imports(hello_repo, *deploy)
    assert f"3 deployment(s) {MOVED}" in moved.stdout
    assert not imported
    assert set(pins(hello_repo).values()) == {(head[:8],) * 3}
    assert FAST in hello_repo.flowops(*deploy).stdout  # it recorded what it left

    flow_file = hello_repo.path / "flows" / "hello.py"
    flow_file.write_text(flow_file.read_text() + "\n# a change to the code\n")
    head = hello_repo.commit("code")
    whole, imported = flowops_timed_imports(hello_repo, *deploy)
    assert MOVED not in whole.stdout
    assert "3 deployment(s) only moved to this commit: their pin, tags and version, through the API" in whole.stdout
    assert imported
    assert set(pins(hello_repo).values()) == {(head[:8],) * 3}


def test_a_pin_move_the_server_refuses_puts_back_every_deployment_it_moved(hello_repo):
    """One of the branch's deployments is deleted between the check and the writes: its write fails, and the others
    go back to the commit they ran."""
    import pytest

    from flowops.api.http import PlainAPI
    from flowops.cli import _render
    from flowops.config.project import load_project
    from flowops.deploy.pin_moves import planned_move, write_pin_moves
    from flowops.errors import DeployFailed
    from flowops.render.prefect_yaml import Overrides

    pools = pool_args()
    deploy = ["deploy", "--branch", "feature/refused", "--repository", hello_repo.origin_url, *pools]
    three_copies(hello_repo)
    hello_repo.flowops(*deploy)
    before = pins(hello_repo)
    (hello_repo.path / "NOTES.md").write_text("a commit that changes no deployment\n")
    hello_repo.commit("notes")

    overrides = Overrides(hello_repo.origin_url, pools[1], work_pool_type="process")
    project, rendered = _render(load_project(hello_repo.path), "feature/refused", None, overrides)
    api = PlainAPI(hello_repo.api_url)
    move = planned_move(api, project, rendered, hello_repo.env)
    assert move is not None
    live = deployments(hello_repo.api_url, hello_repo.flow_name)
    gone = next(name for name in live if "/copy-1" in name)
    request(hello_repo.api_url, "DELETE", f"deployments/{live[gone]['id']}")
    with pytest.raises(DeployFailed, match=r"404.*the server was put back as it was"):
        write_pin_moves(api, move)
    assert pins(hello_repo) == {name: pin for name, pin in before.items() if name != gone}
