"""What each GitHub Actions event means for deployments (flowops github-event), from payloads as GitHub sends them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowops.github.events import DEPLOY, PLAN, RUN, SKIP, TEARDOWN, EventError, decide, read_event

EVENTS = Path(__file__).resolve().parents[2] / "fixtures" / "github_events"
PROTECTED = {"main", "staging"}


def payload(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.mark.parametrize(
    ("event", "file", "operation", "branch", "sha"),
    [
        ("push", "push_main", DEPLOY, "main", "HEAD_SHA"),
        ("push", "push_staging", DEPLOY, "staging", "HEAD_SHA"),
        ("push", "push_feature", SKIP, None, None),
        ("push", "push_tag", SKIP, None, None),
        ("pull_request", "pull_request_opened", DEPLOY, "feature/Foo_Bar", "HEAD_SHA"),
        ("pull_request", "pull_request_synchronize", DEPLOY, "feature/Foo_Bar", "HEAD_SHA"),
        ("pull_request", "pull_request_reopened", DEPLOY, "feature/Foo_Bar", "HEAD_SHA"),
        ("pull_request", "pull_request_closed", TEARDOWN, "feature/Foo_Bar", None),
        ("pull_request", "pull_request_labeled", SKIP, None, None),
        ("pull_request", "pull_request_fork", SKIP, None, None),
        ("pull_request", "pull_request_from_staging", SKIP, None, None),
        ("delete", "delete_branch", TEARDOWN, "feature/Foo_Bar", None),
        ("delete", "delete_tag", SKIP, None, None),
        ("delete", "delete_main", SKIP, None, None),
        ("workflow_dispatch", "dispatch_deploy", DEPLOY, "feature/by-hand", None),
        ("workflow_dispatch", "dispatch_plan", PLAN, "feature/by-hand", None),
        ("workflow_dispatch", "dispatch_teardown", TEARDOWN, "feature/by-hand", None),
    ],
)
def test_each_event_maps_to_one_operation_on_one_branch(event, file, operation, branch, sha):
    decision = decide(event, payload(file), PROTECTED)
    assert (decision.operation, decision.branch, decision.sha) == (operation, branch, sha)
    assert decision.reason


def test_only_a_pull_requests_deploy_names_the_pull_request_to_comment_on():
    assert decide("pull_request", payload("pull_request_opened"), PROTECTED).pull_request == 7
    assert decide("pull_request", payload("pull_request_closed"), PROTECTED).pull_request is None
    assert decide("push", payload("push_staging"), PROTECTED).pull_request is None


def environment_of(branch: str) -> str:
    return {"main": "production", "staging": "staging"}.get(branch, "staging")


@pytest.mark.parametrize(
    ("operation", "branch", "environment"),
    [
        ("deploy", "feature/x", "production"),  # a feature's code and staging file, with production's secrets
        ("plan", "feature/x", "production"),
        ("teardown", "feature/x", "production"),
        ("deploy", "main", "staging"),  # production's file onto the staging server
        ("deploy", "staging", "production"),
        ("deploy", "feature/x", None),
        ("rollback", "main", "staging"),
    ],
)
def test_a_dispatch_names_the_environment_its_branch_deploys_into_or_is_refused(operation, branch, environment):
    inputs = {"operation": operation, "branch": branch, "environment": environment}
    with pytest.raises(EventError) as refused:
        decide("workflow_dispatch", {"inputs": inputs}, PROTECTED, environment_of)
    expected = environment_of(branch)
    assert f"branch {branch!r} deploys into environment {expected!r}, not {environment!r}" in str(refused.value)


@pytest.mark.parametrize(
    ("branch", "environment"), [("main", "production"), ("staging", "staging"), ("feature/x", "staging")]
)
def test_a_dispatch_into_the_branchs_own_environment_goes_ahead(branch, environment):
    inputs = {"operation": "deploy", "branch": branch, "environment": environment}
    assert decide("workflow_dispatch", {"inputs": inputs}, PROTECTED, environment_of).operation == DEPLOY


def test_a_dispatched_rollback_names_the_branch_and_the_commit_and_a_deploy_takes_the_branch_head():
    sha = "0123456789abcdef0123456789abcdef01234567"
    inputs = {"operation": "rollback", "branch": "main", "sha": sha, "environment": "production"}
    decision = decide("workflow_dispatch", {"inputs": inputs}, PROTECTED, environment_of)
    assert (decision.operation, decision.branch, decision.sha) == ("rollback", "main", sha)
    deploy = decide("workflow_dispatch", {"inputs": {**inputs, "operation": "deploy"}}, PROTECTED, environment_of)
    assert (deploy.operation, deploy.sha) == (DEPLOY, None)  # what is checked out: the branch's head


def test_a_fork_pull_request_says_why_it_deploys_nothing():
    assert (
        "comes from a fork (mallory/flows): no secrets, no deploy"
        in decide("pull_request", payload("pull_request_fork"), PROTECTED).reason
    )


def test_a_dispatched_run_carries_its_deployment_parameters_and_wait():
    decision = decide("workflow_dispatch", payload("dispatch_run"), PROTECTED)
    assert (decision.operation, decision.deployment, decision.parameters, decision.wait) == (
        RUN,
        "FLOW/production",
        {"name": "dispatch", "count": 3},
        True,
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"operation": "deploy", "branch": ""}, "the `branch` input is empty"),
        ({"operation": "teardown", "branch": "main"}, "refusing branch 'main'"),
        ({"operation": "run", "deployment": "f/d", "parameters": "{not json"}, "`parameters` input is not JSON"),
        ({"operation": "run", "deployment": "f/d", "parameters": "[1]"}, "must be a JSON object"),
        ({"operation": "explode"}, "unknown operation 'explode'"),
        ({"operation": "rollback", "branch": "main", "sha": "HEAD~1"}, "the full 40-character `sha`"),
        ({"operation": "rollback", "branch": "main", "sha": ""}, "the full 40-character `sha`"),
    ],
)
def test_bad_dispatch_inputs_are_one_clear_error(inputs, message):
    with pytest.raises(EventError, match=message):
        decide("workflow_dispatch", {"inputs": inputs}, PROTECTED)


def test_other_events_deploy_nothing():
    assert decide("release", {}, PROTECTED).operation == SKIP
    assert decide("delete", {"ref_type": "tag", "ref": "v1"}, PROTECTED).operation == SKIP


def test_the_schedule_and_a_dispatch_into_the_environment_of_branch_deployments_collect_garbage():
    from flowops.github.events import GC

    assert decide("schedule", {"schedule": "23 4 * * *"}, PROTECTED).operation == GC
    inputs = {"operation": "gc", "branch": "main", "environment": "staging"}
    assert decide("workflow_dispatch", {"inputs": inputs}, PROTECTED, environment_of, "staging").operation == GC
    with pytest.raises(EventError, match="gc: branch deployments live in environment 'staging', not 'production'"):
        decide(
            "workflow_dispatch", {"inputs": {**inputs, "environment": "production"}}, PROTECTED, environment_of,
            "staging",
        )  # fmt: skip


def test_outside_github_actions_reading_the_event_is_a_clear_error():
    with pytest.raises(EventError, match="GITHUB_EVENT_NAME and GITHUB_EVENT_PATH are not set"):
        read_event({})


def test_a_dispatched_bootstrap_is_a_bootstrap():
    from flowops.github.events import BOOTSTRAP

    assert decide("workflow_dispatch", payload("dispatch_bootstrap"), PROTECTED).operation == BOOTSTRAP


def test_a_pull_requests_policy_is_its_base_commit_never_its_head():
    opened = payload("pull_request_opened")
    assert decide("pull_request", opened, PROTECTED).policy_ref == "main"  # no full SHA given: the base branch
    opened["pull_request"]["base"]["sha"] = "b" * 40
    decision = decide("pull_request", opened, PROTECTED)
    assert (decision.policy_ref, decision.sha) == ("b" * 40, "HEAD_SHA")
    closed = payload("pull_request_closed")
    assert decide("pull_request", closed, PROTECTED).policy_ref == "main"


def test_a_dispatched_branch_is_governed_by_the_default_branch_and_a_bootstrap_by_its_environment():
    assert decide("workflow_dispatch", payload("dispatch_deploy"), PROTECTED).policy_ref == "main"
    bootstrap = decide("workflow_dispatch", payload("dispatch_bootstrap"), PROTECTED)
    assert bootstrap.environment == "staging"
