"""`flowops act`'s part before act runs: the event GitHub would send for this clone, and what stands in for GitHub
(a mirror, the actions' stand-ins with the inputs the workflows give them, flowops' reusable workflow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flowops.github.act import ActError, event_payload, installed_reusable_workflows, prepare
from flowops.local import git

WORKFLOW = """\
name: Deploy
on: push
permissions: {}
jobs:
  flowops:
    uses: flowops-dev/flowops/.github/workflows/flowops.yml@v1
    secrets: inherit
  other:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0
        with: {persist-credentials: false, fetch-depth: 0}
      - uses: some/other-action@v2
"""


@pytest.fixture
def clone(tmp_path) -> Path:
    root = tmp_path / "weather"
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "deploy.yml").write_text(WORKFLOW)
    git(root, "init", "--quiet", "--initial-branch", "main")
    git(root, "remote", "add", "origin", "git@github.com:acme/weather.git")
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "--message", "first")
    git(root, "checkout", "--quiet", "-b", "feature/rain")
    git(root, "commit", "--quiet", "--allow-empty", "--message", "rain")
    return root


def test_a_pull_request_event_is_the_current_branch_against_main_as_github_sends_it(clone):
    head, base = git(clone, "rev-parse", "HEAD"), git(clone, "rev-parse", "main")
    payload = event_payload(clone, "pull_request", "acme/weather", "synchronize", {})
    assert payload["action"] == "synchronize"
    assert payload["pull_request"]["head"] == {"ref": "feature/rain", "sha": head, "repo": payload["repository"]}
    assert (payload["pull_request"]["base"]["ref"], payload["pull_request"]["base"]["sha"]) == ("main", base)
    assert payload["repository"]["full_name"] == "acme/weather"  # the same repository: not a fork
    assert event_payload(clone, "push", "acme/weather", "", {})["ref"] == "refs/heads/feature/rain"
    with pytest.raises(ActError, match="--action 'merged': one of opened, synchronize, reopened, closed"):
        event_payload(clone, "pull_request", "acme/weather", "merged", {})


def test_prepare_mirrors_the_clone_and_stands_in_for_the_actions_and_flowops_workflow(clone, tmp_path):
    reusable = installed_reusable_workflows()
    assert reusable is not None
    server, mappings, payload = prepare(clone, "push", tmp_path / "act", reusable=reusable)
    mirror = server / "acme" / "weather.git"  # named as origin says
    assert git(mirror, "rev-parse", "feature/rain") == git(clone, "rev-parse", "HEAD")
    checkout = mappings[f"{server.as_uri()}/actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803"]
    stand_in = yaml.safe_load((checkout / "action.yml").read_text())
    assert {"persist-credentials", "fetch-depth", "repository", "ref"} <= set(stand_in["inputs"])
    assert stand_in["inputs"]["repository"]["default"] == "${{ github.repository }}"
    release = mappings[f"{server.as_uri()}/flowops-dev/flowops@v1"]
    for name in ("flowops.yml", "flowops-checks.yml"):
        assert (release / ".github" / "workflows" / name).read_text() == (reusable / name).read_text()
    assert not [key for key in mappings if "some/other-action" in key]  # only what flowops can stand in for
    assert Path(payload).is_file()
