"""Environment boundaries and branch environments on one shared Prefect server, with real workers and
PostgreSQL: production and staging each load into their own database (their own Secret blocks), a branch loads
into a schema of its own in staging's, and nothing a branch's files or a run parameter say reaches production's."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from flowops.deploy.gitops import block_owner_variable
from flowops.local import git
from flowops.render.branches import branch_slug, data_environment_name
from tests.helpers import api, deployments, deployments_as_deployed, edit_yaml, schema_rows

ECOMMERCE = "ecommerce-events-e2e"  # the e2e copy's flow name (tests/e2e/conftest.py)

RUN_TIMEOUT = "240"


@pytest.fixture
def two_databases(postgres_url):
    """Production's and staging's databases, apart: (production URL, staging URL)."""
    names = [f"flowops_{which}_{uuid.uuid4().hex[:8]}" for which in ("production", "staging")]
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        for name in names:
            connection.execute(f"create database {name}")
    yield tuple(re.sub(r"/[^/]*$", f"/{name}", postgres_url) for name in names)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        for name in names:
            connection.execute(f"drop database if exists {name} with (force)")


def test_a_pull_request_never_reaches_productions_database_pool_or_blocks(ecommerce_repo, two_databases, sample_month):
    production_url, staging_url = two_databases
    repo = ecommerce_repo
    pool, production_pool = f"e2e-{uuid.uuid4().hex[:8]}", f"e2e-production-{uuid.uuid4().hex[:8]}"
    # production's own pool here is a process pool (this machine runs no Docker for it): data in main's files
    edit_yaml(
        repo.path / "deployments" / "flowops.yaml",
        lambda c: c["work_pools"].update({production_pool: {"type": "process"}}),
    )
    edit_yaml(
        repo.path / "deployments" / "main" / "prefect.yaml",
        lambda c: c["deployments"][0]["work_pool"].update(name=production_pool, job_variables={}),
    )
    repo.commit("production on a process pool of its own", push=["main"])
    for environment, url in (("production", production_url), ("staging", staging_url)):
        saved = repo.flowops(
            "bootstrap", "--work-pool", pool, "--type", "process", "--environment", environment,
            env_extra={"ECOMMERCE_DATABASE_URL": url},
        )  # fmt: skip
        assert f"block {repo.blocks[environment]!r}: " in saved.stdout
    repo.deploy("main", "--work-pool", pool)

    # A pull request whose staging file names production's database block, then production's pool: refused.
    git(repo.path, "checkout", "--quiet", "-b", "feature/reach")
    staging_file = repo.path / "deployments" / "staging" / "prefect.yaml"
    edit_yaml(
        staging_file,
        lambda c: c["deployments"][0]["parameters"].update(database_secret_block=repo.blocks["production"]),
    )
    repo.commit("load into production", push=["feature/reach"])
    before = deployments_as_deployed(repo.api_url)
    refused = repo.flowops("deploy", "--branch", "feature/reach", "--repository", repo.origin_url, check=False)
    assert refused.returncode == 1
    assert f"block {repo.blocks['production']!r} is not a block of environment 'staging'" in refused.stderr
    assert "it belongs to environment 'production'" in refused.stderr
    edit_yaml(
        staging_file,
        lambda c: c["deployments"][0]["parameters"].update(database_secret_block=repo.blocks["staging"]),
    )
    edit_yaml(staging_file, lambda c: c["deployments"][0]["work_pool"].update(name=production_pool))
    repo.commit("run on production's pool", push=["feature/reach"])
    refused = repo.flowops("deploy", "--branch", "feature/reach", "--repository", repo.origin_url, check=False)
    assert refused.returncode == 1
    assert f"{production_pool!r} is not a work pool of environment 'staging' ('ecommerce-staging'" in refused.stderr
    assert deployments_as_deployed(repo.api_url) == before  # nothing changed

    # The same branch with staging's file as main has it: deployed, and its runs load into staging's database.
    git(repo.path, "checkout", "--quiet", "main")
    git(repo.path, "checkout", "--quiet", "-b", "feature/honest")
    git(repo.path, "push", "--quiet", str(repo.origin), "HEAD:refs/heads/feature/honest")
    repo.deploy("feature/honest", "--work-pool", pool)
    branch_deployment = f"{ECOMMERCE}/staging-{branch_slug('feature/honest')}"
    sources = f'sources=["{sample_month.as_uri()}"]'
    schema = data_environment_name("branch_", "feature/honest")
    with repo.worker(pool):
        leak = repo.flowops(
            "run", branch_deployment, "--param", sources,
            "--param", f"database_secret_block={repo.blocks['production']}", check=False,
        )  # fmt: skip
        assert leak.returncode == 1
        assert f"block {repo.blocks['production']!r} is not a block of environment 'staging'" in leak.stderr
        assert "flow run" not in leak.stdout  # never created
        for deployment in (f"{ECOMMERCE}/production", branch_deployment):
            result = repo.flowops("run", deployment, "--param", sources, "--wait", "--timeout", RUN_TIMEOUT)
            assert result.stdout.rstrip().endswith(": Completed"), result.stdout
        repo.flowops("teardown", "--branch", "feature/honest")
    assert schema_rows(production_url, "public", "ecommerce_events") == 50_000
    assert schema_rows(production_url, schema, "ecommerce_events") is None  # no branch data in production's
    assert schema_rows(staging_url, "public", "ecommerce_events") is None  # nor in staging's own tables


def test_bootstrap_refuses_a_block_another_project_owns_and_a_missing_secret_fails_it(ecommerce_repo, tmp_path):
    repo = ecommerce_repo
    pool = f"e2e-{uuid.uuid4().hex[:8]}"
    missing = repo.flowops(
        "bootstrap", "--work-pool", pool, "--type", "process", "--environment", "staging",
        env_extra={"ECOMMERCE_DATABASE_URL": ""}, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert f"$ECOMMERCE_DATABASE_URL (block {repo.blocks['staging']!r}) not set; nothing was changed" in missing.stderr
    assert pool not in {p["name"] for p in api_pools(repo.api_url)}

    # another project on the server bootstrapped a block of the same name for its production
    block = repo.blocks["production"]
    owner = {"project": "someone/else", "environment": "production", "block": block}
    api(repo.api_url, "variables/", {"name": block_owner_variable(block), "value": owner, "tags": ["flowops"]})
    taken = repo.flowops("bootstrap", "--environment", "production", check=False)
    assert taken.returncode == 1
    assert (
        f"Secret block {block!r} belongs to environment 'production' of project 'someone/else', not to"
        f" 'production' of {repo.project!r}"
    ) in taken.stderr
    assert not any(d["name"] == block for d in api(repo.api_url, "block_documents/filter", {}))


def api_pools(api_url: str) -> list[dict]:
    return api(api_url, "work_pools/filter", {})


def test_a_cleanup_that_hangs_is_reported_and_gc_drops_the_data_once_the_branch_is_gone(
    ecommerce_repo, postgres_url, sample_month
):
    repo = ecommerce_repo
    edit_yaml(
        repo.path / "deployments" / "flowops.yaml", lambda c: c["branch_environments"]["cleanup"].update(timeout=5)
    )
    repo.commit("a short cleanup timeout", push=["main"])
    pool = f"e2e-{uuid.uuid4().hex[:8]}"
    repo.bootstrap(pool, "staging")
    branch = "feature/hangs"
    git(repo.path, "push", "--quiet", str(repo.origin), f"HEAD:refs/heads/{branch}")
    repo.deploy(branch, "--work-pool", pool)
    schema = data_environment_name("branch_", branch)
    cleanup = f"ecommerce-drop-branch-data-e2e/drop-branch-data-{branch_slug(branch)}"
    with repo.worker(pool):
        loaded = repo.flowops(
            "run", f"{ECOMMERCE}/staging-{branch_slug(branch)}", "--param", f'sources=["{sample_month.as_uri()}"]',
            "--wait", "--timeout", RUN_TIMEOUT,
        )  # fmt: skip
        assert loaded.stdout.rstrip().endswith(": Completed"), loaded.stdout
    assert schema_rows(postgres_url, schema, "ecommerce_events") == 50_000

    hung = repo.flowops("teardown", "--branch", branch, check=False)  # no worker: the cleanup never starts
    assert hung.returncode == 1
    assert f"data environment {schema} NOT dropped: run" in hung.stderr
    assert (
        f"did not end within 5 s (still Scheduled: is a worker serving work pool {pool!r}?); cancelled" in hung.stderr
    )
    assert f"kept {cleanup}" in hung.stderr
    assert set(deployments(repo.api_url)) & {cleanup, f"{ECOMMERCE}/staging-{branch_slug(branch)}"} == {cleanup}
    assert schema_rows(postgres_url, schema, "ecommerce_events") == 50_000

    git(repo.path, "push", "--quiet", str(repo.origin), "--delete", branch)
    # the operator gives the cleanup the time a real run takes (5 s was to make the first one time out)
    edit_yaml(
        repo.path / "deployments" / "flowops.yaml", lambda c: c["branch_environments"]["cleanup"].update(timeout=240)
    )
    repo.commit("a cleanup timeout a run can meet", push=["main"])
    listed = repo.flowops("gc", "--repository", repo.origin_url, "--dry-run")
    assert f"would drop data environment {schema}" in listed.stdout
    assert f"would delete {cleanup}" in listed.stdout
    with repo.worker(pool):
        collected = repo.flowops("gc", "--repository", repo.origin_url)
    assert f"dropped data environment {schema}" in collected.stdout
    assert f"deleted {cleanup}" in collected.stdout
    assert schema_rows(postgres_url, schema, "ecommerce_events") is None
    assert cleanup not in deployments(repo.api_url)
    flows = {"flows": {"name": {"any_": [cleanup.split("/")[0]]}}}
    runs = api(repo.api_url, "flow_runs/filter", {**flows, "sort": "EXPECTED_START_TIME_DESC", "limit": 10})
    # the run teardown gave up on never ran beside gc's (two drops of one schema at once)
    assert [run["state_type"] for run in runs if run["parameters"]["database_schema"] == schema] == [
        "COMPLETED",
        "CANCELLED",
    ]
