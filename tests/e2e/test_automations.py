"""Automations kept as code: `flowops bootstrap` makes a real Prefect server hold exactly the file's, and only
this project's; `flowops validate` rejects a bad one before anything changes."""

from __future__ import annotations

import uuid

import httpx
import yaml

from flowops.render.prefect_yaml import MANAGED_TAG
from tests.helpers import ROOT

SHIPPED = ROOT / "deployments" / "automations.yaml"


def server_automations(api_url: str, tag: str | None = None) -> dict[str, dict]:
    body = {"automations": {"tags": {"all_": [tag]}} if tag else None, "limit": 200}
    response = httpx.post(f"{api_url}/automations/filter", json=body, timeout=30)
    response.raise_for_status()
    return {automation["name"]: automation for automation in response.json()}


def use_automations(repo, automations: list[dict]) -> None:
    (repo.path / "deployments" / "automations.yaml").write_text(yaml.safe_dump({"automations": automations}))


def a_project_of_its_own(repo) -> str:
    """The session's server is shared: a project (its automations) and a pool (bootstrap's) of this test's own."""
    project = f"acme/automations-{uuid.uuid4().hex[:8]}"
    config = repo.path / "deployments" / "flowops.yaml"
    config.write_text(
        config.read_text().replace("project: acme/hello", f"project: {project}") + "automations: automations.yaml\n"
    )
    return project


BOOTSTRAP = ("bootstrap", "--work-pool", f"automations-{uuid.uuid4().hex[:8]}", "--type", "process")


def test_bootstrap_applies_the_shipped_automations_then_keeps_the_server_equal_to_the_file(hello_repo):
    tag = f"project:{a_project_of_its_own(hello_repo)}"
    # the shipped file acts on the runs of this repository's project: made this test project's, as a user would
    shipped = yaml.safe_load(SHIPPED.read_text().replace("project:flowops-dev/flowops", tag))["automations"]
    use_automations(hello_repo, shipped)

    first = hello_repo.flowops(*BOOTSTRAP)
    assert "automation 'reschedule-silent-flow-runs': created" in first.stdout
    held = server_automations(hello_repo.api_url, tag)
    assert sorted(held) == ["reschedule-flow-runs-stuck-pending", "reschedule-silent-flow-runs"]
    rescheduler = held["reschedule-silent-flow-runs"]
    assert set(rescheduler["tags"]) == {MANAGED_TAG, tag}
    assert rescheduler["trigger"]["posture"] == "Proactive"
    assert rescheduler["trigger"]["within"] == 60
    assert rescheduler["actions"] == [
        {
            "type": "change-flow-run-state",
            "name": "AwaitingRetry",
            "state": "SCHEDULED",
            "message": shipped[0]["actions"][0]["message"],
            "force": False,
        }
    ]
    second = hello_repo.flowops(*BOOTSTRAP)
    assert "automation 'reschedule-silent-flow-runs': unchanged" in second.stdout
    assert server_automations(hello_repo.api_url, tag)["reschedule-silent-flow-runs"]["id"] == rescheduler["id"]

    # A change in the file updates the same automation; one gone from the file is deleted.
    slower = {**shipped[0], "trigger": {**shipped[0]["trigger"], "within": 90}}
    notify = {
        "name": "pause-on-crash",
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Crashed"]},
        "actions": [{"type": "pause-work-pool", "source": "inferred"}],
    }
    use_automations(hello_repo, [slower, notify])
    updated = hello_repo.flowops(*BOOTSTRAP)
    assert "automation 'reschedule-silent-flow-runs': updated" in updated.stdout
    assert "automation 'pause-on-crash': created" in updated.stdout
    held = server_automations(hello_repo.api_url, tag)
    assert held["reschedule-silent-flow-runs"]["trigger"]["within"] == 90
    assert held["reschedule-silent-flow-runs"]["id"] == rescheduler["id"]
    use_automations(hello_repo, [notify])
    pruned = hello_repo.flowops(*BOOTSTRAP)
    assert "automation 'reschedule-silent-flow-runs': deleted (no longer in the file)" in pruned.stdout
    assert "automation 'reschedule-flow-runs-stuck-pending': deleted (no longer in the file)" in updated.stdout
    assert list(server_automations(hello_repo.api_url, tag)) == ["pause-on-crash"]

    # A bad automation: one line naming the file, the automation and the field; the server is left as it was.
    use_automations(hello_repo, [notify, {**slower, "trigger": {**slower["trigger"], "within": "soon"}}])
    for command in (("validate",), BOOTSTRAP):
        result = hello_repo.flowops(*command, check=False)
        assert result.returncode == 1, result.stdout + result.stderr
        assert (
            "deployments/automations.yaml: reschedule-silent-flow-runs: trigger.event.within: Input should be a"
            in result.stderr
        )
    assert list(server_automations(hello_repo.api_url, tag)) == ["pause-on-crash"]


def test_bootstrap_refuses_a_hand_made_automation_of_the_same_name_and_leaves_other_projects_alone(hello_repo):
    suffix = uuid.uuid4().hex[:8]
    trigger = {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Failed"]}
    hand_made = {"name": f"taken-{suffix}", "tags": ["team:someone-else"], "trigger": trigger}
    other_project = {"name": f"shared-{suffix}", "tags": [MANAGED_TAG, "project:them/else"], "trigger": trigger}
    for automation in (hand_made, other_project):
        body = {**automation, "actions": [{"type": "do-nothing"}]}
        httpx.post(f"{hello_repo.api_url}/automations/", json=body, timeout=30).raise_for_status()
    project = a_project_of_its_own(hello_repo)
    ours = [
        {**automation, "tags": [], "actions": [{"type": "cancel-flow-run"}]}
        for automation in (other_project, hand_made)
    ]

    use_automations(hello_repo, ours)
    refused = hello_repo.flowops(*BOOTSTRAP, check=False)

    assert refused.returncode == 1
    assert (
        f"error: automation 'taken-{suffix}' exists and flowops does not manage it (no tag 'flowops'); rename ours or"
        " delete it: nothing was changed"
    ) in refused.stderr
    held = [a for a in server_automations(hello_repo.api_url).values() if a["name"].endswith(suffix)]
    assert sorted((a["name"], a["actions"][0]["type"]) for a in held) == [  # neither made nor changed
        (f"shared-{suffix}", "do-nothing"),
        (f"taken-{suffix}", "do-nothing"),
    ]

    # another flowops project's automation of the same name is theirs: ours is made beside it, theirs left as it was
    use_automations(hello_repo, ours[:1])
    applied = hello_repo.flowops(*BOOTSTRAP)

    assert f"automation 'shared-{suffix}': created" in applied.stdout
    shared = httpx.post(
        f"{hello_repo.api_url}/automations/filter",
        json={"automations": {"name": {"any_": [f"shared-{suffix}"]}}},
        timeout=30,
    ).json()
    assert sorted((sorted(a["tags"]), a["actions"][0]["type"]) for a in shared) == [
        ([MANAGED_TAG, f"project:{project}"], "cancel-flow-run"),
        ([MANAGED_TAG, "project:them/else"], "do-nothing"),
    ]
