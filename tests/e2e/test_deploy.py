"""Deploy, plan, prune, teardown against a real Prefect server: what ends up on the server, and what does not."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from flowops.local import git
from flowops.render.branches import branch_slug
from tests.helpers import api, deployments, edit_yaml

STAGING_FILE = Path("deployments/staging/prefect.yaml")
MAIN_FILE = Path("deployments/main/prefect.yaml")


def pool_args() -> list[str]:
    return ["--work-pool", f"e2e-{uuid.uuid4().hex[:8]}", "--work-pool-type", "process"]


def server_state(repo) -> dict:
    """Every deployment of the repo's flow, with the fields that would show any change (timestamps included)."""
    return {
        name: {
            **{key: d[key] for key in ("id", "updated", "tags", "parameters", "pull_steps", "work_pool_name")},
            "schedules": [(s["schedule"], s["active"]) for s in d["schedules"]],
        }
        for name, d in deployments(repo.api_url, repo.flow_name).items()
    }


def test_main_keeps_its_name_and_a_feature_branch_gets_its_own_deployment_each_pinned_to_its_commit(hello_repo):
    pools = pool_args()
    hello_repo.deploy("main", *pools)
    hello_repo.deploy("feature/Foo_Bar", *pools)
    head = git(hello_repo.path, "rev-parse", "HEAD")
    slug = branch_slug("feature/Foo_Bar")
    live = deployments(hello_repo.api_url, hello_repo.flow_name)
    assert sorted(live) == [f"{hello_repo.flow_name}/production", f"{hello_repo.flow_name}/staging-{slug}"]
    production = live[f"{hello_repo.flow_name}/production"]
    branch = live[f"{hello_repo.flow_name}/staging-{slug}"]
    assert {"flowops", "project:acme/hello", "branch:main", "env:production"} <= set(production["tags"])
    assert production["pull_steps"][0]["prefect.deployments.steps.git_clone"]["commit_sha"] == head
    assert "branch" not in production["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    assert [s["active"] for s in production["schedules"]] == [True]
    assert {"flowops", "project:acme/hello", f"branch:{slug}", "env:staging"} <= set(branch["tags"])
    clone = branch["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    assert "branch" not in clone
    assert clone["commit_sha"] == head
    assert [s["active"] for s in branch["schedules"]] == [False]


def test_deploying_the_same_commit_twice_changes_nothing(hello_repo):
    pools = pool_args()
    first = hello_repo.deploy("staging", *pools)
    assert "+ create" in first.stdout
    before = server_state(hello_repo)
    second = hello_repo.deploy("staging", *pools)
    assert "nothing to deploy: the server already matches this commit" in second.stdout
    assert server_state(hello_repo) == before


def test_plan_shows_what_deploy_will_change_and_a_deployment_removed_from_the_file_is_pruned(hello_repo):
    pools = pool_args()

    def add_backfill(content):
        extra = json.loads(json.dumps(content["deployments"][0]))
        extra["name"] = "backfill"
        content["deployments"].append(extra)

    edit_yaml(hello_repo.path / STAGING_FILE, add_backfill)
    hello_repo.commit("a backfill deployment")
    hello_repo.deploy("feature/prune", *pools)
    hello_repo.deploy("feature/other", *pools)
    slug = branch_slug("feature/prune")
    assert {f"staging-{slug}", f"backfill-{slug}"} <= {
        name.split("/")[1] for name in deployments(hello_repo.api_url, hello_repo.flow_name)
    }

    edit_yaml(hello_repo.path / STAGING_FILE, lambda content: content["deployments"].pop())
    hello_repo.commit("no more backfill")
    plan = json.loads(
        hello_repo.flowops(
            "plan", "--branch", "feature/prune", "--repository", hello_repo.origin_url, *pools, "--json"
        ).stdout
    )
    actions = {change["deployment"]: change["action"] for change in plan["changes"]}
    assert actions == {
        f"{hello_repo.flow_name}/staging-{slug}": "update",
        f"{hello_repo.flow_name}/backfill-{slug}": "delete",
    }
    before_other = {n: d for n, d in server_state(hello_repo).items() if "other" in n}

    hello_repo.deploy("feature/prune", *pools)
    names = set(deployments(hello_repo.api_url, hello_repo.flow_name))
    assert f"{hello_repo.flow_name}/backfill-{slug}" not in names
    assert f"{hello_repo.flow_name}/staging-{slug}" in names
    assert {n: d for n, d in server_state(hello_repo).items() if "other" in n} == before_other
    assert len(before_other) == 2  # the other branch still has both of its deployments


def test_an_invalid_file_makes_deploy_fail_and_leaves_the_server_exactly_as_it_was(hello_repo):
    pools = pool_args()
    hello_repo.deploy("staging", *pools)
    before = server_state(hello_repo)

    def break_it(content):
        content["deployments"][0]["parameters"]["count"] = "two"
        content["deployments"][0]["schedules"][0]["cron"] = "every day"

    edit_yaml(hello_repo.path / STAGING_FILE, break_it)
    hello_repo.commit("broken")
    result = hello_repo.flowops(
        "deploy", "--branch", "staging", "--repository", hello_repo.origin_url, *pools, check=False
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, result.stderr
    assert all(line.startswith("error: deployments/staging/prefect.yaml: staging: ") for line in errors)
    assert "nothing was changed on the server" in result.stderr
    assert server_state(hello_repo) == before


def test_a_prefect_deploy_that_fails_half_way_is_undone(hello_repo):
    """Prefect refuses the second deployment (a trigger it cannot parse, which flowops does not check) after
    it updated the first: flowops restores the first and deletes what was new, so the server is as it was."""
    pools = pool_args()
    hello_repo.deploy("staging", *pools)
    before = server_state(hello_repo)

    def change(content):
        content["deployments"][0]["parameters"]["name"] = "changed"
        second = json.loads(json.dumps(content["deployments"][0]))
        second["name"] = "second"
        second["triggers"] = [{"type": "event", "expect": ["x"], "posture": "Sideways"}]
        content["deployments"].append(second)

    edit_yaml(hello_repo.path / STAGING_FILE, change)
    hello_repo.commit("a deployment prefect cannot load")
    result = hello_repo.flowops(
        "deploy", "--branch", "staging", "--repository", hello_repo.origin_url, *pools, check=False
    )
    assert result.returncode == 1
    assert "the server was put back as it was" in result.stderr
    after = server_state(hello_repo)
    assert after.keys() == before.keys()
    for name in before:
        assert {k: v for k, v in after[name].items() if k != "updated"} == {
            k: v for k, v in before[name].items() if k != "updated"
        }


def test_teardown_deletes_one_branchs_deployments_and_nothing_else_and_protects_main(hello_repo):
    pools = pool_args()
    for branch in ("main", "staging", "feature/a", "feature/b"):
        hello_repo.deploy(branch, *pools)
    before = server_state(hello_repo)
    assert len(before) == 4

    result = hello_repo.flowops("teardown", "--branch", "feature/a", "--json")
    assert json.loads(result.stdout)["deleted"] == [f"{hello_repo.flow_name}/staging-{branch_slug('feature/a')}"]
    after = server_state(hello_repo)
    assert after == {name: state for name, state in before.items() if branch_slug("feature/a") not in name}

    again = hello_repo.flowops("teardown", "--branch", "feature/a")
    assert "0 deployment(s)" in again.stdout
    refused = hello_repo.flowops("teardown", "--branch", "main", check=False)
    assert refused.returncode == 1
    assert "protected branch" in refused.stderr
    assert server_state(hello_repo) == after


@pytest.mark.parametrize("branch", ["feature/Foo_Bar", "b" * 120, 'x";touch${IFS}/tmp/pwned;#'])
def test_hostile_and_long_branch_names_deploy_and_tear_down_cleanly_and_execute_nothing(hello_repo, branch):
    pwned = Path("/tmp/pwned")  # noqa: S108 - the file the hostile name would create
    pwned.unlink(missing_ok=True)
    pools = pool_args()
    git(hello_repo.path, "checkout", "--quiet", "-b", branch)
    hello_repo.deploy(branch, *pools)
    slug = branch_slug(branch)
    live = deployments(hello_repo.api_url, hello_repo.flow_name)
    assert list(live) == [f"{hello_repo.flow_name}/staging-{slug}"]
    assert f"branch:{slug}" in live[f"{hello_repo.flow_name}/staging-{slug}"]["tags"]
    hello_repo.flowops("teardown", "--branch", branch)
    assert deployments(hello_repo.api_url, hello_repo.flow_name) == {}
    assert not pwned.exists()


def test_a_missing_credentials_block_for_an_https_clone_stops_the_deploy_before_anything_changes(hello_repo):
    result = hello_repo.flowops(
        "deploy", "--branch", "main", "--work-pool", "e2e-x", "--work-pool-type", "process", check=False
    )
    assert result.returncode == 1
    assert "GitHubCredentials block 'hello-github' does not exist" in result.stderr
    assert deployments(hello_repo.api_url, hello_repo.flow_name) == {}


def test_a_docker_pool_without_an_image_is_refused_before_anything_changes(hello_repo):
    result = hello_repo.flowops("deploy", "--branch", "main", "--repository", hello_repo.origin_url, check=False)
    assert result.returncode == 1
    assert "'hello-production' is a docker pool: pass --image" in result.stderr
    assert deployments(hello_repo.api_url, hello_repo.flow_name) == {}


def test_job_variables_the_pools_schema_rejects_stop_the_deploy_before_anything_changes(hello_repo):
    """The server would refuse them only as it reached that deployment, half-way through the deploy."""
    pools = pool_args()
    hello_repo.deploy("staging", *pools)
    before = server_state(hello_repo)
    edit_yaml(
        hello_repo.path / STAGING_FILE,
        lambda content: content["deployments"][0]["work_pool"].update(job_variables={"stream_output": "not a boolean"}),
    )
    hello_repo.commit("a job variable of the wrong type")
    result = hello_repo.flowops(
        "deploy", "--branch", "staging", "--repository", hello_repo.origin_url, *pools, check=False
    )
    assert result.returncode == 1
    assert "staging: work_pool.job_variables.stream_output: 'not a boolean' is not of type 'boolean'" in result.stderr
    assert server_state(hello_repo) == before


def test_bootstrap_creates_the_declared_pools_and_blocks_once_and_never_prints_a_secret(hello_repo, monkeypatch):
    database_url = "postgresql://app:s3cret-password@db.example/app"
    token = "ghp_" + "x" * 36
    hello_repo.env.update(ECOMMERCE_DATABASE_URL=database_url, GITHUB_TOKEN="ghp_" + "p" * 36)  # a person's own
    ambient = hello_repo.flowops("bootstrap", "--github-block", "hello-github")
    assert "block 'hello-github': skipped ($FLOWOPS_GIT_TOKEN is not set)" in ambient.stdout
    assert "Secret blocks: none saved" in ambient.stdout  # each environment's come from its own secrets
    hello_repo.env.update(FLOWOPS_GIT_TOKEN=token)
    first = hello_repo.flowops("bootstrap", "--github-block", "hello-github", "--environment", "production")
    second = hello_repo.flowops("bootstrap", "--github-block", "hello-github", "--environment", "production")
    assert "work pool 'hello-production' (docker): created" in ambient.stdout
    assert "work pool 'hello-staging' (process): created" in ambient.stdout
    assert "block 'hello-github': created from $FLOWOPS_GIT_TOKEN" in first.stdout
    assert "work pool 'hello-production' (docker): exists" in second.stdout
    assert "block 'hello-production-db': updated from $ECOMMERCE_DATABASE_URL (environment production)" in second.stdout
    assert "hello-staging-db" not in first.stdout + second.stdout  # another environment's
    for output in (first.stdout + first.stderr, second.stdout + second.stderr):
        assert "s3cret" not in output
        assert token not in output

    # With the credentials block in place, main deploys with its committed https clone and credentials.
    summary = hello_repo.path.parent / "step-summary.md"
    hello_repo.env["GITHUB_STEP_SUMMARY"] = str(summary)
    hello_repo.flowops("deploy", "--branch", "main", "--image", "localhost:5000/hello:1")
    production = deployments(hello_repo.api_url, hello_repo.flow_name)[f"{hello_repo.flow_name}/production"]
    clone = production["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    assert clone["credentials"] == "{{ prefect.blocks.github-credentials.hello-github }}"  # resolved at run time
    assert production["job_variables"]["image"] == "localhost:5000/hello:1"
    assert production["work_pool_name"] == "hello-production"
    assert f"| + | `{hello_repo.flow_name}/production` | create |" in summary.read_text()


def test_docker_pools_get_the_registry_credentials_block_by_reference_never_its_password(hello_repo):
    """flowops.yaml names the block; bootstrap saves it for the image's registry; deploy makes a reference to it the
    Docker pool's `registry_credentials` default, which the server and the worker resolve as a run starts: no
    deployment holds the password, and a pool that logs in with another block is not taken over."""
    block = f"hello-registry-{uuid.uuid4().hex[:8]}"
    password = f"registry-canary-{uuid.uuid4().hex}"
    edit_yaml(
        hello_repo.path / "deployments" / "flowops.yaml",
        lambda config: config.update(image={"name": "registry.example:5443/acme/hello", "registry_credentials": block}),
    )
    hello_repo.commit("a private image", push=["main"])
    pool = f"e2e-docker-{uuid.uuid4().hex[:8]}"
    deploy = ["deploy", "--branch", "main", "--repository", hello_repo.origin_url, "--image", "registry.example:5443/acme/hello:1"]  # fmt: skip

    missing = hello_repo.flowops(*deploy, "--work-pool", pool, "--work-pool-type", "docker", check=False)
    assert missing.returncode == 1
    assert (
        f"error: deployments/flowops.yaml: image.registry_credentials: DockerRegistryCredentials block {block!r}"
        f" does not exist (work pool {pool!r} would pull the image with it); run `flowops bootstrap`"
    ) in missing.stderr
    assert deployments(hello_repo.api_url, hello_repo.flow_name) == {}  # caught before anything changed
    assert not any(p["name"] == pool for p in api(hello_repo.api_url, "work_pools/filter", {}))

    hello_repo.env.update(REGISTRY_USERNAME="acme-puller")
    half = hello_repo.flowops("bootstrap")
    assert f"block {block!r}: skipped ($REGISTRY_PASSWORD not set)" in half.stdout
    hello_repo.env.update(REGISTRY_PASSWORD=password)
    saved = hello_repo.flowops("bootstrap")
    assert f"block {block!r}: created for registry registry.example:5443" in saved.stdout
    assert password not in saved.stdout + saved.stderr
    block_document = api(
        hello_repo.api_url, f"block_types/slug/docker-registry-credentials/block_documents/name/{block}"
    )

    deployed = hello_repo.flowops(*deploy, "--work-pool", pool, "--work-pool-type", "docker")
    assert f"work pool {pool!r}: its workers log in to the registry with block {block!r}" in deployed.stdout
    assert password not in deployed.stdout + deployed.stderr
    production = deployments(hello_repo.api_url, hello_repo.flow_name)[f"{hello_repo.flow_name}/production"]
    assert "registry_credentials" not in production["job_variables"]
    variables = api(hello_repo.api_url, f"work_pools/{pool}")["base_job_template"]["variables"]
    assert variables["properties"]["registry_credentials"]["default"] == {
        "$ref": {"block_document_id": block_document["id"]}
    }
    assert password not in json.dumps(
        [deployments(hello_repo.api_url), api(hello_repo.api_url, "work_pools/filter", {})]
    )
    again = hello_repo.flowops(*deploy, "--work-pool", pool, "--work-pool-type", "docker")
    assert "nothing to deploy: the server already matches this commit" in again.stdout
    assert "log in to the registry" not in again.stdout  # already so

    # A pool whose workers log in with another block belongs to another registry (or project): not taken over.
    other = f"other-registry-{uuid.uuid4().hex[:8]}"
    hello_repo.env.update(REGISTRY_PASSWORD="other-" + password)
    edit_yaml(
        hello_repo.path / "deployments" / "flowops.yaml",
        lambda config: config["image"].update(registry_credentials=other),
    )
    hello_repo.commit("another registry block", push=["main"])
    hello_repo.flowops("bootstrap")
    before = server_state(hello_repo)
    refused = hello_repo.flowops(*deploy, "--work-pool", pool, check=False)
    assert refused.returncode == 1
    assert f"work pool {pool!r} logs in to registries with block {block!r}, not {other!r}" in refused.stderr
    assert server_state(hello_repo) == before
    assert api(hello_repo.api_url, f"work_pools/{pool}")["base_job_template"]["variables"] == variables


# What the server sets itself, or names by id: never the same on two servers.
_SERVER_OWN = {"id", "created", "updated", "flow_id", "work_queue_id", "last_polled", "status", "created_by", "updated_by", "deployment_id", "prefect.flow.id"}  # fmt: skip


def _comparable(value):
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items() if key not in _SERVER_OWN}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value


def test_flowops_deploy_leaves_every_field_as_a_bare_prefect_deploy_of_the_same_file_would(hello_repo, tmp_path):
    """Four deployments, deployed by flowops for one commit, then for the next (which edits one and moves every
    pin), then for one that changes no deployment (every pin moves, without Prefect): field by field, the server
    holds what bare `prefect deploy --all` runs of the same three rendered files give another server (Prefect's
    create and update differ: a flow without a docstring gets the description 'None' on create, null on
    update)."""
    from flowops.local import PrefectServer, base_environment, prefect_executable

    def four_deployments(content):
        first = content["deployments"][0]
        content["deployments"] = [{**json.loads(json.dumps(first)), "name": f"copy-{i}"} for i in range(4)]

    pool = f"e2e-{uuid.uuid4().hex[:8]}"
    target = ["--branch", "feature/same", "--repository", hello_repo.origin_url, "--work-pool", pool]
    git(hello_repo.path, "remote", "add", "origin", hello_repo.origin_url)  # Prefect then versions by commit

    def notes(content):
        (hello_repo.path / "NOTES.md").write_text("a commit that changes no deployment\n")

    rendered, outputs = [], []
    for revision, change in enumerate(
        [four_deployments, lambda c: c["deployments"][0].update(description="edited"), notes]
    ):  # fmt: skip
        edit_yaml(hello_repo.path / STAGING_FILE, change)
        sha = hello_repo.commit(f"revision {revision}")
        outputs.append(hello_repo.flowops("deploy", *target, "--work-pool-type", "process").stdout)
        rendered.append(tmp_path / f"rendered-{revision}.yaml")
        hello_repo.flowops("render", *target, "-o", str(rendered[-1]))
    # the edited one is redefined by `prefect deploy`; the three others only move to the commit, through the API
    assert "3 deployment(s) only moved to this commit" in outputs[1]
    # a commit that changes no deployment: all four move, without Prefect (deploy/pin_moves.py)
    assert (
        "4 deployment(s) only moved to this commit (their pin, tags and version, written without Prefect)"
        in (outputs[2])
    )

    with PrefectServer(tmp_path / "bare-server") as bare:
        env = base_environment(bare.home, bare.api_url)
        create_pool = [prefect_executable(), "work-pool", "create", pool, "--type", "process"]
        subprocess.run(create_pool, env=env, cwd=hello_repo.path, capture_output=True, check=True)
        for file in rendered:
            deploy = [prefect_executable(), "--no-prompt", "deploy", "--all", "--prefect-file", str(file)]
            subprocess.run(deploy, env=env, cwd=hello_repo.path, capture_output=True, check=True)
        by_prefect = _comparable(deployments(bare.api_url, hello_repo.flow_name))
    by_flowops = _comparable(deployments(hello_repo.api_url, hello_repo.flow_name))
    assert sorted(by_flowops) == sorted(by_prefect)
    assert len(by_flowops) == 4
    assert {deployment["version"] for deployment in by_flowops.values()} == {sha[:8]}
    for name in by_flowops:
        differing = {key for key in by_flowops[name] if by_flowops[name][key] != by_prefect[name].get(key)}
        assert not differing, f"{name}: {differing}: {[(by_flowops[name][k], by_prefect[name][k]) for k in differing]}"
