"""The GitOps operations behind the CLI: render, plan, deploy (validate, render, deploy, prune), teardown, gc.

Each takes the server to act on (server.ServerAPI) and returns data for the CLI to print; `prefect
deploy` runs through prefect_deploy. A deploy is all or nothing: nothing on the server changes unless every check
passes, and a `prefect deploy` that fails half-way is undone (deployments it created are deleted, the ones it
updated are restored from the snapshot taken just before).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from flowops.api.server import LiveDeployment, PrefectAPIError, RunResult, ServerAPI
from flowops.checks.boundaries import (
    branch_deployment_problems,
    environment_blocks,
    parameter_blocks,
    policy_differences,
)
from flowops.checks.server_checks import (
    REGISTRY_CREDENTIALS_VARIABLE,
    ServerFacts,
    check_against_server,
    owned_elsewhere,
)
from flowops.checks.validate import validate_file, validate_project
from flowops.config.entrypoints import inspect_entrypoint
from flowops.config.problems import Problem
from flowops.config.project import Cleanup, DeploymentFile, Project
from flowops.deploy.lock import environment_lock
from flowops.deploy.plan import CREATE, DELETE, UPDATE, DesiredDeployment, Plan, desired_fields, plan_changes
from flowops.deploy.prefect_deploy import inferred_version, prefect_deploy_all
from flowops.deploy.unchanged import record_name
from flowops.errors import DeployFailed, FlowopsError, ValidationFailed
from flowops.extras import missing_for_pool, require
from flowops.gitrepo import is_ancestor, remote_branches, without_userinfo
from flowops.render.automations import apply_automations, load_automations, refuse_unmanaged_automations
from flowops.render.branches import branch_slug, data_environment_of_slug
from flowops.render.image import ImageRef, image_name
from flowops.render.prefect_yaml import (
    BRANCH_TAG_PREFIX,
    COMMIT_TAG_PREFIX,
    ENV_TAG_PREFIX,
    GIT_CLONE_STEP,
    MANAGED_TAG,
    PROJECT_TAG_PREFIX,
    SHORT_SHA_LENGTH,
    Rendered,
    fill_branch_values,
    ownership_tags,
)
from flowops.timings import phase


class Refused(FlowopsError):
    pass


def check_rendered(project: Project, rendered: Rendered) -> list[Problem]:
    """The committed file's checks (and names unique across files), then the same checks on the rendered file."""
    if rendered.target.is_branch_deployment:  # first: the rest is moot when the branch rewrote its policy
        problems = policy_differences(project)
        if problems:
            return problems
    problems = validate_project(project, rendered.target.branch)
    if not problems:
        problems = validate_file(project, DeploymentFile(rendered.label, rendered.content), committed=False)
    if not problems and rendered.target.is_branch_deployment:
        problems = branch_deployment_problems(project, rendered)
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
    with phase("validate"):
        problems = check_rendered(project, rendered)
    if problems:
        raise ValidationFailed(problems)
    with phase("server checks"):
        problems, facts = check_against_server(server, project, rendered)
    if problems:
        raise ValidationFailed(problems)
    with phase("entrypoints (flows, parameter schemas, version)"):
        desired = desired_deployments(project, rendered)
    with phase("reading the deployments"):
        live_by_name = server.read_deployments_by_name([d.full_name for d in desired])
    problems = owned_elsewhere(rendered, live_by_name)
    if problems:
        raise ValidationFailed(problems)
    _refuse_going_back(project, rendered, list(live_by_name.values()), rollback)
    with phase("reading the deployments"):
        live_of_branch = server.read_tagged_deployments(ownership_tags(project.config.project, rendered.target.branch))
    slug = branch_slug(rendered.target.branch)
    the_plan = plan_changes(rendered.target.branch, slug, desired, live_by_name, live_of_branch)
    block = project.config.image.registry_credentials if project.config.image else None
    logging_in = [
        f"work pool {pool!r}: its workers log in to the registry with block {block!r} (registry_credentials default)"
        for pool in facts.pools_to_log_in
    ]
    warnings = []
    if rendered.data_left_behind:
        warnings.append(
            f"flowops.yaml declares no branch_environments.cleanup: data environment {rendered.data_environment}"
            " stays when the branch goes"
        )
    the_plan = replace(the_plan, pool_changes=logging_in, data_environment=rendered.data_environment, warnings=warnings)
    return _Planned(the_plan, facts, desired, live_by_name, live_of_branch)


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
    on_deployed: Callable[[], None] | None = None,
) -> DeployResult:
    """Validate, plan, make sure pools exist, `prefect deploy --all`, prune. All or nothing, under the
    environment's lock. `on_plan` sees the plan before anything changes (to show it on the pull request);
    `on_deployed` runs once it all succeeded, still under the lock (to record what the server holds then)."""
    target = rendered.target
    purpose = f"{'rollback' if rollback else 'deploy'} {target.branch} @ {rendered.sha[:8]}"
    with environment_lock(server, target.project, target.environment, purpose):
        result = _deploy(server, project, rendered, force, on_plan, rollback)
        if on_deployed:
            on_deployed()
        return result


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
                with phase(f"prefect deploy ({len(kept)})"):
                    outcome = prefect_deploy_all(prefect_file, project.root)
            result.prefect_output = outcome.output
        failure = None if outcome is None or outcome.succeeded else f"prefect deploy exited with {outcome.exit_code}"
        if failure is None and pins:
            try:
                with phase(f"moving pins ({len(pins)})"):
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


RESERVED_DATA_ENVIRONMENTS = {"public", "information_schema"}  # PostgreSQL's: never a branch's


@dataclass(frozen=True)
class DataCleanup:
    """What a branch environment's cleanup did: `dropped` is False when it failed, timed out or was refused."""

    environment: str  # the data environment's name
    deployment: str  # the cleanup deployment, flow/name
    dropped: bool
    message: str


@dataclass
class TeardownResult:
    deleted: list[LiveDeployment]
    cleanups: list[DataCleanup] = field(default_factory=list)
    kept: list[LiveDeployment] = field(default_factory=list)  # cleanup deployments kept for gc to run again
    cancelled: list[str] = field(default_factory=list)  # the branch's runs that had not ended: stopped first
    problems: list[str] = field(default_factory=list)  # why nothing of a branch was deleted

    @property
    def complete(self) -> bool:
        return not self.problems and all(cleanup.dropped for cleanup in self.cleanups)


def teardown(server: ServerAPI, project: Project, branch: str, force: bool = False) -> TeardownResult:
    """Drop the branch's data environment (its cleanup deployment's run), then delete every deployment of this
    project's `branch` (tagged flowops, project:<id> and branch:<slug>) and nothing else. A cleanup that fails
    keeps its deployment, so gc finds the branch again and retries it."""
    if branch in project.protected_branches() and not force:
        raise Refused(f"{branch!r} is a protected branch (it deploys an environment); pass --force to tear it down")
    with environment_lock(server, project.config.project, project.target(branch).environment, f"teardown {branch}"):
        live = server.read_tagged_deployments(ownership_tags(project.config.project, branch))
        if branch in project.protected_branches():
            server.delete_deployments(live)
            server.delete_variable(record_name(project.config.project, branch_slug(branch)))
            return TeardownResult(live)
        return _drop_branch(server, project, branch_slug(branch), live, {"branch": branch})


def _drop_branch(
    server: ServerAPI, project: Project, slug: str, live: list[LiveDeployment], values: dict[str, str]
) -> TeardownResult:
    """Stop the branch's runs, run its cleanup (when flowops.yaml declares one and the branch has deployments), then
    delete its deployments, all but the cleanup's own when it did not succeed. A run that does not stop leaves
    everything in place, so a teardown or gc tries again."""
    cancelled, going = stop_runs(server, live, RUNS_STOP_SECONDS)
    if going:
        problem = (
            f"{len(going)} run(s) of the branch had not stopped {RUNS_STOP_SECONDS:g} s after being cancelled, so"
            f" nothing of it was dropped or deleted (they would write into a dropped environment): {'; '.join(going)};"
            " tear it down again once they have ended (gc does, once the branch is gone)"
        )
        return TeardownResult([], cancelled=cancelled, problems=[problem])
    branch_environments = project.policy_config.branch_environments
    cleanup = branch_environments.cleanup if branch_environments else None
    server.delete_variable(record_name(project.config.project, slug))  # the last deploy's record goes first
    if cleanup is None or branch_environments is None or not live:
        server.delete_deployments(live)
        return TeardownResult(live, cancelled=cancelled)
    environment = data_environment_of_slug(branch_environments.prefix, slug)
    runner = next((d for d in live if d.name == f"{cleanup.deployment}-{slug}"), None)
    outcome = run_cleanup(server, project, cleanup, environment, runner, {**values, "slug": slug})
    kept = [runner] if runner is not None and not outcome.dropped else []
    deleted = [d for d in live if d not in kept]
    server.delete_deployments(deleted)
    return TeardownResult(deleted, [outcome], kept, cancelled)


RUNS_STOP_SECONDS = 120.0  # over 20 times what a process worker takes to stop a run (stop_runs)
STOP_POLL_SECONDS = 0.5


def stop_runs(server: ServerAPI, deployments: list[LiveDeployment], timeout: float) -> tuple[list[str], list[str]]:
    """Cancel every run of `deployments` that has not ended, and wait until each has: a branch's run must not write
    into its data environment after the cleanup dropped it (a load would make it again, and nothing would ever drop
    it), nor start once its deployment is gone. Returns the runs cancelled, and those not ended at `timeout`.

    A run not started yet is Cancelled at once; a running one is set Cancelling, and the process that runs it kills
    it (its cancellation observer; measured on a process worker: Cancelled 5.2 to 5.7 s after, 3 runs). `timeout`
    leaves room for a flow's own cancellation hooks; a Cancelling run whose worker is gone never ends: reported."""
    runs = server.unfinished_runs([deployment.id for deployment in deployments])
    for run in runs:
        server.cancel_run(run.flow_run_id)
    cancelled = [described(run, deployments) for run in runs]
    deadline = time.monotonic() + timeout
    going = runs
    while going:
        going = [run for run in (server.read_run(run.flow_run_id) for run in going) if not run.ended]
        if not going or time.monotonic() > deadline:
            break
        time.sleep(STOP_POLL_SECONDS)
    return cancelled, [described(run, deployments) for run in going]


def described(run: RunResult, deployments: list[LiveDeployment]) -> str:
    """`run NAME of FLOW/DEPLOYMENT (STATE)`."""
    name = next((d.full_name for d in deployments if d.id == run.deployment_id), "?")
    return f"run {run.flow_run_name} of {name} ({run.state_name})"


def run_cleanup(
    server: ServerAPI,
    project: Project,
    cleanup: Cleanup,
    environment: str,
    runner: LiveDeployment | None,
    values: dict[str, str],
) -> DataCleanup:
    name = f"{cleanup.deployment}-{values['slug']}"
    full_name = runner.full_name if runner else name
    refusal = not_a_branch_environment(project, environment)
    if refusal:
        return DataCleanup(environment, full_name, False, refusal)
    if runner is None:
        return DataCleanup(
            environment, full_name, False, f"the branch has no deployment {name!r} to drop it with; drop it by hand"
        )
    parameters = fill_branch_values(cleanup.parameters, {**values, "environment": environment})
    try:
        result = server.run_deployment(runner.full_name, parameters, wait=True, timeout=cleanup.timeout)
    except PrefectAPIError as error:
        return DataCleanup(environment, full_name, False, str(error))
    if result.completed:
        return DataCleanup(environment, full_name, True, f"run {result.flow_run_name} Completed")
    if result.ended:
        message = f"run {result.flow_run_name} ended {result.state_name}: {' '.join((result.message or '').split())}"
        return DataCleanup(environment, full_name, False, message)
    # Left Scheduled, it would start whenever a worker came, alongside the run gc starts to retry it (two drops of
    # one environment at once).
    gave_up = give_up_on(server, result, cleanup.timeout, runner.fields.get("work_pool_name"))
    return DataCleanup(environment, full_name, False, f"run {result.flow_run_name} {gave_up}")


def give_up_on(server: ServerAPI, run: RunResult, timeout: float, work_pool: str | None) -> str:
    """Cancel `run`, which did not end within `timeout` seconds (so it never starts or writes later), and say so."""
    try:
        server.cancel_run(run.flow_run_id)
        cancelled = "cancelled"
    except PrefectAPIError as error:
        cancelled = f"cancelling it failed: {error}"
    hint = f": is a worker serving work pool {work_pool!r}?" if run.state_type == "SCHEDULED" and work_pool else ""
    return f"did not end within {timeout:g} s (still {run.state_name}{hint}); {cancelled}"


def not_a_branch_environment(project: Project, environment: str) -> str | None:
    """Why `environment` must never be dropped as a branch's, or None: PostgreSQL's own schemas, and any name the
    protected environments' files give their flows (staging's or production's schema) are refused."""
    if environment in RESERVED_DATA_ENVIRONMENTS or environment.startswith("pg_"):
        return f"{environment!r} is never a branch environment: refused"
    for name, file in project.policy.files.items():
        for deployment in file.deployments():
            parameters = deployment.get("parameters")
            if isinstance(parameters, dict) and environment in [v for v in parameters.values() if isinstance(v, str)]:
                return f"{environment!r} is what environment {name!r} loads into ({file.path}): refused"
    return None


@dataclass
class GarbageResult:
    deleted: list[LiveDeployment]  # with dry_run: what would be
    cleanups: list[DataCleanup] = field(default_factory=list)
    kept: list[LiveDeployment] = field(default_factory=list)
    would_drop: list[str] = field(default_factory=list)  # dry_run: the data environments a run would drop
    cancelled: list[str] = field(default_factory=list)  # with dry_run: the runs a run would cancel
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems and all(cleanup.dropped for cleanup in self.cleanups)


def collect_garbage(
    server: ServerAPI, project: Project, repository: str, dry_run: bool = False, token: str | None = None
) -> GarbageResult:
    """Drop the data and delete the deployments of this project's branches that `repository` no longer has (a
    missed delete event, a failed teardown, a cleanup that failed: its deployment is kept, so it is found again);
    with `dry_run`, only say which. Every branch deployment of the project is considered, whatever its `env:`
    tag; protected branches' deployments are never touched, and a listing that lacks a protected branch (a wrong
    URL, an empty mirror) deletes nothing."""
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
        kept = {branch_slug(branch) for branch in branches}
        by_slug: dict[str, list[LiveDeployment]] = {}
        for deployment in server.read_tagged_deployments([MANAGED_TAG, PROJECT_TAG_PREFIX + project.config.project]):
            slugs = [
                tag.removeprefix(BRANCH_TAG_PREFIX) for tag in deployment.tags if tag.startswith(BRANCH_TAG_PREFIX)
            ]
            if slugs and slugs[0] not in kept:
                by_slug.setdefault(slugs[0], []).append(deployment)
        result = GarbageResult([])
        branch_environments = project.policy_config.branch_environments
        for slug, orphans in sorted(by_slug.items()):
            if dry_run:
                result.deleted += orphans
                result.cancelled += [described(run, orphans) for run in server.unfinished_runs([d.id for d in orphans])]
                if branch_environments and branch_environments.cleanup:
                    result.would_drop.append(data_environment_of_slug(branch_environments.prefix, slug))
                continue
            dropped = _drop_branch(server, project, slug, orphans, {"branch": slug})
            result.deleted += dropped.deleted
            result.cleanups += dropped.cleanups
            result.kept += dropped.kept
            result.cancelled += dropped.cancelled
            result.problems += dropped.problems
    return result


def refuse_other_environments_blocks(
    server: ServerAPI, project: Project, full_name: str, parameters: Mapping[str, Any]
) -> None:
    """A run of one of this project's deployments names, in its `*_block` parameters, only blocks of the
    deployment's own environment: a run parameter (a dispatch input) must not point a branch's run at production's
    database. Deployments of other projects, or made by hand, are not flowops' to judge."""
    live = server.read_deployments_by_name([full_name]).get(full_name)
    if live is None or PROJECT_TAG_PREFIX + project.config.project not in live.tags:
        return
    environments = [tag.removeprefix(ENV_TAG_PREFIX) for tag in live.tags if tag.startswith(ENV_TAG_PREFIX)]
    environment = environments[0] if environments else None
    if environment not in project.policy.files:
        return
    allowed = environment_blocks(project.policy, environment)
    for parameter, block in sorted(parameter_blocks({"parameters": dict(parameters)}).items()):
        if block not in allowed:
            owner = project.policy.config.secret_owner(block)
            raise Refused(
                f"parameter {parameter}: block {block!r} is not a block of environment {environment!r}"
                + (f" (it belongs to {owner!r})" if owner else "")
                + f": a run of {full_name} uses only its environment's blocks; nothing was started"
            )


class MissingSecrets(FlowopsError):
    pass


def block_owner_variable(block: str) -> str:
    """The Variable recording which project's environment a Secret block belongs to (Variable names allow
    letters, digits, - and _: the slug hashes anything else)."""
    return f"flowops-block-{branch_slug(block)}"


def bootstrap(
    server: ServerAPI,
    project: Project,
    pools: dict[str, str] | None,
    defaults: dict[str, Any],
    github_block: str,
    environ: Mapping[str, str],
    environment: str | None = None,
    allow_missing: bool = False,
) -> list[str]:
    """Create the work pools (`pools`, else every pool flowops.yaml declares; `defaults` for a new pool's job
    variables) and save the blocks the deployments need from the environment: with `environment`, each Secret
    block that environment declares (its `secrets`); the GitHubCredentials block workers clone with
    ($FLOWOPS_GIT_TOKEN) and the registry login Docker workers pull with ($REGISTRY_USERNAME /
    $REGISTRY_PASSWORD); then apply the automations flowops.yaml names (automations.py). Everything is checked
    before anything is changed: the automations file, that every secret's variable is set (unless
    `allow_missing`), and that no block belongs to another environment or project. One line per pool, block and
    automation, saying what was done; never a value."""
    automations, problems = load_automations(project)
    if problems:
        raise ValidationFailed(problems)
    secrets = _environment_secrets(project, environment)
    missing = sorted(
        f"${variable} (block {block!r})" for block, variable in secrets.items() if not environ.get(variable)
    )
    if missing and not allow_missing:
        raise MissingSecrets(
            f"environment {environment!r}: {', '.join(missing)} not set; nothing was changed (set it from the"
            " environment's secrets, or pass --allow-missing to save the others)"
        )
    owner = {"project": project.config.project, "environment": environment}
    for block in secrets:
        recorded = server.read_variable(block_owner_variable(block))
        if isinstance(recorded, dict) and {k: recorded.get(k) for k in owner} != owner:
            raise Refused(
                f"Secret block {block!r} belongs to environment {recorded.get('environment')!r} of project"
                f" {recorded.get('project')!r}, not to {environment!r} of {project.config.project!r}: rename it in"
                " flowops.yaml; nothing was changed"
            )
    refuse_unmanaged_automations(server, automations)
    registry_block = project.config.image.registry_credentials if project.config.image else None
    if environ.get("FLOWOPS_GIT_TOKEN"):
        require("github", "$FLOWOPS_GIT_TOKEN is set: its GitHubCredentials block")
    if registry_block and environ.get("REGISTRY_USERNAME") and environ.get("REGISTRY_PASSWORD"):
        require("docker", f"image.registry_credentials: the DockerRegistryCredentials block {registry_block!r}")
    for pool_type in set((pools or {n: p.type for n, p in project.config.work_pools.items()}).values()):
        extra = missing_for_pool(pool_type)
        if extra:
            require(extra, f"a {pool_type} work pool's job template")
    lines = []
    for name, pool_type in (pools or {n: p.type for n, p in project.config.work_pools.items()}).items():
        created = server.ensure_work_pool(name, pool_type, defaults)
        lines.append(f"work pool {name!r} ({pool_type}): {'created' if created else 'exists'}")
    for block, variable in secrets.items():
        value = environ.get(variable)
        if not value:
            lines.append(f"block {block!r}: skipped (${variable} is not set; --allow-missing)")
            continue
        done = "created" if server.save_secret_block(block, value) else "updated"
        tags = [MANAGED_TAG, PROJECT_TAG_PREFIX + project.config.project, ENV_TAG_PREFIX + str(environment)]
        server.create_variable(block_owner_variable(block), {**owner, "block": block}, tags)
        lines.append(f"block {block!r}: {done} from ${variable} (environment {environment})")
    if environment is None:
        declaring = [name for name, env in project.config.environments.items() if env.secrets]
        if declaring:
            lines.append(
                f"Secret blocks: none saved (each environment's come from its own secrets): run"
                f" `flowops bootstrap --environment {declaring[0]}` for each of {', '.join(declaring)}"
            )
    # never GITHUB_TOKEN: in a shell that is often a person's own token, which must not go into a shared block
    token = environ.get("FLOWOPS_GIT_TOKEN")
    if token:
        done = "created" if server.save_github_credentials_block(github_block, token) else "updated"
        lines.append(f"block {github_block!r}: {done} from $FLOWOPS_GIT_TOKEN")
    else:
        lines.append(f"block {github_block!r}: skipped ($FLOWOPS_GIT_TOKEN is not set)")
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


def _environment_secrets(project: Project, environment: str | None) -> dict[str, str]:
    if environment is None:
        return {}
    declared = project.config.environments.get(environment)
    if declared is None:
        raise Refused(
            f"--environment {environment!r}: not an environment of flowops.yaml"
            f" ({', '.join(project.config.environments)})"
        )
    return dict(declared.secrets)
