"""What a GitHub Actions event means for deployments: the one decision every workflow job delegates to.

    push to main / staging               deploy that environment at the pushed commit
    pull_request opened/synchronize/     deploy the PR branch's deployments, pinned to the PR head commit
      reopened (same repository)         (the plan, then the result, go to the step summary and one PR comment)
    pull_request closed, delete branch   tear the branch's deployments down
    pull_request from a fork             nothing: forks get no secrets and never deploy
    schedule (gc.yml, daily)             gc: delete the branch deployments whose branch is gone
    workflow_dispatch                    what its inputs say: deploy, plan, rollback (to `sha`, a commit of the
                                         branch), teardown, run, bootstrap, gc; a branch only into the environment
                                         it deploys (main: production, others: staging), gc only in the
                                         environment of branch deployments

The event comes as GitHub gives it: GITHUB_EVENT_NAME and the payload file at GITHUB_EVENT_PATH.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flowops.errors import FlowopsError

DEPLOY, PLAN, ROLLBACK, TEARDOWN = "deploy", "plan", "rollback", "teardown"
RUN, BOOTSTRAP, GC, SKIP = "run", "bootstrap", "gc", "skip"
_FULL_SHA = re.compile(r"[0-9a-f]{40}")
PR_DEPLOY_ACTIONS = {"opened", "synchronize", "reopened"}


class EventError(FlowopsError):
    pass


@dataclass(frozen=True)
class Decision:
    operation: str
    reason: str
    branch: str | None = None
    sha: str | None = None
    deployment: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    wait: bool = False
    pull_request: int | None = None  # the number, when a pull request's deploy comments on it
    environment: str | None = None  # a dispatched bootstrap: the environment whose Secret blocks it saves
    # The commit whose flowops.yaml and files decide what a branch deployment may use: the pull request's base,
    # the default branch for a dispatch; never the branch's own.
    policy_ref: str | None = None


def read_event(environ: Mapping[str, str] = os.environ) -> tuple[str, dict[str, Any]]:
    name, path = environ.get("GITHUB_EVENT_NAME"), environ.get("GITHUB_EVENT_PATH")
    if not name or not path:
        raise EventError("GITHUB_EVENT_NAME and GITHUB_EVENT_PATH are not set: this runs inside GitHub Actions")
    try:
        return name, json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise EventError(f"cannot read the event payload {path}: {error}") from None


def decide(
    event: str,
    payload: dict[str, Any],
    protected_branches: set[str],
    environment_of: Callable[[str], str] | None = None,
    branch_environment: str | None = None,
) -> Decision:
    """What `event` calls for (see `_decide`), with the policy read from the repository's default branch unless
    the event names a better one (a pull request's base)."""
    decision = _decide(event, payload, protected_branches, environment_of, branch_environment)
    default_branch = (payload.get("repository") or {}).get("default_branch")
    if decision.policy_ref is None and default_branch:
        return replace(decision, policy_ref=default_branch)
    return decision


def _decide(
    event: str,
    payload: dict[str, Any],
    protected_branches: set[str],
    environment_of: Callable[[str], str] | None = None,
    branch_environment: str | None = None,
) -> Decision:
    """What `event` calls for. `environment_of(branch)` names the environment a branch deploys into, and
    `branch_environment` the one branch deployments live in (where gc deletes): a dispatch that names another
    environment is refused (GitHub's environment rules see the dispatch ref, not its inputs)."""
    if event == "push":
        return _push(payload, protected_branches)
    if event == "pull_request":
        return _pull_request(payload, protected_branches)
    if event == "delete":
        if payload.get("ref_type") != "branch":
            return Decision(SKIP, f"a deleted {payload.get('ref_type')} has no deployments")
        branch = payload["ref"]
        if branch in protected_branches:
            return Decision(SKIP, f"{branch!r} is protected: deleting it does not tear its environment down")
        return Decision(TEARDOWN, "branch deleted", branch=branch)
    if event == "schedule":
        return Decision(GC, f"scheduled ({payload.get('schedule', 'cron')})")
    if event == "workflow_dispatch":
        return _dispatch(payload.get("inputs") or {}, protected_branches, environment_of, branch_environment)
    return Decision(SKIP, f"the {event!r} event deploys nothing")


def _push(payload: dict[str, Any], protected_branches: set[str]) -> Decision:
    ref = payload.get("ref", "")
    if not ref.startswith("refs/heads/"):
        return Decision(SKIP, f"{ref} is not a branch")
    branch = ref.removeprefix("refs/heads/")
    if payload.get("deleted"):
        return Decision(SKIP, "a branch deletion (the delete event tears down)")
    if branch not in protected_branches:
        return Decision(SKIP, f"{branch!r} deploys through its pull request")
    return Decision(DEPLOY, f"push to {branch}", branch=branch, sha=payload.get("after"))


def _pull_request(payload: dict[str, Any], protected_branches: set[str]) -> Decision:
    pull_request = payload["pull_request"]
    head = pull_request["head"]
    base_repository = pull_request["base"]["repo"]["full_name"]
    head_repository = (head.get("repo") or {}).get("full_name")
    number = payload.get("number", pull_request.get("number"))
    if head_repository != base_repository:
        return Decision(SKIP, f"pull request #{number} comes from a fork ({head_repository}): no secrets, no deploy")
    branch = head["ref"]
    if branch in protected_branches:
        return Decision(SKIP, f"{branch!r} deploys on its own pushes, not as a branch deployment")
    action = payload.get("action")
    base = pull_request["base"]
    policy = base.get("sha") if _FULL_SHA.fullmatch(str(base.get("sha"))) else base.get("ref")
    if action in PR_DEPLOY_ACTIONS:
        reason = f"pull request #{number} {action}"
        return Decision(DEPLOY, reason, branch=branch, sha=head["sha"], pull_request=number, policy_ref=policy)
    if action == "closed":
        return Decision(TEARDOWN, f"pull request #{number} closed", branch=branch, policy_ref=policy)
    return Decision(SKIP, f"pull request #{number} {action}: nothing to deploy")


def _dispatch(
    inputs: dict[str, Any],
    protected_branches: set[str],
    environment_of: Callable[[str], str] | None,
    branch_environment: str | None,
) -> Decision:
    operation = inputs.get("operation", DEPLOY)
    branch = inputs.get("branch") or None
    if operation == GC:
        if branch_environment and inputs.get("environment") != branch_environment:
            raise EventError(
                f"workflow_dispatch gc: branch deployments live in environment {branch_environment!r},"
                f" not {inputs.get('environment')!r}; nothing was changed"
            )
        return Decision(GC, "dispatched gc")
    if environment_of and branch and operation in (DEPLOY, PLAN, ROLLBACK, TEARDOWN):
        environment, expected = inputs.get("environment"), environment_of(branch)
        if environment != expected:
            raise EventError(
                f"workflow_dispatch {operation}: branch {branch!r} deploys into environment {expected!r},"
                f" not {environment!r}; nothing was changed"
            )
    if operation in (DEPLOY, PLAN):
        if not branch:
            raise EventError(f"workflow_dispatch {operation}: the `branch` input is empty")
        return Decision(operation, f"dispatched {operation}", branch=branch)  # the branch's head, checked out
    if operation == ROLLBACK:
        sha = inputs.get("sha") or ""
        if not branch or not _FULL_SHA.fullmatch(sha):
            raise EventError(
                "workflow_dispatch rollback: needs the `branch` and the full 40-character `sha` of one of its commits"
            )
        return Decision(ROLLBACK, f"dispatched rollback to {sha[:12]}", branch=branch, sha=sha)
    if operation == TEARDOWN:
        if not branch or branch in protected_branches:
            raise EventError(f"workflow_dispatch teardown: refusing branch {branch!r}")
        return Decision(TEARDOWN, "dispatched teardown", branch=branch)
    if operation == RUN:
        deployment = inputs.get("deployment") or ""
        try:
            parameters = json.loads(inputs.get("parameters") or "{}")
        except json.JSONDecodeError as error:
            raise EventError(f"workflow_dispatch run: the `parameters` input is not JSON: {error}") from None
        if not isinstance(parameters, dict):
            raise EventError("workflow_dispatch run: `parameters` must be a JSON object")
        wait = str(inputs.get("wait", "true")).lower() == "true"
        return Decision(RUN, "dispatched run", deployment=deployment, parameters=parameters, wait=wait)
    if operation == BOOTSTRAP:
        environment = inputs.get("environment") or None
        return Decision(
            BOOTSTRAP, f"dispatched bootstrap of {environment or 'the shared pools'}", environment=environment
        )
    raise EventError(f"workflow_dispatch: unknown operation {operation!r}")
