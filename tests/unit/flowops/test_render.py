"""Rendering: the committed file for main and staging, a renamed, tagged, unscheduled, pinned copy for others."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flowops.config.project import load_project
from flowops.render.branches import branch_slug
from flowops.render.prefect_yaml import GIT_CLONE_STEP, Overrides, render

ROOT = Path(__file__).resolve().parents[3]

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def project(sample_project):
    return load_project(sample_project)


def clone_step(rendered):
    return rendered.content["pull"][0][GIT_CLONE_STEP]


def test_main_deploys_its_committed_file_with_ownership_tags_pinned_to_its_commit(project):
    rendered = render(project, "main", SHA, Overrides())
    (deployment,) = rendered.content["deployments"]
    assert deployment["name"] == "production"
    assert deployment["tags"] == [
        "hello", "flowops", "project:acme/hello", "branch:main", "env:production", "commit:01234567",
    ]  # fmt: skip
    assert deployment["schedules"][0]["active"] is True
    assert clone_step(rendered)["commit_sha"] == SHA  # a merge changes what production runs only once deployed
    assert "branch" not in clone_step(rendered)
    assert clone_step(rendered)["credentials"] == "{{ prefect.blocks.github-credentials.hello-github }}"


def test_another_branch_deploys_the_staging_file_renamed_unscheduled_and_pinned_to_its_commit(project):
    rendered = render(project, "feature/Foo_Bar", SHA, Overrides())
    slug = branch_slug("feature/Foo_Bar")
    (deployment,) = rendered.content["deployments"]
    assert deployment["name"] == f"staging-{slug}"
    assert deployment["tags"] == [
        "hello",
        "flowops",
        "project:acme/hello",
        f"branch:{slug}",
        "env:staging",
        "commit:01234567",
    ]
    assert [schedule["active"] for schedule in deployment["schedules"]] == [False]
    assert clone_step(rendered)["commit_sha"] == SHA
    assert "branch" not in clone_step(rendered)


def test_rendering_leaves_the_committed_file_untouched(project):
    committed = copy.deepcopy(project.target("feature-x").file.content)
    render(project, "feature-x", SHA, Overrides(repository="file:///tmp/origin.git", work_pool="local", image="img:1"))
    assert project.target("feature-x").file.content == committed


def test_overrides_replace_the_repository_pool_and_image_and_drop_credentials_a_local_clone_cannot_use(project):
    rendered = render(project, "main", SHA, Overrides("file:///tmp/origin.git", "local-pool", "localhost:5000/f:1"))
    (deployment,) = rendered.content["deployments"]
    assert clone_step(rendered) == {"id": "clone", "repository": "file:///tmp/origin.git", "commit_sha": SHA}
    assert deployment["work_pool"]["name"] == "local-pool"
    assert deployment["work_pool"]["job_variables"] == {
        "image_pull_policy": "IfNotPresent",
        "image": "localhost:5000/f:1",
        "env": {
            "FLOWOPS_PROJECT": "acme/hello",
            "FLOWOPS_BRANCH": "main",
            "FLOWOPS_ENVIRONMENT": "production",
            "FLOWOPS_BRANCH_DEPLOYMENT": "false",
        },
    }


def test_an_https_repository_override_keeps_the_credentials_block(project):
    rendered = render(project, "staging", SHA, Overrides(repository="https://github.com/other/fork.git"))
    assert clone_step(rendered)["credentials"] == "{{ prefect.blocks.github-credentials.hello-github }}"
    assert clone_step(rendered)["commit_sha"] == SHA


def test_the_rendered_yaml_says_where_it_came_from_and_parses_back_to_the_same_content(project):
    rendered = render(project, 'x";touch${IFS}/tmp/pwned;#', SHA, Overrides())
    text = rendered.as_yaml()
    assert text.startswith("# Rendered by flowops from deployments/staging/prefect.yaml")
    assert yaml.safe_load(text) == rendered.content
    assert rendered.content["deployments"][0]["name"] == f"staging-{branch_slug(rendered.target.branch)}"


def test_a_clone_url_with_a_token_in_it_is_refused_before_it_reaches_a_pull_step(project):
    """An `origin` remote such as https://x-access-token:TOKEN@github.com/... becomes the default clone URL."""
    from flowops.deploy.gitops import check_rendered

    token_url = "https://x-access-token:ghs_" + "s" * 36 + "@github.com/acme/hello.git"
    rendered = render(project, "feature/x", SHA, Overrides(repository=token_url))
    problems = [str(problem) for problem in check_rendered(project, rendered)]
    assert any(
        "pull (top level)[0].prefect.deployments.steps.git_clone.repository: https://***@github.com/acme/hello.git:"
        " a URL with credentials in it" in problem
        for problem in problems
    ), problems
    assert not any("ghs_" in problem for problem in problems)


@pytest.mark.parametrize(
    "value",
    [
        "{{ flowops.environment }}",
        "{{flowops.slug}}",
        "schema {{ flowops.environment }} of {{ flowops.branch }}!",
        {"schema": "{{ flowops.environment }}", "rows": 10, "nested": ["{{ flowops.slug }}", None, True, 1.5]},
        ["plain", {"deep": {"deeper": "x-{{ flowops.slug }}-y"}}],
        "{{ flowops.unknown }}",  # not a branch value: Prefect's own templating decides
        "{{ clone.directory }}/{{ flowops.slug }}",
        {"keep": "{{ prefect.variables.x }}", "fill": "{{ flowops.slug }}"},
        42,
    ],
)
def test_branch_values_are_filled_as_prefects_templating_fills_them(value):
    """flowops fills its own placeholders without importing Prefect: the result is Prefect's, whatever the value."""
    from prefect.utilities.templating import apply_values

    from flowops.render.prefect_yaml import fill_branch_values

    values = {"environment": "branch_feature_x_1a2b", "slug": "feature-x-1a2b", "branch": "feature/x"}
    expected = apply_values(json.loads(json.dumps(value)), {"flowops": values}, remove_notset=False)
    assert fill_branch_values(value, values) == expected


def test_rendering_this_repositorys_branch_deployments_imports_no_prefect(tmp_path):
    """The "nothing changed" path renders before it decides: Prefect's 1.2 s of imports must not be in it."""
    script = (
        "import sys; from pathlib import Path\n"
        "from flowops.config.project import load_project\n"
        "from flowops.render.prefect_yaml import render\n"
        f"rendered = render(load_project(Path({str(ROOT)!r})), 'feature/x', 'a' * 40)\n"
        "assert rendered.data_environment, 'this repository declares branch environments'\n"
        "print(sorted(name for name in sys.modules if name == 'prefect' or name.startswith('prefect.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
