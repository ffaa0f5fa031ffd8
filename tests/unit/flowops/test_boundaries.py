"""Environment boundaries: what a branch deployment may use comes from the protected branch's files (the policy),
never from the branch's own; each environment has its own Secret blocks; and each branch its own data
environment, dropped by its cleanup before its deployments go. Against an in-memory server (tests/fake_server.py);
tests/e2e runs the same on a real server with real workers."""

from __future__ import annotations

import re

import pytest

from flowops.api.server import WorkPoolInfo
from flowops.config.project import load_project
from flowops.deploy import gitops, samples
from flowops.local import git
from flowops.render.branches import branch_slug, data_environment_name
from flowops.render.prefect_yaml import Overrides, render
from tests.fake_server import FakeServer
from tests.helpers import edit_yaml

CLEANUP = {
    "name": "drop-branch-data",
    "entrypoint": "flows/hello.py:hello",
    "parameters": {"count": 0},
    "work_pool": {"name": "hello-staging"},
}
BRANCH_ENVIRONMENTS = {
    "prefix": "branch_",
    "parameters": {"name": "{{ flowops.environment }}"},
    "cleanup": {"deployment": "drop-branch-data", "parameters": {"name": "{{ flowops.environment }}"}, "timeout": 5},
}


@pytest.fixture
def project_root(sample_project):
    """The sample project on `main`, with branch environments and staging's cleanup deployment."""
    edit_yaml(
        sample_project / "deployments" / "flowops.yaml", lambda c: c.update(branch_environments=BRANCH_ENVIRONMENTS)
    )
    edit_yaml(sample_project / "deployments" / "staging" / "prefect.yaml", lambda c: c["deployments"].append(CLEANUP))
    git(sample_project, "init", "--quiet")
    git(sample_project, "add", "--all")
    git(sample_project, "commit", "--quiet", "--message", "first")
    return sample_project


@pytest.fixture
def server():
    fake = FakeServer()
    fake.pools["hello-staging"] = WorkPoolInfo("process", fake.default_job_variables_schema("process"))
    fake.add_block("github-credentials", "hello-github")
    return fake


def on_branch(root, branch: str, change=None) -> str:
    """Commit `change(root)` on a new branch (checked out), as a pull request's head; its sha."""
    git(root, "checkout", "--quiet", "-b", branch)
    if change:
        change(root)
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "--allow-empty", "--message", f"work on {branch}")
    return git(root, "rev-parse", "HEAD")


def problems_of(root, branch: str, sha: str) -> list[str]:
    project = load_project(root).with_policy_from("main")
    return [str(p) for p in gitops.check_rendered(project, render(project, branch, sha, Overrides()))]


def test_a_branch_whose_staging_file_names_productions_pool_is_refused_before_anything_changes(project_root, server):
    def to_production(root):
        edit_yaml(
            root / "deployments" / "staging" / "prefect.yaml",
            lambda c: c["deployments"][0]["work_pool"].update(name="hello-production"),
        )

    sha = on_branch(project_root, "feature/prod-pool", to_production)
    project = load_project(project_root).with_policy_from("main")
    rendered = render(project, "feature/prod-pool", sha, Overrides())
    with pytest.raises(gitops.ValidationFailed) as failure:
        gitops.deploy(server, project, rendered)
    (problem,) = [str(p) for p in failure.value.problems]
    assert problem.startswith(
        f"deployments/staging/prefect.yaml (rendered for 'feature/prod-pool'): staging-{branch_slug('feature/prod-pool')}:"
    )
    assert "work_pool.name: 'hello-production' is not a work pool of environment 'staging' ('hello-staging'" in problem
    assert server.deployments == {}
    assert server.calls["ensure_work_pool"] == 0


def test_a_branch_that_moves_branch_deployments_to_production_still_deploys_as_staging_and_is_refused(project_root):
    def from_production(root):
        edit_yaml(root / "deployments" / "flowops.yaml", lambda c: c.update(branch_deployments_from="production"))

    sha = on_branch(project_root, "feature/escalate", from_production)
    project = load_project(project_root).with_policy_from("main")
    assert project.target("feature/escalate").environment == "staging"  # the policy's, not the branch's
    (problem,) = problems_of(project_root, "feature/escalate", sha)
    assert problem.startswith("deployments/flowops.yaml: branch_deployments_from: differs from the protected branch's")


def test_a_branch_that_declares_itself_an_environment_stays_a_branch_deployment(project_root):
    def own_environment(root):
        edit_yaml(
            root / "deployments" / "flowops.yaml",
            lambda c: c["environments"].update(mine={"branch": "feature/mine", "file": "main/prefect.yaml"}),
        )

    sha = on_branch(project_root, "feature/mine", own_environment)
    project = load_project(project_root).with_policy_from("main")
    target = project.target("feature/mine")
    assert (target.environment, target.is_branch_deployment) == ("staging", True)
    assert "feature/mine" not in project.protected_branches()
    (problem,) = problems_of(project_root, "feature/mine", sha)
    assert problem.startswith("deployments/flowops.yaml: environments: differs from the protected branch's")


def test_a_branch_deployment_may_name_only_its_environments_blocks(project_root):
    def productions_block(root):  # a token that production's secrets hold, for the branch's clone
        edit_yaml(
            root / "deployments" / "staging" / "prefect.yaml",
            lambda c: c["pull"][0]["prefect.deployments.steps.git_clone"].update(
                credentials="{{ prefect.blocks.github-credentials.hello-production-db }}"
            ),
        )

    sha = on_branch(project_root, "feature/prod-db", productions_block)
    project = load_project(project_root).with_policy_from("main")
    rendered = render(project, "feature/prod-db", sha, Overrides(repository="https://github.com/example/hello.git"))
    problems = [str(p) for p in gitops.check_rendered(project, rendered)]
    assert len(problems) == 2  # both deployments clone with the file's pull step
    for problem in problems:
        assert "blocks: block 'hello-production-db' is not a block of environment 'staging'" in problem
        assert "it belongs to environment 'production'" in problem


def test_the_protected_branchs_own_pool_and_blocks_deploy_and_the_policy_ignores_a_branchs_new_secrets(project_root):
    sha = on_branch(project_root, "feature/ok")
    assert problems_of(project_root, "feature/ok", sha) == []


def test_branch_environment_names_are_postgres_identifiers_and_never_shared():
    branches = ["feature/foo", "feature-foo", "feature_foo", "Feature/Foo", "x" * 250, "fix/ünïcode", "a" * 41]
    names = [data_environment_name("branch_", branch) for branch in branches]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
        assert len(name.encode()) <= 63
    assert data_environment_name("branch_", "feature-foo") == "branch_feature_foo"
    longest = data_environment_name("p" * 23, "y" * 300)
    assert len(longest) == 63


def test_a_branch_deployment_gets_its_data_environment_and_production_keeps_exactly_its_parameters(project_root):
    project = load_project(project_root).with_policy_from("main")
    sha = git(project_root, "rev-parse", "HEAD")
    branch = render(project, "feature/data", sha, Overrides())
    environment = data_environment_name("branch_", "feature/data")
    load, cleanup = branch.content["deployments"]
    assert load["parameters"] == {"name": environment}
    assert cleanup["parameters"] == {"count": 0}  # the cleanup is given its parameters when it runs
    assert load["work_pool"]["job_variables"]["env"] == {
        "FLOWOPS_PROJECT": "acme/hello",
        "FLOWOPS_BRANCH": "feature/data",
        "FLOWOPS_ENVIRONMENT": "staging",
        "FLOWOPS_BRANCH_DEPLOYMENT": "true",
        "FLOWOPS_DATA_ENVIRONMENT": environment,
    }
    assert branch.data_environment == environment
    assert f"# Its data environment: {environment}" in branch.as_yaml()
    for protected in ("main", "staging"):
        rendered = render(project, protected, sha, Overrides())
        committed = project.target(protected).file.deployments()
        assert [d["parameters"] for d in rendered.content["deployments"]] == [d["parameters"] for d in committed]
        assert rendered.data_environment is None


def test_validate_reports_a_cleanup_that_names_no_deployment_and_a_placeholder_flowops_does_not_fill(project_root):
    from flowops.checks.validate import validate_project

    def broken(config):
        config["branch_environments"]["cleanup"]["deployment"] = "nowhere"
        config["branch_environments"]["parameters"]["name"] = "{{ flowops.pull_request }}"

    edit_yaml(project_root / "deployments" / "flowops.yaml", broken)
    problems = [str(p) for p in validate_project(load_project(project_root))]
    assert (
        "deployments/flowops.yaml: branch_environments.parameters.name: {{ flowops.pull_request }}: only"
        " {{ flowops.environment }}, {{ flowops.branch }}, {{ flowops.slug }}, {{ flowops.commit }} are filled in here"
    ) in problems
    assert (
        "deployments/flowops.yaml: branch_environments.cleanup.deployment: 'nowhere' is not a deployment of"
        " deployments/staging/prefect.yaml (the branch deployments' file)"
    ) in problems


def test_a_parameter_the_flow_does_not_take_is_reported_for_the_branch_deployment(project_root):
    edit_yaml(
        project_root / "deployments" / "flowops.yaml",
        lambda c: c["branch_environments"]["parameters"].update(schema="{{ flowops.environment }}"),
    )
    git(project_root, "commit", "--quiet", "--all", "--message", "a parameter hello lacks")
    problems = problems_of(project_root, "feature/x", git(project_root, "rev-parse", "HEAD"))
    assert any("parameters.schema: not a parameter of flow 'hello'" in problem for problem in problems), problems


def branch_deployments(server: FakeServer, branch: str) -> list[str]:
    slug = branch_slug(branch)
    tags = ["flowops", "project:acme/hello", f"branch:{slug}", "env:staging"]
    for name in (f"staging-{slug}", f"drop-branch-data-{slug}"):
        server.add_deployment("hello", name, tags=tags)
    return [f"hello/staging-{slug}", f"hello/drop-branch-data-{slug}"]


def test_teardown_drops_the_data_then_deletes_the_deployments(project_root, server):
    staging, cleanup = branch_deployments(server, "feature/done")
    server.run_outcomes[cleanup] = ("COMPLETED", "")
    result = gitops.teardown(server, load_project(project_root), "feature/done")
    environment = data_environment_name("branch_", "feature/done")
    assert server.runs == [(cleanup, {"name": environment})]
    assert [(c.environment, c.dropped) for c in result.cleanups] == [(environment, True)]
    assert sorted(d.full_name for d in result.deleted) == sorted([staging, cleanup])
    assert server.deployments == {}


def test_the_branchs_runs_that_have_not_ended_are_stopped_before_its_data_is_dropped(project_root, server, monkeypatch):
    staging, cleanup = branch_deployments(server, "feature/busy")
    server.run_outcomes[cleanup] = ("COMPLETED", "")
    by_name = server.by_name()
    running = server.add_run(by_name[staging], "RUNNING")
    stuck = server.add_run(by_name[staging], "RUNNING")
    server.add_run(server.add_deployment("hello", "staging-other", tags=["flowops"]), "RUNNING")  # not this branch's
    server.unstoppable.add(stuck.flow_run_id)  # its worker is gone: it stays Cancelling
    monkeypatch.setattr(gitops, "RUNS_STOP_SECONDS", 0.2)
    project = load_project(project_root)

    held = gitops.teardown(server, project, "feature/busy")
    assert not held.complete
    assert held.cancelled == [f"run {run.flow_run_name} of {staging} (Running)" for run in (running, stuck)]
    problem = (
        "1 run(s) of the branch had not stopped 0.2 s after being cancelled, so nothing of it was dropped or deleted"
        f" (they would write into a dropped environment): run {stuck.flow_run_name} of {staging} (Cancelling); tear it"
        " down again once they have ended (gc does, once the branch is gone)"
    )
    assert held.problems == [problem]
    assert (server.runs, held.deleted, held.cleanups) == ([], [], [])  # the cleanup never ran
    assert sorted(server.by_name()) == sorted([staging, cleanup, "hello/staging-other"])

    server.unstoppable.clear()
    server.unfinished[stuck.flow_run_id] = stuck  # its worker came back, and it goes on
    done = gitops.teardown(server, project, "feature/busy")
    assert done.complete
    assert done.cancelled == [f"run {stuck.flow_run_name} of {staging} (Running)"]
    assert server.cancelled == [running.flow_run_id, stuck.flow_run_id, stuck.flow_run_id]
    assert len(server.runs) == 1
    assert sorted(server.by_name()) == ["hello/staging-other"]


def test_a_pull_requests_reset_stops_the_branchs_runs_before_it_empties_its_environment(
    project_root, server, monkeypatch
):
    """A run of the last push's code, still going, would write on into the emptied environment beside the
    samples: the reset cancels it first, and does not empty anything while it has not stopped."""
    staging, cleanup = branch_deployments(server, "feature/x")
    server.run_outcomes[cleanup] = ("COMPLETED", "")
    stuck = server.add_run(server.by_name()[staging], "RUNNING")
    server.unstoppable.add(stuck.flow_run_id)
    monkeypatch.setattr(gitops, "RUNS_STOP_SECONDS", 0.2)
    project = load_project(project_root)
    rendered = render(project, "feature/x", git(project_root, "rev-parse", "HEAD"), Overrides())

    held = samples._reset(server, project, rendered)
    assert held is not None
    assert not held.dropped
    assert held.message == (
        "not run: the branch's runs had not stopped 0.2 s after being cancelled:"
        f" run {stuck.flow_run_name} of {staging} (Cancelling)"
    )
    assert server.runs == []  # nothing emptied while it may still write

    server.unstoppable.clear()
    server.unfinished[stuck.flow_run_id] = stuck
    reset = samples._reset(server, project, rendered)
    assert reset is not None
    assert reset.dropped
    assert reset.message == f"run run-1 Completed; first cancelled run {stuck.flow_run_name} of {staging} (Running)"
    assert server.runs == [(cleanup, {"name": data_environment_name("branch_", "feature/x")})]


def test_a_cleanup_that_fails_or_hangs_is_reported_keeps_its_deployment_and_gc_retries_it(
    project_root, server, tmp_path
):
    _, cleanup = branch_deployments(server, "feature/stuck")
    project = load_project(project_root)
    server.failing.add("cancel_run")
    result = gitops.teardown(server, project, "feature/stuck")  # no worker: the run stays Scheduled
    assert not result.complete
    assert "did not end within 5 s (still Scheduled); cancelling it failed: cancel_run: cannot reach" in (
        result.cleanups[0].message
    )
    assert sorted(server.by_name()) == [cleanup]  # kept: it is how gc finds the data again
    server.failing.clear()
    again = gitops.teardown(server, project, "feature/stuck")
    assert "did not end within 5 s (still Scheduled); cancelled" in again.cleanups[0].message
    assert len(server.cancelled) == 1

    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", str(origin))
    for branch in ("main", "staging"):
        git(project_root, "push", "--quiet", str(origin), f"HEAD:refs/heads/{branch}")
    server.run_outcomes[cleanup] = ("FAILED", "permission denied for schema")
    failed = gitops.collect_garbage(server, project, str(origin))
    assert "ended Failed: permission denied for schema" in failed.cleanups[0].message
    assert sorted(server.by_name()) == [cleanup]
    late = server.add_run(server.by_name()[cleanup], "PENDING")  # a worker picks up a retry started by hand
    dry = gitops.collect_garbage(server, project, str(origin), dry_run=True)
    assert dry.would_drop == [data_environment_name("branch_", "feature/stuck")]
    assert dry.cancelled == [f"run {late.flow_run_name} of {cleanup} (Pending)"]
    assert late.flow_run_id not in server.cancelled  # a dry run changes nothing
    server.run_outcomes[cleanup] = ("COMPLETED", "")
    done = gitops.collect_garbage(server, project, str(origin))
    assert done.complete
    assert done.cancelled == dry.cancelled
    assert [c.dropped for c in done.cleanups] == [True]
    assert server.deployments == {}
    assert len(server.runs) == 4


def test_a_cleanup_is_never_run_against_what_a_protected_environment_loads_into(project_root, server):
    # staging's own deployment loads into what this branch's environment would be named: refuse to drop it
    environment = data_environment_name("branch_", "feature/evil")
    edit_yaml(
        project_root / "deployments" / "staging" / "prefect.yaml",
        lambda c: c["deployments"][0]["parameters"].update(name=environment),
    )
    git(project_root, "commit", "--quiet", "--all", "--message", "staging loads into a branch-like name")
    _, cleanup = branch_deployments(server, "feature/evil")
    server.run_outcomes[cleanup] = ("COMPLETED", "")
    result = gitops.teardown(server, load_project(project_root).with_policy_from("main"), "feature/evil")
    assert f"{environment!r} is what environment 'staging' loads into" in result.cleanups[0].message
    assert server.runs == []
    assert sorted(server.by_name()) == [cleanup]


def test_bootstrap_saves_only_the_named_environments_blocks_and_refuses_a_missing_variable(project_root, server):
    project = load_project(project_root)
    with pytest.raises(gitops.MissingSecrets, match=r"\$ECOMMERCE_DATABASE_URL \(block 'hello-staging-db'\) not set"):
        gitops.bootstrap(server, project, None, {}, "hello-github", {}, "staging")
    assert ("secret", "hello-staging-db") not in server.blocks
    assert server.calls["ensure_work_pool"] == 0  # nothing was changed
    lines = gitops.bootstrap(server, project, None, {}, "hello-github", {}, "staging", allow_missing=True)
    assert "block 'hello-staging-db': skipped ($ECOMMERCE_DATABASE_URL is not set; --allow-missing)" in lines
    environ = {"ECOMMERCE_DATABASE_URL": "postgresql://staging-db/app"}
    lines = gitops.bootstrap(server, project, None, {}, "hello-github", environ, "staging")
    assert "block 'hello-staging-db': created from $ECOMMERCE_DATABASE_URL (environment staging)" in lines
    assert ("secret", "hello-production-db") not in server.blocks
    owner = server.variables[gitops.block_owner_variable("hello-staging-db")][0]
    assert owner == {"project": "acme/hello", "environment": "staging", "block": "hello-staging-db"}
    lines = gitops.bootstrap(server, project, None, {}, "hello-github", environ, None)
    assert not any("hello-staging-db" in line for line in lines)  # no environment: no Secret block


def test_bootstrap_refuses_a_block_another_environment_or_project_owns(project_root, server):
    server.create_variable(
        gitops.block_owner_variable("hello-production-db"),
        {"project": "acme/hello", "environment": "staging", "block": "hello-production-db"},
        [],
    )
    with pytest.raises(gitops.Refused, match="'hello-production-db' belongs to environment 'staging' of project"):
        gitops.bootstrap(
            server, load_project(project_root), None, {}, "g", {"ECOMMERCE_DATABASE_URL": "x"}, "production"
        )
    assert ("secret", "hello-production-db") not in server.blocks
    with pytest.raises(gitops.Refused, match="--environment 'nowhere': not an environment"):
        gitops.bootstrap(server, load_project(project_root), None, {}, "g", {}, "nowhere")


def test_deploy_refuses_a_deployment_whose_block_parameter_names_a_block_the_server_lacks(project_root, server):
    from flowops.checks.server_checks import check_against_server

    edit_yaml(
        project_root / "deployments" / "staging" / "prefect.yaml",
        lambda c: c["deployments"][0]["parameters"].update(database_secret_block="hello-staging-db"),
    )
    git(project_root, "commit", "--quiet", "--all", "--message", "the staging database")
    project = load_project(project_root)
    rendered = render(project, "staging", git(project_root, "rev-parse", "HEAD"), Overrides())
    problems = [str(p) for p in check_against_server(server, project, rendered)[0]]
    assert problems == [
        (
            "deployments/staging/prefect.yaml (rendered for 'staging'): staging: parameters.database_secret_block:"
            " block 'hello-staging-db' does not exist on the server, so every run would fail; run `flowops"
            " bootstrap --environment staging` with $ECOMMERCE_DATABASE_URL set"
        )
    ]
    server.add_block("secret", "hello-staging-db")
    assert check_against_server(server, project, rendered)[0] == []


def test_gc_collects_a_gone_branchs_deployments_whatever_environment_their_tag_names(project_root, server, tmp_path):
    """A branch deployment that once got itself tagged env:production (a pull request that moved
    branch_deployments_from) is still the project's branch deployment: gc deletes it once its branch is gone."""
    tags = ["flowops", "project:acme/hello", f"branch:{branch_slug('feature/escalated')}", "env:production"]
    server.add_deployment("hello", f"production-{branch_slug('feature/escalated')}", tags=tags)
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--quiet", "--bare", str(origin))
    for branch in ("main", "staging"):
        git(project_root, "push", "--quiet", str(origin), f"HEAD:refs/heads/{branch}")
    result = gitops.collect_garbage(server, load_project(project_root), str(origin))
    assert [d.name for d in result.deleted] == [f"production-{branch_slug('feature/escalated')}"]
    assert server.deployments == {}


def with_samples(root, samples: dict) -> None:
    edit_yaml(root / "deployments" / "flowops.yaml", lambda c: c["branch_environments"].update(sample_runs=samples))


def test_validate_reports_a_sample_run_that_names_no_deployment_the_cleanup_or_parameters_the_flow_lacks(project_root):
    from flowops.checks.validate import validate_project

    samples = {
        "deployments": {
            "nowhere": {"count": 1},
            "drop-branch-data": {"count": 1},
            "staging": {"rows": 10, "count": "many", "name": "{{ flowops.pull_request }}"},
        }
    }
    with_samples(project_root, samples)
    problems = [str(p) for p in validate_project(load_project(project_root))]
    where = "deployments/flowops.yaml: branch_environments.sample_runs.deployments"
    filled = "{{ flowops.environment }}, {{ flowops.branch }}, {{ flowops.slug }}, {{ flowops.commit }}"
    branch_file = "deployments/staging/prefect.yaml (the branch deployments' file)"
    assert sorted(p for p in problems if p.startswith(where)) == sorted([
        f"{where}.nowhere: 'nowhere' is not a deployment of {branch_file}",
        f"{where}.drop-branch-data: 'drop-branch-data' is the cleanup: it drops data, it is no sample",
        f"{where}.staging.rows: not a parameter of flow 'hello' (it has: name, count)",
        f"{where}.staging.count: 'many' is not of type 'integer'",
        f"{where}.staging.name: {{{{ flowops.pull_request }}}}: only {filled} are filled in here",
    ])  # fmt: skip


def test_a_sample_run_that_resets_without_a_cleanup_is_one_clear_error(project_root):
    from flowops.config.project import ProjectError

    edit_yaml(
        project_root / "deployments" / "flowops.yaml",
        lambda c: c["branch_environments"].update(cleanup=None, sample_runs={"deployments": {"staging": {}}}),
    )
    with pytest.raises(ProjectError, match=r"sample_runs\.reset: resetting a branch environment runs its cleanup"):
        load_project(project_root)


def test_only_the_plans_created_and_updated_deployments_that_declare_a_sample_run_it(project_root):
    from flowops.deploy.plan import CREATE, UNCHANGED, UPDATE, Change, Plan
    from flowops.deploy.samples import planned_sample_runs

    with_samples(project_root, {"deployments": {"staging": {"count": 3, "name": "{{ flowops.environment }}"}}})
    git(project_root, "commit", "--quiet", "--all", "--message", "sample runs")
    sha = on_branch(project_root, "feature/sample")
    project = load_project(project_root).with_policy_from("main")
    rendered = render(project, "feature/sample", sha, Overrides())
    slug = branch_slug("feature/sample")
    staging, cleanup = f"hello/staging-{slug}", f"hello/drop-branch-data-{slug}"
    environment = data_environment_name("branch_", "feature/sample")
    for action in (CREATE, UPDATE):
        plan = Plan("feature/sample", slug, [Change(action, staging), Change(action, cleanup)])
        planned, not_sampled = planned_sample_runs(project, rendered, plan)
        assert [(p.deployment, p.baseline_deployment, p.parameters) for p in planned] == [
            (staging, "hello/staging", {"count": 3, "name": environment})
        ]  # the cleanup drops data: never a sample
        assert not_sampled == []
    unchanged = Plan("feature/sample", slug, [Change(UNCHANGED, staging), Change(UPDATE, cleanup)])
    assert planned_sample_runs(project, rendered, unchanged) == ([], [])
    with_samples(project_root, {"deployments": {"staging": {"count": 3}}})
    main = render(load_project(project_root).with_policy_from("main"), "main", sha, Overrides())
    assert planned_sample_runs(project, main, Plan("main", "main", [Change(CREATE, "hello/production")])) == ([], [])
