"""Automations kept as code: `flowops bootstrap` makes a real Prefect server hold exactly the file's, and only
this project's; `flowops validate` rejects a bad one before anything changes."""

from __future__ import annotations

import uuid

import httpx
import yaml

from flowops.render import MANAGED_TAG
from tests.helpers import ROOT

SHIPPED = ROOT / "deployments" / "automations.yaml"


def server_automations(api_url: str, tag: str | None = None) -> dict[str, dict]:
    body = {"automations": {"tags": {"all_": [tag]}} if tag else None, "limit": 200}
    response = httpx.post(f"{api_url}/automations/filter", json=body, timeout=30)
    response.raise_for_status()
    return {automation["name"]: automation for automation in response.json()}


def use_automations(repo, automations: list[dict]) -> None:
    (repo.path / "deployments" / "automations.yaml").write_text(yaml.safe_dump({"automations": automations}))


def test_bootstrap_applies_the_shipped_automations_then_keeps_the_server_equal_to_the_file(hello_repo):
    project = f"acme/automations-{uuid.uuid4().hex[:8]}"
    tag = f"project:{project}"
    config = hello_repo.path / "deployments" / "flowops.yaml"
    config.write_text(
        config.read_text().replace("project: acme/hello", f"project: {project}") + "automations: automations.yaml\n"
    )
    shipped = yaml.safe_load(SHIPPED.read_text())["automations"]
    use_automations(hello_repo, shipped)

    first = hello_repo.flowops("bootstrap")
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
    second = hello_repo.flowops("bootstrap")
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
    updated = hello_repo.flowops("bootstrap")
    assert "automation 'reschedule-silent-flow-runs': updated" in updated.stdout
    assert "automation 'pause-on-crash': created" in updated.stdout
    held = server_automations(hello_repo.api_url, tag)
    assert held["reschedule-silent-flow-runs"]["trigger"]["within"] == 90
    assert held["reschedule-silent-flow-runs"]["id"] == rescheduler["id"]
    use_automations(hello_repo, [notify])
    pruned = hello_repo.flowops("bootstrap")
    assert "automation 'reschedule-silent-flow-runs': deleted (no longer in the file)" in pruned.stdout
    assert "automation 'reschedule-flow-runs-stuck-pending': deleted (no longer in the file)" in updated.stdout
    assert list(server_automations(hello_repo.api_url, tag)) == ["pause-on-crash"]

    # A bad automation: one line naming the file, the automation and the field; the server is left as it was.
    use_automations(hello_repo, [notify, {**slower, "trigger": {**slower["trigger"], "within": "soon"}}])
    for command in ("validate", "bootstrap"):
        result = hello_repo.flowops(command, check=False)
        assert result.returncode == 1, result.stdout + result.stderr
        assert (
            "deployments/automations.yaml: reschedule-silent-flow-runs: trigger.event.within: Input should be a"
            in result.stderr
        )
    assert list(server_automations(hello_repo.api_url, tag)) == ["pause-on-crash"]


def test_bootstrap_never_takes_over_an_automation_of_another_project(hello_repo):
    name = f"taken-{uuid.uuid4().hex[:8]}"
    theirs = {
        "name": name,
        "tags": ["team:someone-else"],
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Failed"]},
        "actions": [{"type": "do-nothing"}],
    }
    httpx.post(f"{hello_repo.api_url}/automations/", json=theirs, timeout=30).raise_for_status()
    config = hello_repo.path / "deployments" / "flowops.yaml"
    config.write_text(config.read_text() + "automations: automations.yaml\n")
    use_automations(hello_repo, [{**theirs, "tags": [], "actions": [{"type": "cancel-flow-run"}]}])

    result = hello_repo.flowops("bootstrap", check=False)

    assert result.returncode == 1
    assert f"error: automation {name!r} exists and is not this project's (no tag 'project:acme/hello')" in result.stderr
    [kept] = [a for a in server_automations(hello_repo.api_url).values() if a["name"] == name]
    assert kept["actions"] == [{"type": "do-nothing"}]
