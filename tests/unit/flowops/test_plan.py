"""Planning compares the rendered deployments with the server's: create, update (naming fields), keep, delete."""

from __future__ import annotations

import uuid

from flowops.api.server import LiveDeployment
from flowops.config.entrypoints import FlowEntrypoint
from flowops.deploy.plan import CREATE, DELETE, UNCHANGED, UPDATE, DesiredDeployment, desired_fields, plan_changes

SCHEMA = {"title": "Parameters", "type": "object", "properties": {"name": {"type": "string"}}, "definitions": {}}
PULL = [{"prefect.deployments.steps.git_clone": {"repository": "file:///o.git", "branch": "main"}}]


def desired(name: str, **changes) -> DesiredDeployment:
    spec = {
        "name": name,
        "entrypoint": "flows/hello.py:hello",
        "parameters": {"name": "x"},
        "tags": ["flowops", "branch:main"],
        "schedules": [{"cron": "0 2 * * *", "timezone": "UTC", "active": True}],
        "work_pool": {"name": "pool"},
        **changes,
    }
    return DesiredDeployment(spec, PULL, FlowEntrypoint("flows/hello.py:hello", "hello", SCHEMA))


def live_copy_of(deployment: DesiredDeployment, **field_changes) -> LiveDeployment:
    """What the server returns after deploying `deployment` (its shape, not ours), with `field_changes` applied."""
    fields = desired_fields(deployment)
    fields["tags"] = list(reversed(fields["tags"]))  # the server keeps its own order
    fields["parameter_openapi_schema"] = {k: v for k, v in SCHEMA.items() if k != "definitions"}
    schedules = [{"schedule": {"cron": "0 2 * * *", "timezone": "UTC", "day_or": True}, "active": True}]
    del fields["schedules"]
    fields.update(field_changes)
    return LiveDeployment(uuid.uuid4(), "hello", deployment.spec["name"], fields, schedules)


def test_a_deployment_the_server_lacks_is_created():
    plan = plan_changes("main", "main", [desired("production")], {}, [])
    assert [(c.action, c.full_name) for c in plan.changes] == [(CREATE, "hello/production")]
    assert plan.needs_deploy


def test_a_deployment_the_server_has_as_rendered_is_unchanged_and_nothing_needs_deploying():
    wanted = desired("production")
    live = live_copy_of(wanted)
    plan = plan_changes("main", "main", [wanted], {"hello/production": live}, [live])
    assert [c.action for c in plan.changes] == [UNCHANGED]
    assert not plan.needs_deploy
    assert not plan.has_changes


def test_an_update_names_the_fields_that_differ():
    wanted = desired("production")
    live = live_copy_of(wanted, parameters={"name": "old"}, tags=["flowops", "branch:main", "commit:1"])
    plan = plan_changes("main", "main", [wanted], {"hello/production": live}, [live])
    assert [(c.action, c.fields) for c in plan.changes] == [(UPDATE, ["parameters", "tags"])]


def test_a_schedule_switched_off_on_the_server_is_an_update():
    wanted = desired("production")
    live = live_copy_of(wanted)
    live.schedules[0]["active"] = False
    plan = plan_changes("main", "main", [wanted], {"hello/production": live}, [live])
    assert [(c.action, c.fields) for c in plan.changes] == [(UPDATE, ["schedules"])]


def test_the_branchs_deployments_missing_from_the_file_are_deleted_and_only_those():
    wanted = desired("production")
    kept, stale = live_copy_of(wanted), live_copy_of(desired("backfill"))
    plan = plan_changes("main", "main", [wanted], {"hello/production": kept}, [kept, stale])
    assert [(c.action, c.full_name) for c in plan.changes] == [
        (UNCHANGED, "hello/production"),
        (DELETE, "hello/backfill"),
    ]
    assert plan.has_changes
    assert not plan.needs_deploy
    assert plan.as_dict()["delete"] == 1


def test_a_new_commit_that_moves_only_pins_tags_and_version_is_a_pin_move_and_anything_else_is_not():
    moved = desired("production", version="0a1b2c3d")
    redefined = desired("backfill", version="0a1b2c3d", parameters={"name": "new"})
    old_pull = [{"prefect.deployments.steps.git_clone": {"repository": "file:///o.git", "commit_sha": "9" * 40}}]
    live = {
        "hello/production": live_copy_of(moved, pull_steps=old_pull, version="9f9f9f9f", tags=["commit:9f9f9f9f"]),
        "hello/backfill": live_copy_of(redefined, pull_steps=old_pull, parameters={"name": "old"}),
    }
    plan = plan_changes("main", "main", [moved, redefined], live, list(live.values()))
    assert [(c.full_name, c.fields) for c in plan.pins_only()] == [
        ("hello/production", ["tags", "pull_steps", "version"])
    ]
    assert [c.full_name for c in plan.of(UPDATE)] == ["hello/production", "hello/backfill"]


def test_the_flows_own_description_and_the_inferred_version_are_what_prefect_would_store():
    flow = FlowEntrypoint("flows/hello.py:hello", "hello", SCHEMA, "Says hello.")
    plain = DesiredDeployment({"name": "p", "work_pool": {"name": "pool"}}, PULL, flow, inferred_version="0a1b2c3d")
    assert desired_fields(plain)["description"] == "Says hello."
    assert desired_fields(plain)["version"] == "0a1b2c3d"
    own = DesiredDeployment(
        {"name": "p", "work_pool": {"name": "pool"}, "description": "Mine.", "version": "2.0"}, PULL, flow, "0a1b2c3d"
    )
    assert (desired_fields(own)["description"], desired_fields(own)["version"]) == ("Mine.", "2.0")
    bare = DesiredDeployment({"name": "p", "work_pool": {"name": "pool"}}, PULL, FlowEntrypoint("e", "hello", SCHEMA))
    assert "description" not in desired_fields(bare)
    assert "version" not in desired_fields(bare)  # nothing inferred: the server's own, not compared
