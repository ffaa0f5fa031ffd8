"""What a deploy would change on the server: a pure comparison of the rendered file with what is there now.

create   ecommerce-events/staging-feature-foo-1a2b3c4d
update   ecommerce-events/production  (tags, parameters)
delete   ecommerce-events/backfill    (no longer in deployments/main/prefect.yaml)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flowops.api.server import LiveDeployment
from flowops.config.entrypoints import FlowEntrypoint

CREATE, UPDATE, UNCHANGED, DELETE = "create", "update", "unchanged", "delete"
DEFAULT_WORK_QUEUE = "default"
# What a new commit moves on a deployment whose definition did not change: its pin (the git_clone step's
# commit_sha), its commit tag, its version. Such an update is three fields written through the API.
PIN_FIELDS = frozenset({"tags", "pull_steps", "version"})


@dataclass(frozen=True)
class Change:
    action: str
    full_name: str
    fields: list[str] = field(default_factory=list)  # what differs, for updates

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "deployment": self.full_name, "fields": self.fields}


@dataclass(frozen=True)
class Plan:
    branch: str
    slug: str
    changes: list[Change]
    pool_changes: list[str] = field(default_factory=list)  # what deploy sets on work pools, said in words
    data_environment: str | None = None  # a branch deployment's own data (flowops.yaml branch_environments)
    warnings: list[str] = field(default_factory=list)

    def of(self, action: str) -> list[Change]:
        return [change for change in self.changes if change.action == action]

    def pins_only(self) -> list[Change]:
        """The updates that only move a deployment to another commit."""
        return [change for change in self.of(UPDATE) if set(change.fields) <= PIN_FIELDS]

    @property
    def needs_deploy(self) -> bool:
        return any(change.action in (CREATE, UPDATE) for change in self.changes)

    @property
    def has_changes(self) -> bool:
        return any(change.action != UNCHANGED for change in self.changes)

    def as_dict(self) -> dict[str, Any]:
        counts = {action: len(self.of(action)) for action in (CREATE, UPDATE, UNCHANGED, DELETE)}
        changes = [c.as_dict() for c in self.changes]
        return {
            "branch": self.branch,
            "slug": self.slug,
            "data_environment": self.data_environment,
            **counts,
            "changes": changes,
            "work_pools": self.pool_changes,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class DesiredDeployment:
    """A deployment of the rendered file, with its flow read from the entrypoint."""

    spec: dict[str, Any]  # the rendered deployment, `{{ $VAR }}` already applied
    pull_steps: list[dict[str, Any]]
    flow: FlowEntrypoint
    inferred_version: str | None = None  # what `prefect deploy` reads from git or CI when the file sets no version

    @property
    def full_name(self) -> str:
        return f"{self.flow.flow_name}/{self.spec['name']}"


def desired_fields(desired: DesiredDeployment) -> dict[str, Any]:
    """The fields Prefect will store for this deployment, in the shape the API returns them."""
    spec = desired.spec
    work_pool = spec.get("work_pool") or {}
    fields: dict[str, Any] = {
        "entrypoint": spec.get("entrypoint"),
        "parameters": spec.get("parameters") or {},
        "tags": sorted(set(spec.get("tags") or [])),
        "work_pool_name": work_pool.get("name"),
        "work_queue_name": work_pool.get("work_queue_name") or DEFAULT_WORK_QUEUE,
        "job_variables": work_pool.get("job_variables") or {},
        "pull_steps": desired.pull_steps,
        "parameter_openapi_schema": _without_empty_definitions(desired.flow.parameter_schema),
        "schedules": _schedules(spec.get("schedules") or []),
    }
    description = spec.get("description") or desired.flow.description
    if description is not None:
        fields["description"] = description
    version = spec.get("version") or desired.inferred_version
    if version is not None:
        fields["version"] = version
    for optional in ("paused", "concurrency_limit", "enforce_parameter_schema"):
        if spec.get(optional) is not None:
            fields[optional] = spec[optional]
    return fields


def live_fields(live: LiveDeployment, keys: Iterable[str]) -> dict[str, Any]:
    fields = {key: live.fields.get(key) for key in keys if key != "schedules"}
    if "tags" in fields:
        fields["tags"] = sorted(set(fields["tags"] or []))
    schema = fields.get("parameter_openapi_schema")
    if schema:
        fields["parameter_openapi_schema"] = _without_empty_definitions(schema)
    fields["schedules"] = _schedules([{**entry["schedule"], "active": entry["active"]} for entry in live.schedules])
    return fields


def _without_empty_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """The server drops an empty `definitions` from parameter schemas; compare without it."""
    return {key: value for key, value in schema.items() if not (key == "definitions" and not value)}


def _schedules(schedules: list[dict[str, Any]]) -> list[tuple[str | None, Any, str, bool]]:
    normalized = []
    for schedule in schedules:
        kind = next((k for k in ("cron", "interval", "rrule") if k in schedule), None)
        value = schedule.get(kind) if kind else None
        if kind == "interval" and isinstance(value, int | float):
            value = float(value)
        normalized.append((kind, value, schedule.get("timezone") or "UTC", bool(schedule.get("active", True))))
    return sorted(normalized, key=repr)


def plan_changes(
    branch: str,
    slug: str,
    desired: list[DesiredDeployment],
    live_by_name: dict[str, LiveDeployment],
    live_of_branch: list[LiveDeployment],
) -> Plan:
    """Create what is missing, update what differs, delete the branch's deployments the file no longer has."""
    changes = []
    for deployment in desired:
        live = live_by_name.get(deployment.full_name)
        if live is None:
            changes.append(Change(CREATE, deployment.full_name))
            continue
        wanted = desired_fields(deployment)
        actual = live_fields(live, wanted.keys())
        differing = [key for key in wanted if wanted[key] != actual.get(key)]
        changes.append(Change(UPDATE if differing else UNCHANGED, deployment.full_name, differing))
    wanted_names = {deployment.full_name for deployment in desired}
    for live in sorted(live_of_branch, key=lambda d: d.full_name):
        if live.full_name not in wanted_names:
            changes.append(Change(DELETE, live.full_name))
    return Plan(branch, slug, changes)
