"""Prefect automations kept as code, next to the deployments they look after.

flowops.yaml's `automations` names a file under deployments/ in the shape `prefect automation create --from-file`
reads (`automations:`, a list of Prefect automations: name, description, enabled, trigger, actions...).
`flowops validate` checks each against Prefect's own model; `flowops bootstrap` makes the server hold exactly
them: it creates what is missing, updates what differs, deletes this project's automations the file no longer has,
and tags each with the project. It never touches an automation of another project: another flowops project may
hold one of the same name (each acts on its own project's runs), and one of the same name flowops does not manage
is an error. A trigger that names another project's tag is an error too: a file copied from another repository
would otherwise act on that project's runs. Branch deploys never apply automations: an automation acts on any
run, with the server's own rights.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass
from typing import Any

from flowops.api.server import LiveAutomation, ServerAPI
from flowops.config.problems import Problem
from flowops.config.project import Project, ProjectError, read_yaml
from flowops.errors import FlowopsError
from flowops.render.prefect_yaml import MANAGED_TAG, PROJECT_TAG_PREFIX, RESERVED_TAG_PREFIXES


class AutomationsRefused(FlowopsError):
    """An automation of the file's names exists that flowops does not manage."""


@dataclass(frozen=True)
class AutomationSpec:
    name: str
    spec: dict[str, Any]  # canonical_spec, tagged with the project: what the server must hold


def canonical_spec(data: dict[str, Any]) -> dict[str, Any]:
    """An automation as Prefect's model reads it, in JSON form, without the ids the model invents for each
    trigger: equal for the file's text and for what the server returns, unless they really differ."""
    from prefect.events.schemas.automations import AutomationCore

    fields = {key: value for key, value in data.items() if key in _automation_fields()}
    # no owner_resource: the server refuses it on an update, and an automation of a file has no owner but the file
    spec = AutomationCore.model_validate(fields).model_dump(mode="json", exclude={"owner_resource"})
    spec["trigger"] = _canonical_trigger(spec["trigger"])
    spec["tags"] = sorted(set(spec.get("tags") or []))
    return spec


# An event trigger's fields that Prefect's model holds as sets. A set's JSON list comes in the set's iteration
# order, which depends on the process's string hashes and on the order the items went in: in 9 of 40 hash seeds
# tried here, the file's and the server's copies of the same set came out in different orders, and bootstrap
# "updated" an unchanged automation.
SET_TRIGGER_FIELDS = ("after", "expect", "for_each")


def _canonical_trigger(trigger: dict[str, Any]) -> dict[str, Any]:
    trigger = {key: value for key, value in trigger.items() if key != "id"}
    for key in SET_TRIGGER_FIELDS:
        if isinstance(trigger.get(key), list):
            trigger[key] = sorted(trigger[key])
    if "triggers" in trigger:  # compound and sequence triggers
        trigger["triggers"] = [_canonical_trigger(inner) for inner in trigger["triggers"]]
    return trigger


PROJECT_RESOURCE_PREFIX = "prefect.tag." + PROJECT_TAG_PREFIX  # a project's tag, as events name related resources


def _projects_matched(value: Any, where: str) -> list[tuple[str, str]]:
    """(field, project) for each `prefect.tag.project:<project>` a trigger matches, wherever it is in the trigger."""
    if isinstance(value, dict):
        return [found for key, inner in value.items() for found in _projects_matched(inner, f"{where}.{key}")]
    if isinstance(value, list):
        return [found for index, inner in enumerate(value) for found in _projects_matched(inner, f"{where}[{index}]")]
    if isinstance(value, str) and value.startswith(PROJECT_RESOURCE_PREFIX):
        return [(where, value.removeprefix(PROJECT_RESOURCE_PREFIX))]
    return []


def project_tags(project: Project) -> list[str]:
    return [MANAGED_TAG, PROJECT_TAG_PREFIX + project.config.project]


def load_automations(project: Project) -> tuple[list[AutomationSpec], list[Problem]]:
    """The automations flowops.yaml's file declares, each checked by Prefect's model (one problem per bad one)."""
    from pydantic import ValidationError

    label = project.automations_file()
    if label is None:
        return [], []
    try:
        content = read_yaml(project.root / label, label, "not found (flowops.yaml's `automations` names it)")
    except ProjectError as error:
        return [], [Problem(label, None, "", str(error).removeprefix(f"{label}: "))]
    entries = content.get("automations") if isinstance(content, dict) else None
    if not isinstance(entries, list):
        return [], [Problem(label, None, "automations", "expected a list of automations")]
    specs: list[AutomationSpec] = []
    problems: list[Problem] = []
    names: list[str] = []
    for index, entry in enumerate(entries):
        where = f"automations[{index}]"
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(name, str) or not name.strip():
            problems.append(Problem(label, where, "name", "missing: every automation needs a name"))
            continue
        if name in names:
            problems.append(Problem(label, name, "name", "used by more than one automation in this file"))
        names.append(name)
        unknown = sorted(set(entry) - _automation_fields())
        if unknown:
            problems.append(Problem(label, name, unknown[0], "unknown field (Prefect ignores it silently)"))
            continue
        tags = entry.get("tags") or []
        if not isinstance(tags, list):
            problems.append(Problem(label, name, "tags", "expected a list of tags"))
            continue
        reserved = [tag for tag in tags if str(tag).startswith(RESERVED_TAG_PREFIXES)]
        if reserved:
            problems.append(Problem(label, name, "tags", f"{reserved[0]!r}: flowops sets this tag itself"))
            continue
        try:
            spec = canonical_spec({**entry, "tags": [*tags, *project_tags(project)]})
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            problems.append(Problem(label, name, field, first["msg"]))
            continue
        other_projects = [
            (field, named)
            for field, named in _projects_matched(spec["trigger"], "trigger")
            if named != project.config.project
        ]
        if other_projects:
            field, named = other_projects[0]
            problems.append(
                Problem(label, name, field, f"names project {named!r}, not this one ({project.config.project!r})")
            )
            continue
        unknown_actions = [
            (f"{key}[{position}].type", action["type"])
            for key in ("actions", "actions_on_trigger", "actions_on_resolve")
            for position, action in enumerate(spec.get(key) or [])
            if action.get("type") not in _action_types()
        ]
        if unknown_actions:  # Prefect reads them as UnknownAction (a newer server's), and nothing would run them
            field, kind = unknown_actions[0]
            problems.append(Problem(label, name, field, f"{kind!r} is not an action type Prefect knows"))
            continue
        specs.append(AutomationSpec(name, spec))
    return specs, problems


@functools.cache
def _action_types() -> frozenset[str]:
    from prefect.events.actions import ActionTypes

    return frozenset(action.model_fields["type"].default for action in typing.get_args(ActionTypes))


@functools.cache
def _automation_fields() -> frozenset[str]:
    from prefect.events.schemas.automations import AutomationCore

    return frozenset(AutomationCore.model_fields) - {"owner_resource"}


def refuse_unmanaged_automations(server: ServerAPI, specs: list[AutomationSpec]) -> None:
    """Raise when an automation of the file's names exists that flowops does not manage (made by hand, or by other
    tooling): checked before bootstrap changes anything. Other flowops projects' automations of the same names are
    theirs, and are left alone."""
    for automation in server.read_automations(names=[spec.name for spec in specs]) if specs else []:
        if MANAGED_TAG not in automation.tags:
            raise AutomationsRefused(
                f"automation {automation.name!r} exists and flowops does not manage it (no tag {MANAGED_TAG!r});"
                " rename ours or delete it: nothing was changed"
            )


def apply_automations(server: ServerAPI, project: Project, specs: list[AutomationSpec]) -> list[str]:
    """Make the server hold exactly `specs` among this project's automations (refuse_unmanaged_automations first);
    one line per automation."""
    tag = PROJECT_TAG_PREFIX + project.config.project
    ours: dict[str, list[LiveAutomation]] = {}
    for automation in sorted(server.read_automations(tag=tag), key=lambda a: str(a.id)):
        ours.setdefault(automation.name, []).append(automation)
    lines = []
    stale: list[LiveAutomation] = []
    for spec in specs:
        same_name = ours.pop(spec.name, [])
        existing = same_name[0] if same_name else None
        stale += same_name[1:]  # two bootstraps at once each created one: one is enough
        if existing is None:
            server.save_automation(spec.spec)
            lines.append(f"automation {spec.name!r}: created")
        elif existing.spec != spec.spec:
            server.save_automation(spec.spec, existing.id)
            lines.append(f"automation {spec.name!r}: updated")
        else:
            lines.append(f"automation {spec.name!r}: unchanged")
    for automation in stale + [a for rest in ours.values() for a in rest]:
        server.delete_automation(automation.id)
        lines.append(f"automation {automation.name!r}: deleted (no longer in the file)")
    return lines
