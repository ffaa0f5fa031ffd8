"""Plans, deploy results and sample runs as text for a terminal and as markdown for GitHub (step summary, pull request)."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from flowops.deploy.plan import CREATE, DELETE, UNCHANGED, UPDATE, Plan

if TYPE_CHECKING:
    from flowops.api.server import RunResult
    from flowops.deploy.samples import SampleReport, SampleRun

_SYMBOLS = {CREATE: "+", UPDATE: "~", UNCHANGED: "=", DELETE: "-"}


def plan_text(plan: Plan) -> str:
    data = f"; data environment {plan.data_environment}" if plan.data_environment else ""
    lines = [f"Plan for branch {plan.branch!r} (deployments tagged branch:{plan.slug}{data}):"]
    for change in plan.changes:
        detail = f"  ({', '.join(change.fields)})" if change.fields else ""
        lines.append(f"  {_SYMBOLS[change.action]} {change.action:<9} {change.full_name}{detail}")
    lines += [f"  ~ {pool_change}" for pool_change in plan.pool_changes]
    lines += [f"  ! warning: {warning}" for warning in plan.warnings]
    lines.append(_counts(plan))
    return "\n".join(lines)


def _counts(plan: Plan) -> str:
    return ", ".join(f"{len(plan.of(action))} to {action}" for action in (CREATE, UPDATE, DELETE)) + (
        f", {len(plan.of(UNCHANGED))} unchanged"
    )


def plan_markdown(plan: Plan, title: str) -> str:
    data = f" · data environment `{plan.data_environment}`" if plan.data_environment else ""
    rows = [f"### {title}", "", f"Branch `{plan.branch}` · deployments tagged `branch:{plan.slug}`{data}", ""]
    rows += ["| | deployment | change |", "|---|---|---|"]
    for change in plan.changes:
        detail = f" ({', '.join(change.fields)})" if change.fields else ""
        rows.append(f"| {_SYMBOLS[change.action]} | `{change.full_name}` | {change.action}{detail} |")
    rows += [f"| ~ | work pool | {pool_change} |" for pool_change in plan.pool_changes]
    rows += ["", _counts(plan), ""] + [f"> **Warning:** {warning}\n" for warning in plan.warnings]
    return "\n".join(rows)


def failure_markdown(title: str, problems: list[str], outcome: str) -> str:
    rows = [f"### {title}", ""] + [f"- {problem}" for problem in problems]
    return "\n".join([*rows, "", outcome, ""])


def append_step_summary(markdown: str) -> None:
    """Append to $GITHUB_STEP_SUMMARY when GitHub Actions sets it; elsewhere do nothing."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with Path(path).open("a") as summary:
            summary.write(markdown + "\n")


def samples_markdown(report: SampleReport, ui_url: str | None) -> str:
    """The sample runs for the pull request's comment: each run's state, duration and link, then its summary
    beside staging's latest, differences marked."""
    rows = ["### Sample runs", ""]
    if report.reset is not None:
        outcome = "emptied first" if report.reset.dropped else "NOT emptied"
        rows += [f"Data environment `{report.reset.environment}` {outcome} ({_cell(report.reset.message)}).", ""]
    rows += ["| | deployment | state | duration | run |", "|---|---|---|---|---|"]
    for sample in report.runs:
        mark = "✅" if sample.succeeded else "❌"
        state = sample.run.state_name if sample.run else "not started"
        rows.append(
            f"| {mark} | `{sample.deployment}` | {state} | {_duration(sample.run)} | {_run_link(sample.run, ui_url)} |"
        )
    rows += [""] + [f"- `{s.deployment}`: {_cell(s.problem)}" for s in report.runs if s.problem]
    if report.not_sampled:
        rows += ["", "Changed, with no sample declared: " + ", ".join(f"`{name}`" for name in report.not_sampled)]
    for sample in report.runs:
        if sample.summary is None and sample.baseline_summary is None and not sample.note:
            continue
        rows += ["", *_comparison(sample, ui_url)]
    return "\n".join([*rows, ""])


def samples_text(report: SampleReport) -> str:
    lines = []
    if report.reset is not None:
        outcome = "emptied" if report.reset.dropped else "NOT emptied"
        lines.append(f"data environment {report.reset.environment} {outcome}: {report.reset.message}")
    for sample in report.runs:
        state = sample.run.state_name if sample.run else "not started"
        problem = f": {sample.problem}" if sample.problem else ""
        lines.append(f"sample run of {sample.deployment}: {state} ({_duration(sample.run)}){problem}")
    lines += [f"changed, no sample declared: {name}" for name in report.not_sampled]
    return "\n".join(lines)


def _duration(run: RunResult | None) -> str:
    return f"{run.seconds:.1f} s" if run is not None and run.seconds is not None else "-"


def _run_link(run: RunResult | None, ui_url: str | None) -> str:
    if run is None:
        return "-"
    if not ui_url:
        return run.flow_run_name
    return f"[{run.flow_run_name}]({_public(ui_url)}/runs/flow-run/{run.flow_run_id})"


def _public(url: str) -> str:
    """The UI's address as a pull request may show it: never a password the API URL carries."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/")


def _comparison(sample: SampleRun, ui_url: str | None) -> list[str]:
    ours, theirs = sample.summary or {}, sample.baseline_summary or {}
    if sample.baseline is None:
        baseline = f"no Completed run of `{sample.baseline_deployment}` with a summary yet"
    else:
        baseline = f"`{sample.baseline_deployment}`'s latest Completed run, {_run_link(sample.baseline, ui_url)}"
    rows = [f"#### `{sample.deployment}` beside {baseline}", ""]
    if sample.note:
        rows += [f"Note: {_cell(sample.note)}", ""]
    elif sample.summary is None and sample.run is not None and sample.run.completed:
        rows += ["This run published no `flowops-summary` artifact.", ""]
    rows += ["| measure | this pull request | staging | |", "|---|---|---|---|"]
    differences = 0
    for measure in [*ours, *(m for m in theirs if m not in ours)]:
        mine, staging = ours.get(measure), theirs.get(measure)
        if mine == staging:
            mark = ""
        else:
            differences += 1
            mark = "**new**" if staging is None else "**gone**" if mine is None else "**≠**"
        rows.append(f"| {_cell(measure)} | {_cell(mine)} | {_cell(staging)} | {mark} |")
    rows += ["", f"{differences} difference(s)." if differences else "No differences."]
    return rows


def _cell(value: str | None) -> str:
    """A value a pull request's code chose (its summary, its error), as inert text in a table cell: no markup, no
    mention that pings anyone, no line break or `|` that ends the cell."""
    if value is None:
        return "-"
    text = html.escape(" ".join(value.split()), quote=False).replace("|", "\\|").replace("@", "&#64;")
    return text.replace("`", "&#96;").replace("[", "&#91;").replace("*", "&#42;")
