"""deploy.yml under act, event by event, asserting what the Prefect server (and the registry, and the pull request)
holds afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid

import psycopg
import pytest

from flowops.github.pull_request_comment import MARKER
from flowops.local import base_environment, git
from flowops.render.branches import branch_slug, data_environment_name
from tests.helpers import (
    FLOW,
    api,
    deployment_names,
    deployments,
    deployments_as_deployed,
    event,
    git_clone_step,
    schema_rows,
)

BRANCH = "feature/Foo_Bar"  # the head branch of the pull requests in tests/fixtures/github_events
PULL_REQUEST_JOB = "branch deployments of the pull request"
STAGING_JOB = "deploy staging, tear down deleted branches"


def pull_request(action: str, number: int, branch: str, sha: str) -> dict:
    """A pull_request event of the fixtures' repository, for pull request `number` from `branch` at `sha`."""
    payload = event(f"pull_request_{action}", HEAD_SHA=sha)
    payload["number"] = payload["pull_request"]["number"] = number
    payload["pull_request"]["head"]["ref"] = branch
    return payload


def staging_table(database_url: str) -> tuple[int, str]:
    """Staging's events: their number and a checksum of every row."""
    with psycopg.connect(database_url) as connection:
        count, digest = connection.execute(
            "select count(*), md5(coalesce(string_agg(e::text, '|' order by e::text), ''))"
            " from public.ecommerce_events e"
        ).fetchone()
    return count, digest


def columns(database_url: str, schema: str, table: str = "ecommerce_events") -> list[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
            " order by ordinal_position",
            [schema, table],
        ).fetchall()
    return [name for (name,) in rows]


def our_comment(github_api, number: int) -> dict:
    ours = [c for c in github_api.comments if c["issue"] == number and c["user"]["type"] == "Bot"]
    assert len(ours) == 1, ours  # one comment per pull request, updated in place
    return ours[0]


@pytest.mark.timeout(1800)
def test_two_pull_requests_prove_their_changes_on_data_of_their_own_and_leave_nothing(
    repository, github_api, staging_worker, staging_database
):
    api_url = repository.api_url
    github_api.comment_by(7, f"{MARKER} quoted by a person: never ours to edit")
    staging = repository.commit("staging", push=["staging"])
    run = repository.act("deploy.yml", "push", event("push_staging", HEAD_SHA=staging))
    assert run.job(STAGING_JOB) == "succeeded", run.output[-3000:]
    assert run.job("flows image") == "not run"
    assert deployment_names(api_url) == {"staging"}
    # staging's nightly run (by hand here): its table, and the summary a pull request's sample is shown beside
    operator = {**base_environment(repository.path.parent / "operator-home", api_url)}
    started = subprocess.run(
        [sys.executable, "-m", "flowops", "run", f"{FLOW}/staging", "--wait", "--timeout", "300"],
        env=operator, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    staging_before = staging_table(staging_database)
    assert staging_before[0] == 50_000

    # Two pull requests open at once, each deployed, sample-run and shown on its own comment.
    branches = {7: BRANCH, 8: "feature/other"}
    heads = {}
    for number, branch in branches.items():
        git(repository.path, "checkout", "--quiet", "main")
        git(repository.path, "checkout", "--quiet", "-b", branch)
        (repository.path / "flows" / f"feature_{number}.py").write_text("FEATURE = 1\n")
        heads[number] = repository.commit(f"work of pull request {number}", push=[branch])
        run = repository.act("deploy.yml", "pull_request", pull_request("opened", number, branch, heads[number]))
        assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
    schemas = {number: data_environment_name("branch_", branch) for number, branch in branches.items()}
    assert schemas[7] != schemas[8]
    for number, branch in branches.items():
        branch_deployment = f"{FLOW}/staging-{branch_slug(branch)}"
        live = deployments(api_url, FLOW)[branch_deployment]
        assert git_clone_step(live)["commit_sha"] == heads[number]  # the PR head, not a merge commit
        assert git_clone_step(live)["repository"] == repository.origin.as_uri()  # GITHUB_SERVER_URL/repository
        assert schema_rows(staging_database, schemas[number], "ecommerce_events") == 10_000  # the sample, its own
        body = our_comment(github_api, number)["body"]
        assert body.startswith(MARKER)
        assert f"`{branch_deployment}` | create" in body
        assert f"| ✅ | `{branch_deployment}` | Completed |" in body
        assert f"{api_url.removesuffix('/api')}/runs/flow-run/" in body  # a link to the run in the UI
        assert f"beside `{FLOW}/staging`'s latest Completed run" in body
        assert "| 2019-Oct.csv: rows loaded | 10,000 | 50,000 | **≠** |" in body
        assert "| column brand | text | text |  |" in body

    # Pull request 7 changes its transform (brand is no longer loaded): its sample runs again from an emptied
    # data environment, and its comment shows the difference; pull request 8's data is untouched.
    git(repository.path, "checkout", "--quiet", BRANCH)
    schema_file = repository.path / "flows" / "ecommerce" / "schema.py"
    brand = 'Column("brand", TEXT, nullable=True)'
    assert brand in schema_file.read_text(), "the test's transform change no longer matches flows/ecommerce/schema.py"
    schema_file.write_text(schema_file.read_text().replace(brand, 'Column("brand", TEXT, nullable=True, loaded=False)'))
    second = repository.commit("stop loading brand", push=[BRANCH])
    run = repository.act("deploy.yml", "pull_request", pull_request("synchronize", 7, BRANCH, second))
    assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
    body = our_comment(github_api, 7)["body"]
    assert f"`{FLOW}/staging-{branch_slug(BRANCH)}` | update" in body
    assert f"Data environment `{schemas[7]}` emptied first" in body
    assert "| column brand | - | text | **gone** |" in body
    assert schema_rows(staging_database, schemas[7], "ecommerce_events") == 10_000  # loaded again, not "already"
    assert "brand" not in columns(staging_database, schemas[7])
    assert "brand" in columns(staging_database, schemas[8])
    assert github_api.comments[0]["body"] == f"{MARKER} quoted by a person: never ours to edit"
    assert github_api.problems == []

    before = deployments_as_deployed(api_url, FLOW)
    run = repository.act("deploy.yml", "pull_request", event("pull_request_fork", HEAD_SHA=second))
    assert run.job(PULL_REQUEST_JOB) == "not run"  # a fork's pull request gets no secrets and no job
    assert deployments_as_deployed(api_url, FLOW) == before

    # Both closed: their deployments and their data are gone; staging's table is as it was.
    for number, branch in branches.items():
        run = repository.act("deploy.yml", "pull_request", pull_request("closed", number, branch, heads[number]))
        assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
        assert f"dropped data environment {schemas[number]}" in run.output
        assert schema_rows(staging_database, schemas[number], "ecommerce_events") is None
    assert deployment_names(api_url) == {"staging"}
    cleanups = deployments(api_url, "ecommerce-drop-branch-data")  # the branches' own cleanup deployments: gone too
    assert not [name for name in cleanups if branch_slug(BRANCH) in name or branch_slug(branches[8]) in name]
    with psycopg.connect(staging_database) as connection:
        left = connection.execute("select nspname from pg_namespace where nspname like 'branch_%'").fetchall()
    assert left == []
    assert staging_table(staging_database) == staging_before

    # Reopened, it is deployed again; its branch deleted (GitHub runs `delete` on the default branch), it goes.
    run = repository.act("deploy.yml", "pull_request", pull_request("reopened", 7, BRANCH, second))
    assert run.job(PULL_REQUEST_JOB) == "succeeded", run.output[-3000:]
    assert deployment_names(api_url) == {"staging", f"staging-{branch_slug(BRANCH)}"}
    git(repository.path, "checkout", "--quiet", "main")
    run = repository.act("deploy.yml", "delete", event("delete_branch"))
    assert run.job(STAGING_JOB) == "succeeded", run.output[-3000:]
    assert deployment_names(api_url) == {"staging"}
    assert schema_rows(staging_database, schemas[7], "ecommerce_events") is None
    assert staging_table(staging_database) == staging_before


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
