"""What "nothing changed" is decided on (deploy/unchanged.py): the digests of what a deploy was made from and of
what the server holds, and when flowops may call the API without Prefect's client."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from flowops.api.http import CLIENT_SETTINGS, plain_api
from flowops.config.project import load_project
from flowops.deploy.unchanged import (
    ENVIRONMENT_PLACEHOLDER,
    VERSION_ENVIRONMENT,
    live_digest,
    record_name,
    rendered_digest,
)
from flowops.render.prefect_yaml import render

LIVE = [
    {
        "id": "6f1c", "name": "daily", "flow_id": "a1", "tags": ["flowops", "branch:x"], "description": "d",
        "parameters": {"city": "Oslo"}, "pull_steps": [{"git_clone": {"commit_sha": "abc"}}], "version": "abc",
        "updated": "2026-12-06T10:00:00Z", "status": "READY", "last_polled": "2026-12-06T10:00:01Z",
        "schedules": [{"id": "s1", "schedule": {"cron": "0 6 * * *"}, "active": True, "slug": None,
                       "parameters": {}, "updated": "2026-12-06T10:00:00Z"}],
    },
    {"id": "7a2d", "name": "hourly", "flow_id": "a1", "tags": ["flowops"], "schedules": []},
]  # fmt: skip


def test_the_live_digest_follows_what_a_deploy_decides_and_nothing_else():
    digest = live_digest(LIVE)
    moved = copy.deepcopy(LIVE)
    moved[0].update(updated="2026-12-07T00:00:00Z", status="NOT_READY", last_polled=None)  # a worker's polling
    moved[0]["schedules"][0]["updated"] = "2026-12-07T00:00:00Z"
    assert live_digest(list(reversed(moved))) == digest  # neither the order of the answer nor volatile fields
    for change in (
        lambda live: live[0].update(description="edited in the UI"),
        lambda live: live[0]["tags"].append("by-hand"),
        lambda live: live[0]["schedules"][0].update(active=False),
        lambda live: live[0]["pull_steps"][0]["git_clone"].update(commit_sha="def"),
        lambda live: live.pop(),  # deleted by hand
        lambda live: live.append({**live[1], "id": "8b3e", "name": "extra"}),  # made by hand, with the tags
    ):
        changed = copy.deepcopy(LIVE)
        change(changed)
        assert live_digest(changed) != digest


@pytest.fixture
def rendered(sample_project):
    from flowops.local import git

    git(sample_project, "init", "--quiet")
    git(sample_project, "add", "--all")
    git(sample_project, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "--quiet", "-m", "sample")
    project = load_project(sample_project)
    return project, render(project, "feature/x", "a" * 40)


def test_the_rendered_digest_follows_the_environment_the_deploy_reads_and_nothing_else(rendered):
    project, file = rendered
    environment = {"GITHUB_SHA": "a" * 40, "UNRELATED": "1"}
    digest = rendered_digest(project, file, environment)
    assert rendered_digest(project, file, {**environment, "UNRELATED": "2", "GITHUB_RUN_ID": "9"}) == digest
    assert rendered_digest(project, file, {**environment, "GITHUB_SHA": "b" * 40}) != digest  # Prefect's version
    placeholder = copy.deepcopy(file.content)
    placeholder["deployments"][0]["parameters"] = {"image_tag": "{{ $IMAGE_TAG }}"}
    templated = type(file)(file.target, file.sha, placeholder, file.overrides)
    with_tag = rendered_digest(project, templated, {**environment, "IMAGE_TAG": "1"})
    assert rendered_digest(project, templated, {**environment, "IMAGE_TAG": "2"}) != with_tag
    other_commit = render(project, "feature/x", "b" * 40)
    assert rendered_digest(project, other_commit, environment) != digest


def test_the_placeholders_read_are_prefects_own():
    """The environment placeholders flowops hashes are the ones Prefect's templating resolves."""
    from prefect.utilities.templating import PlaceholderType, find_placeholders

    text = "a: '{{ $IMAGE_TAG }}'\nb: '{{$ROW_LIMIT}}'\nc: '{{ prefect.variables.x }}'\nd: '{{ clone.directory }}'"
    prefects = {p.name.removeprefix("$") for p in find_placeholders(text) if p.type is PlaceholderType.ENV_VAR}
    assert set(ENVIRONMENT_PLACEHOLDER.findall(text)) == prefects == {"IMAGE_TAG", "ROW_LIMIT"}


def test_every_variable_prefects_version_inference_reads_changes_the_digest():
    """Prefect's versioning reads these to set a deployment's version: a new Prefect reading another fails here."""
    from prefect._internal import versioning

    read = set(re.findall(r"os\.getenv\(\s*[\"'](\w+)[\"']", Path(versioning.__file__).read_text()))
    assert read
    assert read <= set(VERSION_ENVIRONMENT)


def test_flowops_calls_the_api_itself_only_with_a_plain_configuration():
    assert plain_api({}) is None  # no URL: Prefect's settings decide (and flowops refuses a throwaway server)
    plain = plain_api({"PREFECT_API_URL": "https://api.example/api/", "PREFECT_API_KEY": "pnu_x"})
    assert plain is not None
    assert (plain.url, plain.key) == ("https://api.example/api", "pnu_x")
    assert plain_api({"PREFECT_API_URL": "https://user:secret@api.example/api"}) is None
    assert plain_api({"PREFECT_API_URL": "file:///etc/passwd"}) is None
    for setting in CLIENT_SETTINGS:
        assert plain_api({"PREFECT_API_URL": "https://api.example/api", setting: "1"}) is None, setting


def test_each_branch_of_each_project_has_its_own_record_with_a_valid_variable_name():
    names = {record_name(project, slug) for project in ("acme/a", "acme/b") for slug in ("main", "feature-x-1a2b")}
    assert len(names) == 4
    assert all(re.fullmatch(r"[a-z0-9_-]+", name) for name in names)
