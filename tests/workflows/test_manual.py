"""manual.yml under act: every dispatch operation, as a person would pick it in the Actions tab, and the server's
state after each."""

from __future__ import annotations

import json

import psycopg

from flowops.local import Worker, git
from flowops.render.branches import branch_slug
from tests.helpers import FLOW, api, deployment_names, deployments, deployments_as_deployed, git_clone_step

BY_HAND = "feature/by-hand"


def dispatch(repository, operation: str, branch: str = "main", **inputs: str):
    """`workflow_dispatch` of manual.yml with these inputs (the others at their defaults)."""
    payload = {
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/flows", "name": "flows", "owner": {"login": "acme"}},
        "inputs": {
            "operation": operation, "branch": branch, "deployment": "ecommerce-events/production",
            "parameters": "{}", "wait": "true", "environment": "staging", "sha": "", **inputs,
        },
    }  # fmt: skip
    return repository.act("manual.yml", "workflow_dispatch", payload)  # the job's name is the operation


def test_every_dispatch_operation_and_the_refused_ones(repository, postgres_url, sample_month, table_name):
    api_url = repository.api_url
    registry_password = "ghp_registrytoken0123456789"  # a token with read:packages
    repository.secrets.update(
        ECOMMERCE_DATABASE_URL=postgres_url,
        FLOWOPS_GIT_TOKEN="ghp_dispatchtoken0123456789",
        REGISTRY_USERNAME="acme-bot",
        REGISTRY_PASSWORD=registry_password,
    )
    run = dispatch(repository, "bootstrap")
    assert run.job("bootstrap") == "succeeded", run.output[-3000:]
    registry = api(api_url, "block_types/slug/docker-registry-credentials/block_documents/name/flowops-registry")
    assert registry["data"]["registry_url"] == "ghcr.io"  # the image name's registry (vars.FLOWOPS_IMAGE_NAME unset)
    assert registry_password not in run.output
    pools = {pool["name"]: pool["type"] for pool in api(api_url, "work_pools/filter", {})}
    assert pools["ecommerce-production"] == "docker"
    assert pools["ecommerce-staging"] == "process"
    assert api(api_url, "block_types/slug/secret/block_documents/name/ecommerce-staging-database-url")["name"]
    assert "block 'ecommerce-production-database-url'" not in run.output  # a staging dispatch: staging's blocks only
    assert api(api_url, "block_types/slug/github-credentials/block_documents/name/flowops-github")["name"]
    assert postgres_url not in run.output
    assert "ghp_dispatchtoken0123456789" not in run.output

    git(repository.path, "checkout", "--quiet", "-b", BY_HAND)
    (repository.path / "flows" / "by_hand.py").write_text("BY_HAND = True\n")
    sha = repository.commit("by hand", push=[BY_HAND])
    git(repository.path, "checkout", "--quiet", "main")  # dispatches run from main; `branch` picks the code
    run = dispatch(repository, "deploy", BY_HAND, environment="production")  # a feature with production's secrets
    assert run.job("check the dispatch") == "failed"
    assert f"branch '{BY_HAND}' deploys into environment 'staging', not 'production'" in run.output
    assert run.job("deploy") == "not run"  # no step of the branch ran with the environment's secrets
    assert deployment_names(api_url) == set()

    run = dispatch(repository, "deploy", BY_HAND)
    assert run.job("deploy") == "succeeded", run.output[-3000:]
    by_hand = f"{FLOW}/staging-{branch_slug(BY_HAND)}"
    assert git_clone_step(deployments(api_url, FLOW)[by_hand])["commit_sha"] == sha

    run = dispatch(repository, "plan", BY_HAND)
    assert run.job("plan") == "succeeded", run.output[-3000:]
    assert f"Plan for branch '{BY_HAND}' @ {sha[:8]}: nothing to change" in run.output  # without Prefect

    git(repository.path, "checkout", "--quiet", BY_HAND)
    (repository.path / "flows" / "by_hand.py").write_text("BY_HAND = 2\n")
    second = repository.commit("by hand, again", push=[BY_HAND])
    git(repository.path, "checkout", "--quiet", "-b", "elsewhere", "main")
    (repository.path / "flows" / "elsewhere.py").write_text("ELSEWHERE = True\n")
    elsewhere = repository.commit("not on the branch", push=["elsewhere"])
    git(repository.path, "checkout", "--quiet", "main")
    assert dispatch(repository, "deploy", BY_HAND).job("deploy") == "succeeded"
    assert git_clone_step(deployments(api_url, FLOW)[by_hand])["commit_sha"] == second
    run = dispatch(repository, "rollback", BY_HAND, sha=elsewhere)  # another branch's commit: refused
    assert run.job("rollback") == "failed"
    assert f"{elsewhere[:12]} is not a commit of branch '{BY_HAND}'" in run.output
    run = dispatch(repository, "rollback", BY_HAND, sha=sha)
    assert run.job("rollback") == "succeeded", run.output[-3000:]
    assert git_clone_step(deployments(api_url, FLOW)[by_hand])["commit_sha"] == sha

    git(repository.path, "push", "--quiet", str(repository.origin), "--delete", BY_HAND)  # gone: nothing to check out
    with Worker(api_url, "ecommerce-staging", repository.path.parent / "cleanup-worker"):  # runs its cleanup
        run = dispatch(repository, "teardown", BY_HAND)
    assert run.job("teardown") == "succeeded", run.output[-3000:]
    assert deployment_names(api_url) == set()

    dispatch(repository, "deploy", "staging")
    before = deployments_as_deployed(api_url, FLOW)
    assert set(before) == {f"{FLOW}/staging"}
    run = dispatch(repository, "teardown", "main", environment="production")  # a protected branch: refused
    assert run.job("check the dispatch") == "failed"
    assert "refusing branch 'main'" in run.output
    assert run.job("teardown") == "not run"
    assert deployments_as_deployed(api_url, FLOW) == before

    parameters = json.dumps({"sources": [str(sample_month)], "table": table_name})
    worker_env = {"ECOMMERCE_DATA_DIR": str(sample_month.parent)}  # where the operator lets runs read files
    with Worker(api_url, "ecommerce-staging", repository.path.parent / "worker", env=worker_env):
        run = dispatch(repository, "run", deployment=f"{FLOW}/staging", parameters=parameters)
    assert run.job("run") == "succeeded", run.output[-3000:]
    assert ": Completed" in run.output  # it waited for the run's end
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute(f"select count(*) from {table_name}").fetchone()[0] == 50_000

    run = dispatch(repository, "run", deployment=f"{FLOW}/staging", parameters='["not", "an object"]')
    assert run.job("check the dispatch") == "failed"  # refused before any run is made
    assert "must be a JSON object" in run.output
    assert run.job("run") == "not run"
