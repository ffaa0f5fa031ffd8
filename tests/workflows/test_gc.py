"""gc.yml under act: the daily schedule deletes the branch deployments whose branch is gone from origin, and the
Manual workflow's gc operation runs only in the environment branch deployments live in."""

from __future__ import annotations

import subprocess
import sys

from flowops.local import base_environment, git
from flowops.render.branches import branch_slug
from tests.helpers import FLOW, deployment_names


def flowops(repository, *args: str) -> None:
    """flowops run by hand against the workflows' server: how the branches got deployed before their events were
    missed."""
    env = base_environment(repository.path.parent / "home", repository.api_url)
    subprocess.run(
        [sys.executable, "-m", "flowops", "-C", str(repository.path), *args], env=env, check=True,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_daily_gc_deletes_the_deployments_of_branches_gone_from_origin_and_nothing_else(repository, staging_worker):
    origin = repository.origin.as_uri()
    flowops(repository, "bootstrap", "--work-pool", "ecommerce-staging", "--type", "process")
    for branch in ("feature/gone", "feature/kept", "staging"):
        git(repository.path, "push", "--quiet", str(repository.origin), f"HEAD:refs/heads/{branch}")
        flowops(repository, "deploy", "--branch", branch, "--repository", origin)
    git(repository.path, "push", "--quiet", str(repository.origin), "--delete", "feature/gone")  # no event came
    gone, kept = (f"staging-{branch_slug(branch)}" for branch in ("feature/gone", "feature/kept"))
    assert deployment_names(repository.api_url) == {"staging", gone, kept}

    run = repository.act("gc.yml", "schedule", {"schedule": "23 4 * * *"})
    assert run.job("gc") == "succeeded", run.output[-3000:]
    assert f"deleted {FLOW}/{gone} (its branch is gone from {origin})" in run.output
    assert deployment_names(repository.api_url) == {"staging", kept}

    payload = {
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/flows", "name": "flows", "owner": {"login": "acme"}},
        "inputs": {"operation": "gc", "branch": "main", "environment": "production", "sha": "",
                   "deployment": "", "parameters": "{}", "wait": "true"},
    }  # fmt: skip
    run = repository.act("manual.yml", "workflow_dispatch", payload)
    assert run.job("check the dispatch") == "failed"
    assert "gc: branch deployments live in environment 'staging', not 'production'" in run.output
    assert run.job("gc") == "not run"
    assert deployment_names(repository.api_url) == {"staging", kept}
