"""Plans and deploy results as text for a terminal and as markdown for GitHub's step summary."""

from __future__ import annotations

import os
from pathlib import Path

from .plan import CREATE, DELETE, UNCHANGED, UPDATE, Plan

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
