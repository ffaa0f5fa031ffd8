"""The operations against an in-memory server (tests/fake_server.py): server checks, the deploy that only moves
deployments to a commit and its undo, teardown, gc and the environment lock. tests/e2e runs them on real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowops.api.server import REGISTRY_CREDENTIALS_BLOCK_TYPE, LiveDeployment, PrefectAPIError, WorkPoolInfo
from flowops.checks.server_checks import check_against_server, registry_reference
from flowops.config.project import load_project
from flowops.deploy import gitops
from flowops.deploy.lock import LockBusy, environment_lock, lock_name
from flowops.deploy.plan import desired_fields
from flowops.deploy.unchanged import record_name
from flowops.local import git
from flowops.render.branches import branch_slug
from flowops.render.prefect_yaml import Overrides, render
from tests.fake_server import FakeServer
from tests.helpers import edit_yaml

IMAGE = "registry.example/acme/hello:1"


@pytest.fixture
def project_root(sample_project):
    git(sample_project, "init", "--quiet")
    git(sample_project, "add", "--all")
    git(sample_project, "commit", "--quiet", "--message", "first")
    return sample_project


def commit(root: Path, message: str) -> str:
    (root / "NOTES.md").write_text(message)
    git(root, "add", "NOTES.md")
    git(root, "commit", "--quiet", "--message", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def server():
    fake = FakeServer()
    fake.pools["hello-production"] = WorkPoolInfo("docker", fake.default_job_variables_schema("docker"))
    fake.add_block("github-credentials", "hello-github")
    return fake


def rendered_main(root: Path, **overrides):
    project = load_project(root)
    return project, render(project, "main", git(root, "rev-parse", "HEAD"), Overrides(image=IMAGE, **overrides))


def deploy_as_prefect_would(server: FakeServer, root: Path) -> dict[str, LiveDeployment]:
    """Put on the fake server what `prefect deploy` would store for the main file at HEAD."""
    project, rendered = rendered_main(root)
    for desired in gitops.desired_deployments(project, rendered):
        fields = desired_fields(desired)
        fields.pop("schedules")
        live = server.add_deployment(desired.flow.flow_name, desired.spec["name"], **fields)
        server.deployments[live.id] = LiveDeployment(
            live.id,
            live.flow_name,
            live.name,
            live.fields,
            [{"schedule": {"cron": "0 2 * * *", "timezone": "UTC"}, "active": True}],
        )
    return server.by_name()


def problems_of(server: FakeServer, project, rendered) -> list[str]:
    problems, _ = check_against_server(server, project, rendered)
    return [str(problem) for problem in problems]


def test_a_pool_neither_on_the_server_nor_declared_is_a_problem_naming_the_bootstrap_command(project_root, server):
    project, rendered = rendered_main(project_root, work_pool="elsewhere")
    (problem,) = problems_of(server, project, rendered)
    assert "production: work_pool.name: work pool 'elsewhere' does not exist" in problem
    assert "flowops bootstrap --work-pool elsewhere --type TYPE" in problem


def test_a_docker_pool_without_an_image_and_a_job_variable_the_pool_refuses_are_both_named(project_root, server):
    edit_yaml(
        project_root / "deployments/main/prefect.yaml",
        lambda content: content["deployments"][0]["work_pool"]["job_variables"].update(image_pull_policy="Sometimes"),
    )
    project = load_project(project_root)
    rendered = render(project, "main", "0" * 40, Overrides())  # flowops.yaml has no image: none is filled in
    problems = problems_of(server, project, rendered)
    assert len(problems) == 2
    assert "work_pool.job_variables.image: 'hello-production' is a docker pool: pass --image" in problems[0]
    assert (
        "work_pool.job_variables.image_pull_policy: 'Sometimes' is not valid under any of the given schemas"
        in problems[1]
    )


def test_a_missing_clone_credentials_block_is_a_problem_and_a_present_one_is_not(project_root, server):
    project, rendered = rendered_main(project_root)
    assert problems_of(server, project, rendered) == []
    server.blocks.clear()
    (problem,) = problems_of(server, project, rendered)
    assert "pull.git_clone.credentials: GitHubCredentials block 'hello-github' does not exist" in problem


def with_registry_block(root: Path, name: str = "acme-registry") -> None:
    config = root / "deployments/flowops.yaml"
    config.write_text(
        config.read_text() + f"image: {{name: registry.example/acme/hello, registry_credentials: {name}}}\n"
    )


def test_a_private_image_needs_its_registry_block_and_then_logs_the_docker_pool_in_with_it(project_root, server):
    with_registry_block(project_root)
    project, rendered = rendered_main(project_root)
    (problem,) = problems_of(server, project, rendered)
    assert problem.startswith("deployments/flowops.yaml: image.registry_credentials: DockerRegistryCredentials")
    block_id = server.add_block(REGISTRY_CREDENTIALS_BLOCK_TYPE, "acme-registry")
    problems, facts = check_against_server(server, project, rendered)
    assert problems == []
    assert facts.pools_to_log_in == ["hello-production"]
    assert facts.registry_reference == registry_reference(block_id)


def test_a_docker_pool_that_logs_in_with_another_projects_block_is_not_taken_over(project_root, server):
    with_registry_block(project_root)
    server.add_block(REGISTRY_CREDENTIALS_BLOCK_TYPE, "acme-registry")
    theirs = server.add_block(REGISTRY_CREDENTIALS_BLOCK_TYPE, "their-registry")
    server.set_pool_default("hello-production", "registry_credentials", registry_reference(theirs))
    project, rendered = rendered_main(project_root)
    (problem,) = problems_of(server, project, rendered)
    assert "work pool 'hello-production' logs in to registries with block 'their-registry', not 'acme-registry'" in (
        problem
    )


def test_each_pool_and_block_is_read_once_however_many_deployments_use_them(project_root, server):
    def ten_deployments(content):
        content["deployments"] = [{**content["deployments"][0], "name": f"d{i}"} for i in range(10)]

    edit_yaml(project_root / "deployments/main/prefect.yaml", ten_deployments)
    project, rendered = rendered_main(project_root)
    assert problems_of(server, project, rendered) == []
    assert server.calls["read_work_pool"] == 1
    assert server.calls["block_document_id"] == 1


def test_a_new_commit_moves_deployments_through_the_api_and_leaves_their_schedules(project_root, server):
    before = deploy_as_prefect_would(server, project_root)["hello/production"]
    sha = commit(project_root, "a change outside the deployment")
    project, rendered = rendered_main(project_root)
    result = gitops.deploy(server, project, rendered)
    assert (result.deployed, result.moved) == (True, 1)
    after = server.by_name()["hello/production"]
    assert after.fields["pull_steps"][0]["prefect.deployments.steps.git_clone"]["commit_sha"] == sha
    assert f"commit:{sha[:8]}" in after.tags
    assert after.schedules == before.schedules
    assert server.leases == {}  # the lock was released


def test_a_move_that_fails_half_way_is_undone_and_the_lock_released(project_root, server):
    before = deploy_as_prefect_would(server, project_root)
    commit(project_root, "a change outside the deployment")
    project, rendered = rendered_main(project_root)

    def write_then_fail(updates):  # the server applied the write, the answer never came
        FakeServer.move_to_commit(server, updates)
        raise PrefectAPIError("moving deployments to the commit: cannot reach the Prefect API")

    server.move_to_commit = write_then_fail
    with pytest.raises(gitops.DeployFailed, match="cannot reach the Prefect API; the server was put back as it was"):
        gitops.deploy(server, project, rendered)
    assert server.by_name() == before
    assert server.leases == {}


def test_the_undo_leaves_alone_what_this_deploy_did_not_write(project_root, server):
    """A deployment someone else changed meanwhile (no commit tag of ours) is not rolled back."""
    before = deploy_as_prefect_would(server, project_root)
    commit(project_root, "a change outside the deployment")
    project, rendered = rendered_main(project_root)
    live = before["hello/production"]
    theirs = LiveDeployment(live.id, live.flow_name, live.name, {**live.fields, "paused": True}, live.schedules)

    def someone_else_writes_then_we_fail(updates):
        server.deployments[live.id] = theirs
        raise PrefectAPIError("moving deployments to the commit: 503")

    server.move_to_commit = someone_else_writes_then_we_fail
    with pytest.raises(gitops.DeployFailed):
        gitops.deploy(server, project, rendered)
    assert server.by_name()["hello/production"] == theirs
    assert server.calls["restore_deployment"] == 0


def branch_deployment(server: FakeServer, name: str, branch: str, project: str = "acme/hello") -> LiveDeployment:
    tags = ["flowops", f"project:{project}", f"branch:{branch_slug(branch)}", "env:staging"]
    return server.add_deployment("hello", name, tags=tags)


def test_teardown_deletes_the_branchs_deployments_only_and_refuses_a_protected_branch(project_root, server):
    branch_deployment(server, "staging-feature-a", "feature/a")
    kept = [branch_deployment(server, "staging-feature-b", "feature/b")]
    kept.append(branch_deployment(server, "theirs-feature-a", "feature/a", project="other/thing"))
    project = load_project(project_root)
    records = {branch: record_name("acme/hello", branch_slug(branch)) for branch in ("feature/a", "feature/b")}
    for name in records.values():
        server.create_variable(name, {"rendered": "r", "live": "l"}, ["flowops"])
    deleted = gitops.teardown(server, project, "feature/a").deleted
    assert [d.full_name for d in deleted] == ["hello/staging-feature-a"]
    assert sorted(server.by_name()) == sorted(d.full_name for d in kept)
    assert set(server.variables) == {records["feature/b"]}  # the last deploy's record went with the branch
    with pytest.raises(gitops.Refused, match="'main' is a protected branch"):
        gitops.teardown(server, project, "main")


def test_gc_deletes_deployments_of_branches_the_origin_lost_and_nothing_when_it_lacks_a_protected_one(
    project_root, server, tmp_path
):
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", str(origin))
    for branch in ("main", "staging", "feature/kept"):
        git(project_root, "push", "--quiet", str(origin), f"HEAD:refs/heads/{branch}")
    branch_deployment(server, "staging-feature-gone", "feature/gone")
    branch_deployment(server, "staging-feature-kept", "feature/kept")
    project = load_project(project_root)
    orphans = gitops.collect_garbage(server, project, str(origin), dry_run=True).deleted
    assert [d.full_name for d in orphans] == ["hello/staging-feature-gone"]
    assert len(server.deployments) == 2  # a dry run
    git(project_root, "push", "--quiet", str(origin), "--delete", "staging")
    with pytest.raises(gitops.Refused, match="has no branch 'staging', which deploys an environment"):
        gitops.collect_garbage(server, project, str(origin))
    assert len(server.deployments) == 2
    git(project_root, "push", "--quiet", str(origin), "HEAD:refs/heads/staging")
    gitops.collect_garbage(server, project, str(origin))
    assert sorted(server.by_name()) == ["hello/staging-feature-kept"]


def test_a_lock_release_that_fails_is_a_warning_and_the_lease_stays_until_it_expires(server):
    said: list[str] = []
    with environment_lock(server, "acme/hello", "staging", "a deploy", on_wait=said.append):
        server.failing.add("drop_lease")
    assert said == [
        (
            "warning: drop_lease: cannot reach the Prefect API at 'http://fake/api': refused; the lock is free again"
            " when its lease expires (120 s)"
        )
    ]
    assert lock_name("acme/hello", "staging") in server.leases


def test_a_held_lock_makes_the_next_caller_wait_and_give_up_naming_the_holder(server, monkeypatch):
    monkeypatch.setenv("FLOWOPS_LOCK_WAIT", "0")
    with environment_lock(server, "acme/hello", "staging", "the first deploy", on_wait=print):  # noqa: SIM117
        with pytest.raises(LockBusy, match=r"is held by .*the first deploy.*gave up waiting"):
            with environment_lock(server, "acme/hello", "staging", "the second deploy", on_wait=print):
                pass
    assert server.leases == {}


def test_an_expired_lease_is_taken_over_saying_whose_it_was(server, monkeypatch):
    from dataclasses import replace

    monkeypatch.setenv("FLOWOPS_LOCK_LEASE", "5")
    name = lock_name("acme/hello", "staging")
    stale = server.take_lease(name, "a killed job", 5)
    server.leases[name] = replace(stale, renewed=stale.renewed - 60)
    said: list[str] = []
    with environment_lock(server, "acme/hello", "staging", "a deploy", on_wait=said.append) as lease:
        assert lease.id != stale.id
    assert said == [f"lock {name}: the lease of a killed job expired; taking it over"]
