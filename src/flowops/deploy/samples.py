"""What a pull request proves on data: its sample runs, and their results beside staging's.

After a pull request's branch deploy, each branch deployment the plan created or updated, and that flowops.yaml
names under `branch_environments.sample_runs`, runs once with the sample's parameters (a small sample of the
data). First, unless `reset: false`, the branch's runs that have not ended are stopped and its cleanup empties its
data environment, so a changed transform is never hidden behind rows the last push loaded. The runs start together and are waited for up to the
sample's `timeout`; one that has not ended by then is cancelled, so it never writes after its branch is gone.

A flow takes part by publishing its summary as a table artifact under the key `flowops-summary`, rows of
`{"measure": ..., "value": ...}`:

    create_table_artifact([{"measure": "rows loaded", "value": 10000}], key="flowops-summary")

The pull request's comment then shows each run's state, duration and link, and its summary beside the one of
the latest Completed run of the deployment it was made from (staging's), differences marked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from flowops.api.server import PrefectAPIError, RunResult, ServerAPI
from flowops.config.entrypoints import EntrypointError, inspect_entrypoint
from flowops.config.project import Project, SampleRuns
from flowops.deploy import gitops
from flowops.deploy.gitops import DataCleanup, give_up_on, run_cleanup, stop_runs
from flowops.deploy.plan import CREATE, UPDATE, Plan
from flowops.render.branches import branch_slug
from flowops.render.prefect_yaml import Rendered, branch_values, fill_branch_values, ownership_tags

SUMMARY_ARTIFACT_KEY = "flowops-summary"
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class SampleRun:
    """One changed branch deployment's sample run, and what it is compared with."""

    deployment: str  # the branch deployment, flow/name
    baseline_deployment: str  # the deployment it was made from (staging's), flow/name
    work_pool: str | None
    run: RunResult | None = None  # None: it never started (see `problem`)
    problem: str | None = None  # why it is not a success, in one line
    summary: dict[str, str] | None = None
    baseline: RunResult | None = None
    baseline_summary: dict[str, str] | None = None
    note: str | None = None  # what kept a summary from being read (the run's outcome stands)

    @property
    def succeeded(self) -> bool:
        return self.problem is None and self.run is not None and self.run.completed


@dataclass
class SampleReport:
    runs: list[SampleRun] = field(default_factory=list)
    reset: DataCleanup | None = None  # the cleanup run before the samples, when flowops.yaml asks for one
    not_sampled: list[str] = field(default_factory=list)  # changed deployments that declare no sample

    @property
    def succeeded(self) -> bool:
        return (self.reset is None or self.reset.dropped) and all(run.succeeded for run in self.runs)


@dataclass(frozen=True)
class _Planned:
    deployment: str
    baseline_deployment: str
    work_pool: str | None
    parameters: dict[str, Any]


def _sample_runs(project: Project) -> SampleRuns | None:
    branch_environments = project.policy_config.branch_environments
    return branch_environments.sample_runs if branch_environments else None


def planned_sample_runs(project: Project, rendered: Rendered, plan: Plan) -> tuple[list[_Planned], list[str]]:
    """The sample runs a branch deploy's `plan` calls for (its created and updated deployments that declare one),
    and the changed deployments that declare none."""
    branch_environments = project.policy_config.branch_environments
    samples = _sample_runs(project)
    if samples is None or not rendered.target.is_branch_deployment:
        return [], []
    changed = {change.full_name for change in plan.changes if change.action in (CREATE, UPDATE)}
    slug = branch_slug(rendered.target.branch)
    values = branch_values(rendered.target, rendered.sha, branch_environments)
    cleanup = branch_environments.cleanup if branch_environments else None
    pools = {}  # as deployed: an overridden work pool included
    for deployment in rendered.content.get("deployments") or []:
        work_pool = deployment.get("work_pool")
        pools[deployment.get("name")] = work_pool.get("name") if isinstance(work_pool, dict) else None
    planned, not_sampled = [], []
    for deployment in rendered.target.file.deployments():
        name = str(deployment.get("name"))
        try:
            flow_name = inspect_entrypoint(project.root, str(deployment.get("entrypoint"))).flow_name
        except EntrypointError:
            continue  # validate refused the deploy already
        full_name = f"{flow_name}/{name}-{slug}"
        if full_name not in changed or (cleanup and name == cleanup.deployment):
            continue
        if name not in samples.deployments:
            not_sampled.append(full_name)
            continue
        parameters = fill_branch_values(samples.deployments[name], values)
        planned.append(_Planned(full_name, f"{flow_name}/{name}", pools.get(f"{name}-{slug}"), parameters))
    return planned, not_sampled


def run_samples(
    server: ServerAPI,
    project: Project,
    rendered: Rendered,
    plan: Plan,
    on_start: Callable[[list[str]], None] | None = None,
) -> SampleReport:
    """Reset the branch's data environment (when asked), start the sample runs `plan` calls for, wait for them,
    and read their summaries and staging's. Never raises for a run that fails: the report says so."""
    planned, not_sampled = planned_sample_runs(project, rendered, plan)
    report = SampleReport(not_sampled=not_sampled)
    samples = _sample_runs(project)
    if not planned or samples is None:
        return report
    if on_start:
        on_start([p.deployment for p in planned])
    if samples.reset:
        report.reset = _reset(server, project, rendered)
        if report.reset is not None and not report.reset.dropped:
            report.runs = [
                SampleRun(p.deployment, p.baseline_deployment, p.work_pool, problem="not run: the reset failed")
                for p in planned
            ]
            return report
    started = []
    for sample in planned:
        run = SampleRun(sample.deployment, sample.baseline_deployment, sample.work_pool)
        try:
            started.append(replace(run, run=server.start_run(sample.deployment, sample.parameters)))
        except PrefectAPIError as error:
            started.append(replace(run, problem=str(error)))
    report.runs = [_with_summaries(server, run) for run in _wait(server, started, samples.timeout)]
    return report


def _reset(server: ServerAPI, project: Project, rendered: Rendered) -> DataCleanup | None:
    """Stop the branch's runs that have not ended (a run of the last push's code would write on into the new
    environment, beside the samples), then run the branch's cleanup, so the sample runs start from an empty data
    environment."""
    branch_environments = project.policy_config.branch_environments
    cleanup = branch_environments.cleanup if branch_environments else None
    if cleanup is None:
        return None  # the configuration refuses a reset without a cleanup
    values = branch_values(rendered.target, rendered.sha, branch_environments)
    live = server.read_tagged_deployments(ownership_tags(project.config.project, rendered.target.branch))
    runner = next((d for d in live if d.name == f"{cleanup.deployment}-{values['slug']}"), None)
    full_name = runner.full_name if runner else f"{cleanup.deployment}-{values['slug']}"
    cancelled, going = stop_runs(server, live, gitops.RUNS_STOP_SECONDS)
    if going:
        message = f"not run: the branch's runs had not stopped {gitops.RUNS_STOP_SECONDS:g} s after being cancelled"
        return DataCleanup(values["environment"], full_name, False, f"{message}: {'; '.join(going)}")
    outcome = run_cleanup(server, project, cleanup, values["environment"], runner, values)
    if not cancelled:
        return outcome
    return replace(outcome, message=f"{outcome.message}; first cancelled {'; '.join(cancelled)}")


def _wait(server: ServerAPI, runs: list[SampleRun], timeout: float) -> list[SampleRun]:
    """Follow the started runs until each has ended or `timeout` seconds have passed; cancel those that have not."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [_refreshed(server, sample) for sample in runs]
        if all(_settled(sample) for sample in runs) or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    return [_verdict(server, sample, timeout) for sample in runs]


def _settled(sample: SampleRun) -> bool:
    return sample.problem is not None or sample.run is None or sample.run.ended


def _refreshed(server: ServerAPI, sample: SampleRun) -> SampleRun:
    if _settled(sample) or sample.run is None:
        return sample
    try:
        return replace(sample, run=server.read_run(sample.run.flow_run_id))
    except PrefectAPIError as error:
        return replace(sample, problem=str(error))


def _verdict(server: ServerAPI, sample: SampleRun, timeout: float) -> SampleRun:
    """`sample` with its problem said: a run that failed, or that had not ended in time (then cancelled)."""
    run = sample.run
    if sample.problem is not None or run is None or run.completed:
        return sample
    if run.ended:
        message = " ".join((run.message or "").split())
        return replace(sample, problem=f"ended {run.state_name}" + (f": {message}" if message else ""))
    return replace(sample, problem=give_up_on(server, run, timeout, sample.work_pool))


def _with_summaries(server: ServerAPI, sample: SampleRun) -> SampleRun:
    """`sample` with its own summary (when it ran) and the baseline's latest Completed run and summary. A summary
    that cannot be read is shown as missing: the runs' states decide the outcome."""
    summary = latest = None
    try:
        if sample.run is not None and sample.run.completed:
            summary = summary_of(server.read_run_artifact(sample.run.flow_run_id, SUMMARY_ARTIFACT_KEY))
        latest = server.latest_completed_run(sample.baseline_deployment, SUMMARY_ARTIFACT_KEY)
    except PrefectAPIError as error:
        return replace(sample, summary=summary, note=f"summaries not all read: {error}")
    if latest is None:
        return replace(sample, summary=summary)
    return replace(sample, summary=summary, baseline=latest[0], baseline_summary=summary_of(latest[1]))


def summary_of(data: Any) -> dict[str, str] | None:
    """A `flowops-summary` artifact's rows as measure -> value (as text); None when it has not that shape."""
    if not isinstance(data, list):
        return None
    summary = {}
    for row in data:
        if not isinstance(row, dict) or "measure" not in row:
            return None
        value = row.get("value")
        summary[str(row["measure"])] = (
            f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        )
    return summary
