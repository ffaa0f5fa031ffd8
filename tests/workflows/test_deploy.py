"""deploy.yml under act, event by event, asserting what the Prefect server (and the registry, and the pull request)
holds afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid

from flowops.branches import branch_slug
from flowops.local import git
from flowops.pull_request_comment import MARKER
from tests.helpers import FLOW, api, deployment_names, deployments, event, git_clone_step

BRANCH = "feature/Foo_Bar"  # the head branch of the pull requests in tests/fixtures/github_events
PULL_REQUEST_JOB = "branch deployments of the pull request"
STAGING_JOB = "deploy staging, tear down deleted branches"


def test_a_pull_request_gets_branch_deployments_one_comment_and_a_teardown(repository, github_api, staging_worker):
    api_url = repository.api_url
    github_api.comment_by(7, f"{MARKER} quoted by a person: never ours to edit")
    run = repository.act("deploy.yml", "push", event("push_staging", HEAD_SHA=repository.commit("staging")))
    assert run.job(STAGING_JOB) == "succeeded", run.output[-3000:]
    assert run.job("flows image") == "not run"
    assert deployment_names(api_url) == {"staging"}

    git(repository.path, "checkout", "--quiet", "-b", BRANCH)
    (repository.path / "flows" / "feature.py").write_text("FEATURE = 1\n")
    first = repository.commit("feature work", push=[BRANCH])
    run = repository.act("deploy.yml", "pull_request", event("pull_request_opened", HEAD_SHA=first))
    assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
    branch_deployment = f"{FLOW}/staging-{branch_slug(BRANCH)}"
    live = deployments(api_url, FLOW)[branch_deployment]
    assert git_clone_step(live)["commit_sha"] == first  # the PR head, not a merge commit
    assert git_clone_step(live)["repository"] == f"{repository.origin.as_uri()}"  # GITHUB_SERVER_URL/repository
    assert f"branch:{branch_slug(BRANCH)}" in live["tags"]

    ours = [c for c in github_api.comments if c["user"]["type"] == "Bot"]
    assert len(ours) == 1
    assert ours[0]["body"].startswith(MARKER)
    assert f"`{branch_deployment}` | create" in ours[0]["body"]
    assert ours[0]["body"].rstrip().endswith("Deployed.")
    methods = [method for method, _ in github_api.calls]
    assert methods == ["GET", "POST", "PATCH"]  # found none of ours, showed the plan, then the result

    (repository.path / "flows" / "feature.py").write_text("FEATURE = 2\n")
    second = repository.commit("more work", push=[BRANCH])
    run = repository.act("deploy.yml", "pull_request", event("pull_request_synchronize", HEAD_SHA=second))
    assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
    assert git_clone_step(deployments(api_url, FLOW)[branch_deployment])["commit_sha"] == second
    assert [c["id"] for c in github_api.comments if c["user"]["type"] == "Bot"] == [ours[0]["id"]]  # same comment
    assert f"`{branch_deployment}` | update" in ours[0]["body"]
    assert github_api.comments[0]["body"] == f"{MARKER} quoted by a person: never ours to edit"
    assert github_api.problems == []

    before = deployments(api_url, FLOW)
    run = repository.act("deploy.yml", "pull_request", event("pull_request_fork", HEAD_SHA=second))
    assert run.job(PULL_REQUEST_JOB) == "not run"  # a fork's pull request gets no secrets and no job
    assert deployments(api_url, FLOW) == before

    run = repository.act("deploy.yml", "pull_request", event("pull_request_closed", HEAD_SHA=second))
    assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
    assert deployment_names(api_url) == {"staging"}
    run = repository.act("deploy.yml", "pull_request", event("pull_request_reopened", HEAD_SHA=second))
    assert deployment_names(api_url) == {"staging", f"staging-{branch_slug(BRANCH)}"}

    git(repository.path, "checkout", "--quiet", "main")  # GitHub runs `delete` on the default branch
    run = repository.act("deploy.yml", "delete", event("delete_branch"))
    assert run.job(STAGING_JOB) == "succeeded", run.output[-3000:]
    assert deployment_names(api_url) == {"staging"}


def test_a_push_to_main_builds_and_pushes_the_image_then_deploys_production_with_it(repository, container_stack):
    name = f"localhost:5000/acme-flows-{uuid.uuid4().hex[:8]}"
    repository.variables.update(FLOWOPS_IMAGE_NAME=name, FLOWOPS_BASE_IMAGE=os.environ["FLOWOPS_BASE_IMAGE"])
    # the operator's one-time bootstrap (Manual workflow): the block Docker workers pull the private image with
    bootstrap = [sys.executable, "-m", "flowops", "-C", str(repository.path), "bootstrap"]
    login = {"REGISTRY_USERNAME": "acme-bot", "REGISTRY_PASSWORD": "ghp_registrytoken0123456789"}
    environment = {**os.environ, "PREFECT_API_URL": repository.api_url, "FLOWOPS_IMAGE_NAME": name, **login}
    subprocess.run(bootstrap, env=environment, capture_output=True, check=True)
    sha = repository.commit("release")
    run = repository.act("deploy.yml", "push", event("push_main", HEAD_SHA=sha))
    assert run.job("flows image") == "succeeded", run.output[-3000:]
    assert run.job("deploy production") == "succeeded", run.output[-3000:]
    assert "built and pushed" in run.output

    image = expected_image(repository.path, name, os.environ["FLOWOPS_BASE_IMAGE"])
    repository_name, tag = image.removeprefix("localhost:5000/").split(":")
    manifest = urllib.request.Request(
        f"http://127.0.0.1:5000/v2/{repository_name}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"},
        method="HEAD",
    )  # fmt: skip
    with urllib.request.urlopen(manifest, timeout=10) as response:  # noqa: S310 - the local registry
        assert response.status == 200

    production = deployments(repository.api_url, FLOW)[f"{FLOW}/production"]
    assert production["job_variables"]["image"] == image
    block = api(
        repository.api_url, "block_types/slug/docker-registry-credentials/block_documents/name/flowops-registry"
    )
    assert block["data"]["registry_url"] == "localhost:5000"
    pool = api(repository.api_url, f"work_pools/{production['work_pool_name']}")
    default = pool["base_job_template"]["variables"]["properties"]["registry_credentials"]["default"]
    assert default == {"$ref": {"block_document_id": block["id"]}}  # workers log in with it
    assert {f"commit:{sha[:8]}", "env:production"} <= set(production["tags"])
    assert git_clone_step(production)["repository"] == repository.origin.as_uri()
    assert deployment_names(repository.api_url) == {"production"}


def expected_image(root, name: str, base_image: str) -> str:
    """The image reference flowops computes for these inputs: what the image job must have pushed."""
    environment = {**os.environ, "FLOWOPS_IMAGE_NAME": name, "FLOWOPS_BASE_IMAGE": base_image}
    command = [sys.executable, "-m", "flowops", "-C", str(root), "image", "tag", "--ref"]
    return subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout.strip()
