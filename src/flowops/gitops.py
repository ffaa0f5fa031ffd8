"""The GitOps operations behind the CLI: render, plan, deploy (validate, render, deploy, prune), teardown, gc.

Each takes the server to act on (server.ServerAPI) and returns data for the CLI to print; `prefect
deploy` runs through prefect_deploy. A deploy is all or nothing: nothing on the server changes unless every check
passes, and a `prefect deploy` that fails half-way is undone (deployments it created are deleted, the ones it
updated are restored from the snapshot taken just before).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from .automations import apply_automations, load_automations, refuse_unmanaged_automations
from .branches import branch_slug
from .entrypoints import inspect_entrypoint
from .errors import FlowopsError
from .gitrepo import is_ancestor, remote_branches, without_userinfo
from .image import ImageRef, image_name
from .lock import environment_lock
from .plan import CREATE, DELETE, UPDATE, DesiredDeployment, Plan, desired_fields, plan_changes
from .prefect_deploy import inferred_version, prefect_deploy_all
from .project import DeploymentFile, Project
from .render import (
    BRANCH_TAG_PREFIX,
    COMMIT_TAG_PREFIX,
    ENV_TAG_PREFIX,
    GIT_CLONE_STEP,
    MANAGED_TAG,
    PROJECT_TAG_PREFIX,
    SHORT_SHA_LENGTH,
    Rendered,
    ownership_tags,
)
from .server import LiveDeployment, PrefectAPIError, ServerAPI
from .server_checks import REGISTRY_CREDENTIALS_VARIABLE, ServerFacts, check_against_server, owned_elsewhere
from .validate import Problem, validate_file, validate_project


class ValidationFailed(FlowopsError):
    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class DeployFailed(FlowopsError):
    """`prefect deploy` failed; the server was put back as it was. `output` is Prefect's own output."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output


class Refused(FlowopsError):
    pass


def check_rendered(project: Project, rendered: Rendered) -> list[Problem]:
    """The committed file's checks (and names unique across files), then the same checks on the rendered file."""
    problems = validate_project(project, rendered.target.branch)
    if not problems:
        problems = validate_file(project, DeploymentFile(rendered.label, rendered.content), committed=False)
    return problems


def desired_deployments(project: Project, rendered: Rendered) -> list[DesiredDeployment]:
    from prefect.utilities.templating import apply_values

    desired = []
    versions: dict[str | None, str | None] = {}  # inferred once per version_type, not once per deployment
    for deployment in rendered.content["deployments"]:
        # a dict in, a dict out (NotSet is only ever returned for a NotSet value)
        spec = cast(dict[str, Any], apply_values(deployment, dict(os.environ), remove_notset=False))
        pull = deployment.get("pull", rendered.content.get("pull")) or []
        version_type = spec.get("version_type")
        if version_type not in versions:
            versions[version_type] = inferred_version(project.root, version_type)
        flow = inspect_entrypoint(project.root, deployment["entrypoint"])
        desired.append(DesiredDeployment(spec, pull, flow, versions[version_type]))
    return desired


def plan(server: ServerAPI, project: Project, rendered: Rendered, rollback: bool = False) -> Plan:
    """Compare the rendered file with the server. Raises ValidationFailed when the file could not be deployed,
    Refused when it would deploy an older commit than the one deployed (unless `rollback`)."""
    return _plan_and_live(server, project, rendered, rollback).plan


@dataclass(frozen=True)
class _Planned:
    """A plan and what it was made from: deploy's undo snapshot (`live_by_name`) and prune list."""

    plan: Plan
    facts: ServerFacts
    desired: list[DesiredDeployment]
    live_by_name: dict[str, LiveDeployment]
    live_of_branch: list[LiveDeployment]


def _plan_and_live(server: ServerAPI, project: Project, rendered: Rendered, rollback: bool) -> _Planned:
    problems = check_rendered(project, rendered)
    if problems:
        raise ValidationFailed(problems)
    problems, facts = check_against_server(server, project, rendered)
    if problems:
        raise ValidationFailed(problems)
    desired = desired_deployments(project, rendered)
    live_by_name = server.read_deployments_by_name([d.full_name for d in desired])
    problems = owned_elsewhere(rendered, live_by_name)
    if problems:
        raise ValidationFailed(problems)
    _refuse_going_back(project, rendered, list(live_by_name.values()), rollback)
    live_of_branch = server.read_tagged_deployments(ownership_tags(project.config.project, rendered.target.branch))
    slug = branch_slug(rendered.target.branch)
    the_plan = plan_changes(rendered.target.branch, slug, desired, live_by_name, live_of_branch)
    block = project.config.image.registry_credentials if project.config.image else None
    logging_in = [
        f"work pool {pool!r}: its workers log in to the registry with block {block!r} (registry_credentials default)"
        for pool in facts.pools_to_log_in
    ]
    return _Planned(replace(the_plan, pool_changes=logging_in), facts, desired, live_by_name, live_of_branch)


def deployed_commit(live: LiveDeployment) -> str | None:
    """The commit a live deployment is pinned to (None when it tracks a branch)."""
    for step in live.fields.get("pull_steps") or []:
        clone = step.get(GIT_CLONE_STEP) if isinstance(step, dict) else None
        if isinstance(clone, dict) and clone.get("commit_sha"):
            return str(clone["commit_sha"])
    return None


def _refuse_going_back(project: Project, rendered: Rendered, live: list[LiveDeployment], rollback: bool) -> None:
    """Deploying a commit older than the deployed one is a rollback, and only happens when asked for: a late
    CI job of an earlier push must not undo a later one."""
    if rollback:
        return
    first_runner: dict[
        str | None, LiveDeployment
    ] = {}  # each deployed commit is checked once, however many deployments run it
    for deployment in live:
        first_runner.setdefault(deployed_commit(deployment), deployment)
    for deployed, deployment in first_runner.items():
        if deployed is None or deployed == rendered.sha:
            continue
        if is_ancestor(project.root, rendered.sha, deployed):
            raise Refused(
                f"{deployment.full_name} runs commit {deployed[:12]}, which comes after {rendered.sha[:12]}:"
                " deploying it would go back in history; pass --rollback to mean it. Nothing was changed"
            )


@dataclass
class DeployResult:
    plan: Plan
    pools_created: list[str] = field(default_factory=list)
    deployed: bool = False
    moved: int = 0  # deployments moved to the commit through the API (the rest went through `prefect deploy`)
    prefect_output: str = ""


def deploy(
    server: ServerAPI,
    project: Project,
    rendered: Rendered,
    force: bool = False,
    on_plan: Callable[[Plan], None] | None = None,
    rollback: bool = False,
) -> DeployResult:
    """Validate, plan, make sure pools exist, `prefect deploy --all`, prune. All or nothing, under the
    environment's lock. `on_plan` sees the plan before anything changes (to show it on the pull request)."""
    target = rendered.target
    purpose = f"{'rollback' if rollback else 'deploy'} {target.branch} @ {rendered.sha[:8]}"
    with environment_lock(server, target.project, target.environment, purpose):
        return _deploy(server, project, rendered, force, on_plan, rollback)


def _deploy(
    server: ServerAPI,
    project: Project,
    rendered: Rendered,
    force: bool,
    on_plan: Callable[[Plan], None] | None,
    rollback: bool,
) -> DeployResult:
    planned = _plan_and_live(server, project, rendered, rollback)
    the_plan, before = planned.plan, planned.live_by_name
    if on_plan:
        on_plan(the_plan)
    result = DeployResult(the_plan)
    for pool, pool_type in planned.facts.pools_to_create.items():
        if server.ensure_work_pool(pool, pool_type):
            result.pools_created.append(pool)
    for pool in planned.facts.pools_to_log_in:  # before the deployments: their first runs may need to pull
        server.set_pool_default(pool, REGISTRY_CREDENTIALS_VARIABLE, planned.facts.registry_reference)

    if the_plan.needs_deploy or force:
        names = [change.full_name for change in the_plan.changes if change.action != DELETE]
        # A deployment that only moves to this commit gets its pin, tags, version and description through the
        # API; `prefect deploy` (which rewrites every field and schedule) runs only for what is new or defined
        # differently, or for everything when forced.
        pins = set() if force else {change.full_name for change in the_plan.pins_only()}
        changed = {change.full_name for change in the_plan.changes if change.action in (CREATE, UPDATE)}
        redefined = set(names) if force else changed - pins
        by_name = {d.full_name: d for d in planned.desired}
        outcome = None
        if redefined:  # the rendered file, less the deployments that need not be redefined (desired is in its order)
            kept = [
                raw
                for d, raw in zip(planned.desired, rendered.content["deployments"], strict=True)
                if d.full_name in redefined
            ]
            subset = {**rendered.content, "deployments": kept}
            with tempfile.TemporaryDirectory(prefix="flowops-") as folder:
                prefect_file = Path(folder) / "prefect.yaml"
                prefect_file.write_text(replace(rendered, content=subset).as_yaml())
                outcome = prefect_deploy_all(prefect_file, project.root)
            result.prefect_output = outcome.output
        failure = None if outcome is None or outcome.succeeded else f"prefect deploy exited with {outcome.exit_code}"
        if failure is None and pins:
            try:
                server.move_to_commit({before[name].id: _pin_fields(by_name[name]) for name in sorted(pins)})
            except PrefectAPIError as error:
                failure = str(error)
        if failure:
            try:
                _undo(server, names, before, rendered)
            except PrefectAPIError as error:
                raise DeployFailed(f"{failure}, and undoing it failed: {error}", result.prefect_output) from None
            raise DeployFailed(f"{failure}; the server was put back as it was", result.prefect_output)
        result.deployed = True
        result.moved = len(pins)

    stale = {change.full_name for change in the_plan.of(DELETE)}
    if stale:
        server.delete_deployments([d for d in planned.live_of_branch if d.full_name in stale])
    return result


def _pin_fields(desired: DesiredDeployment) -> dict[str, Any]:
    """What moving a deployment to the rendered commit writes, as `prefect deploy` would write those fields. The
    description too: Prefect creates a deployment whose flow has none with the text 'None', and its update writes
    null; the plan does not tell them apart, so the move writes what an update would."""
    fields = desired_fields(desired)
    moved = {"tags": desired.spec.get("tags") or [], "pull_steps": desired.pull_steps}
    moved["description"] = fields.get("description")
    if "version" in fields:
        moved["version"] = fields["version"]
    return moved


def _undo(server: ServerAPI, names: list[str], before: dict[str, LiveDeployment], rendered: Rendered) -> None:
    """Put back only what this deploy wrote: the deployments it was to create or update (`names`) that now
    carry its commit tag and differ from the snapshot. Anything else is left as it is."""
    ours = COMMIT_TAG_PREFIX + rendered.sha[:SHORT_SHA_LENGTH]
    after = server.read_deployments_by_name(names)
    written = {name: live for name, live in after.items() if ours in live.tags}
    server.delete_deployments([live for name, live in written.items() if name not in before])
    for name, live in written.items():
        snapshot = before.get(name)
        if snapshot and (live.fields, live.schedules) != (snapshot.fields, snapshot.schedules):
            server.restore_deployment(snapshot)


def teardown(server: ServerAPI, project: Project, branch: str, force: bool = False) -> list[LiveDeployment]:
    """Delete every deployment of this project's `branch` (tagged flowops, project:<id> and branch:<slug>)
    and nothing else."""
    if branch in project.protected_branches() and not force:
        raise Refused(f"{branch!r} is a protected branch (it deploys an environment); pass --force to tear it down")
    with environment_lock(server, project.config.project, project.target(branch).environment, f"teardown {branch}"):
        live = server.read_tagged_deployments(ownership_tags(project.config.project, branch))
        server.delete_deployments(live)
    return live


def collect_garbage(
    server: ServerAPI, project: Project, repository: str, dry_run: bool = False, token: str | None = None
) -> list[LiveDeployment]:
    """Delete this project's branch deployments whose branch `repository` no longer has (a missed delete event, a
    failed teardown); with `dry_run`, only say which. Protected branches' deployments are never touched, and a
    listing that lacks a protected branch (a wrong URL, an empty mirror) deletes nothing."""
    environment = project.config.branch_deployments_from
    with environment_lock(server, project.config.project, environment, f"gc of {environment}"):
        # Listed under the lock: any deploy that finished before it pushed its branch before this listing.
        branches = remote_branches(project.root, repository, token)
        missing = sorted(project.protected_branches() - branches)
        if missing:
            raise Refused(
                f"{without_userinfo(repository)} has no branch {missing[0]!r}, which deploys an environment:"
                " is it the right repository? nothing was deleted"
            )
        kept = {BRANCH_TAG_PREFIX + branch_slug(branch) for branch in branches}
        owned = [MANAGED_TAG, PROJECT_TAG_PREFIX + project.config.project, ENV_TAG_PREFIX + environment]
        orphans = [
            deployment
            for deployment in server.read_tagged_deployments(owned)
            if not any(tag in kept for tag in deployment.tags)
            and any(tag.startswith(BRANCH_TAG_PREFIX) for tag in deployment.tags)
        ]
        if not dry_run:
            server.delete_deployments(orphans)
    return orphans


def bootstrap(
    server: ServerAPI,
    project: Project,
    pools: dict[str, str] | None,
    defaults: dict[str, Any],
    github_block: str,
    environ: Mapping[str, str],
) -> list[str]:
    """Create the work pools (`pools`, else every pool flowops.yaml declares; `defaults` for a new pool's job
    variables) and save the blocks the deployments need from the environment: each Secret block flowops.yaml's
    `secrets` names, the GitHubCredentials block workers clone with ($FLOWOPS_GIT_TOKEN) and the registry login
    Docker workers pull with ($REGISTRY_USERNAME / $REGISTRY_PASSWORD); then apply the automations flowops.yaml
    names (automations.py), checked before anything is changed. One line per pool, block and automation, saying
    what was done; never a value."""
    automations, problems = load_automations(project)
    if problems:
        raise ValidationFailed(problems)
    refuse_unmanaged_automations(server, automations)
    lines = []
    for name, pool_type in (pools or {n: p.type for n, p in project.config.work_pools.items()}).items():
        created = server.ensure_work_pool(name, pool_type, defaults)
        lines.append(f"work pool {name!r} ({pool_type}): {'created' if created else 'exists'}")
    saves: list[tuple[str, str, Callable[[str, str], bool]]] = [
        (variable, block, server.save_secret_block) for block, variable in project.config.secrets.items()
    ]
    # never GITHUB_TOKEN: in a shell that is often a person's own token, which must not go into a shared block
    saves.append(("FLOWOPS_GIT_TOKEN", github_block, server.save_github_credentials_block))
    for variable, block, save in saves:
        value = environ.get(variable)
        if value:
            lines.append(f"block {block!r}: {'created' if save(block, value) else 'updated'} from ${variable}")
        else:
            lines.append(f"block {block!r}: skipped (${variable} is not set)")
    registry_block = project.config.image.registry_credentials if project.config.image else None
    if registry_block:  # a private image: Docker workers log in to its registry with this block
        username, password = environ.get("REGISTRY_USERNAME"), environ.get("REGISTRY_PASSWORD")
        if username and password:
            registry = ImageRef(image_name(project), "").login_registry
            created = server.save_registry_credentials_block(registry_block, username, password, registry)
            done = "created" if created else "updated"
            lines.append(
                f"block {registry_block!r}: {done} for registry {registry} from $REGISTRY_USERNAME and"
                " $REGISTRY_PASSWORD"
            )
        else:
            unset = " and ".join(f"${v}" for v in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD") if not environ.get(v))
            lines.append(f"block {registry_block!r}: skipped ({unset} not set)")
    return lines + apply_automations(server, project, automations)
