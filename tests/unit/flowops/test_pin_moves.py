"""When a new commit may move a branch's deployments without Prefect (deploy/pin_moves.py): the version it writes is
the one Prefect's own inference gives, the commits between must hold no code, dependency or deployment file, and
the digest of all but the commit tells two commits' deploys apart only where it should."""

from __future__ import annotations

import copy
import os

import pytest

from flowops.config.project import load_project
from flowops.deploy.pin_moves import moves_forward_without_code, prefect_inferred_version
from flowops.deploy.prefect_deploy import inferred_version
from flowops.deploy.unchanged import VERSION_ENVIRONMENT, pinless_digest, rendered_digest
from flowops.local import git
from flowops.render.prefect_yaml import render

GITHUB = {"GITHUB_SHA": "c0ffee" + "1" * 34, "GITHUB_REF_NAME": "main", "GITHUB_REPOSITORY": "acme/hello"}


@pytest.fixture
def repo(sample_project):
    git(sample_project, "init", "--quiet", "--initial-branch", "main")
    git(sample_project, "config", "user.email", "t@t")
    git(sample_project, "config", "user.name", "t")
    commit(sample_project, "sample")
    return sample_project


def commit(root, message: str, files: dict[str, str] | None = None) -> str:
    for path, text in (files or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "--allow-empty", "--message", message)
    return git(root, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("environment", "origin"),
    [({}, True), (GITHUB, True), (GITHUB, False), ({"GITHUB_SHA": GITHUB["GITHUB_SHA"]}, True), ({}, False)],
    ids=["git", "github-actions", "github-actions-without-origin", "github-actions-incomplete", "no-origin"],
)
def test_the_version_is_the_one_prefects_inference_gives(repo, monkeypatch, environment, origin):
    for name in VERSION_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if origin:
        git(repo, "remote", "add", "origin", "https://git.example/acme/hello.git")
    ours = prefect_inferred_version(repo, os.environ)
    prefects = inferred_version(repo)
    if ours is None:  # where this cannot be sure, the whole way runs Prefect's inference
        assert not origin
        assert not environment.get("GITHUB_REPOSITORY")
    else:
        assert ours == prefects


def test_another_cis_environment_takes_the_whole_way(repo):
    git(repo, "remote", "add", "origin", "https://git.example/acme/hello.git")
    for variable in ("CI_COMMIT_SHA", "BITBUCKET_COMMIT", "BUILD_SOURCEVERSION"):
        assert prefect_inferred_version(repo, {variable: "f" * 40}) is None
    assert prefect_inferred_version(repo, {}) == git(repo, "rev-parse", "HEAD")[:8]


@pytest.mark.parametrize(
    ("files", "moves"),
    [
        ({"README.md": "docs\n", "data/cities.csv": "Oslo\n", ".github/workflows/x.yml": "on: push\n"}, True),
        ({"flows/hello.py": "# changed\n"}, False),
        ({"flows/helpers/util.py": "X = 1\n"}, False),
        ({"deployments/staging/notes.txt": "a note\n"}, False),
        ({"pyproject.toml": "[project]\nname = 'x'\n"}, False),
        ({"requirements-dev.txt": "pandas\n"}, False),
        ({"uv.lock": "version = 1\n"}, False),
    ],
    ids=["docs-data-workflows", "the-flow", "a-module-it-may-import", "deployments-folder", "pyproject",
         "requirements", "lock-file"],
)  # fmt: skip
def test_only_commits_without_code_or_deployment_files_move_pins_alone(repo, files, moves):
    project = load_project(repo)
    old = git(repo, "rev-parse", "HEAD")
    new = commit(repo, "change", files)
    assert moves_forward_without_code(project, old, new) is moves


def test_a_symlink_history_going_back_or_the_same_commit_takes_the_whole_way(repo):
    project = load_project(repo)
    old = git(repo, "rev-parse", "HEAD")
    (repo / "linked.txt").symlink_to("flows/hello.py")
    linked = commit(repo, "a symlink")
    assert not moves_forward_without_code(project, old, linked)
    docs = commit(repo, "docs", {"README.md": "docs\n"})
    assert moves_forward_without_code(project, linked, docs)
    assert not moves_forward_without_code(project, docs, linked)  # back in history: a rollback
    assert not moves_forward_without_code(project, docs, docs)
    git(repo, "checkout", "--quiet", "--orphan", "elsewhere")
    other = commit(repo, "another line of history")
    assert not moves_forward_without_code(project, docs, other)
    assert not moves_forward_without_code(project, "0" * 40, docs)  # a commit this clone does not have


def test_the_pinless_digest_is_blind_to_the_commit_only(repo):
    project = load_project(repo)
    first, second = render(project, "feature/x", "a" * 40), render(project, "feature/x", "b" * 40)
    environment = {"GITHUB_SHA": "a" * 40, "GITHUB_REF_NAME": "feature/x"}
    moved = {**environment, "GITHUB_SHA": "b" * 40}
    assert rendered_digest(project, first, environment) != rendered_digest(project, second, moved)
    assert pinless_digest(project, first, environment) == pinless_digest(project, second, moved)
    assert pinless_digest(project, first, environment) != pinless_digest(
        project, second, {**moved, "GITHUB_REF_NAME": "other"}
    )
    content = copy.deepcopy(second.content)
    content["deployments"][0]["parameters"] = {"note": "edited"}
    edited = type(second)(second.target, second.sha, content, second.overrides)
    assert pinless_digest(project, edited, moved) != pinless_digest(project, first, environment)
    # a SHA the file's own placeholders read stays in: the deploy stores it
    content["deployments"][0]["parameters"] = {"built_from": "{{ $GITHUB_SHA }}"}
    reading = type(second)(second.target, second.sha, content, second.overrides)
    assert pinless_digest(project, reading, moved) != pinless_digest(project, reading, environment)
