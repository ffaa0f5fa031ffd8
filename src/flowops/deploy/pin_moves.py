"""A new commit that leaves every deployment of a branch defined as it was (a README, a test, a workflow changed):
each deployment moves to it (its pin, its commit tag, its version) through the API, without importing Prefect (about
1 s of imports here) and without the whole way's validation, plan and reads. At N = 100 this is the difference
between seconds of Prefect and 100 small writes.

It applies only when all of these hold; anything else goes the whole way (validation, the plan, Prefect's deploy):

- the branch's record (deploy/unchanged.py) is of a commit this one descends from, and what this deploy is made of
  (the rendered file, the policy, the environment it reads, the installed versions) is the recorded one but for the
  commit (`pinless_digest`);
- the server's deployments of the branch are as that deploy left them (the recorded live digest);
- between the two commits, no file changed that shapes what Prefect derives from the code (a flow's name,
  docstring and parameter schema) or what validation reads: Python sources, packaging and dependency files, the
  deployments folder, and any submodule or symlink;
- Prefect's inference of the version is reproduced exactly (GitHub Actions' environment, or git), and no deployment
  sets a version of its own.

Then each deployment's tags and pull steps are the live ones with the recorded commit replaced by this one, its
version is this commit's, and a description 'None' (Prefect's for a flow without a docstring) becomes null: what the
whole way writes for a deployment that only moves (gitops._pin_fields). The writes happen under the environment's
lock, one after the other (the server spends 15 to 20 ms on each; four at once saved little on PostgreSQL, 1.75 s
for 101 against 2.0 to 2.4 s, and on SQLite drew 503s that failed the move), and every one written is put back if
one fails. Like the nothing-changed path, this one does not check the work pools and blocks again: the deploy it
follows did, and only the whole way (or bootstrap) creates them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowops.api.http import PlainAPI
from flowops.api.server import PrefectAPIError
from flowops.config.project import Project
from flowops.deploy.unchanged import live_digest, pinless_digest, read_record
from flowops.errors import DeployFailed
from flowops.gitrepo import git_output, has_commit
from flowops.render.prefect_yaml import SHORT_SHA_LENGTH, Rendered, ownership_tags

# What the version inference of `prefect deploy` reads (prefect/_internal/versioning.py), in its order: GitHub
# Actions' three variables, then GitLab's, Bitbucket's and Azure DevOps', each keyed by its commit variable, then git.
GITHUB_VERSION_ENVIRONMENT = ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_REPOSITORY")
OTHER_CI_COMMIT = ("CI_COMMIT_SHA", "BITBUCKET_COMMIT", "BUILD_SOURCEVERSION")
# Files whose change can change what a deploy derives from the code or what validation reads
CODE_SUFFIXES = (".py", ".pyi", ".pyx", ".pxd", ".pth", ".so", ".ipynb")
DEPENDENCY_FILES = frozenset(
    {"pyproject.toml", "setup.py", "setup.cfg", "uv.lock", "poetry.lock", "pdm.lock", "Pipfile", "Pipfile.lock",
     "environment.yml", "environment.yaml", "conda-lock.yml", "prefect.yaml", "flowops.yaml", ".prefectignore"}
)  # fmt: skip
LINKED_MODES = ("160000", "120000")  # a submodule, a symlink: what they point to is not in the diff


@dataclass(frozen=True)
class PinMove:
    """What moving a branch from `old` to `new` writes: `updates` by deployment id; `live`, the deployments as they
    are (what an undo writes back)."""

    old: str
    new: str
    live: list[dict[str, Any]]
    updates: dict[str, dict[str, Any]]


def moves_forward_without_code(project: Project, old: str, new: str) -> bool:
    """`new` descends from `old`, and no file between them can change what the whole way would derive or check."""
    root = project.root
    if old == new or not (has_commit(root, old) and has_commit(root, new)):
        return False
    if git_output(root, "merge-base", "--is-ancestor", old, new) is None:
        return False  # not a descendant (a rollback, another line of history), or git could not tell
    changes = git_output(root, "diff", "--raw", "--no-renames", "--no-abbrev", old, new)
    top = git_output(root, "rev-parse", "--show-toplevel")
    if changes is None or not top:
        return False
    deployments = project.deployments_dir.resolve().relative_to(Path(top).resolve()).as_posix()
    for line in changes.splitlines():
        modes, _, path = line.partition("\t")  # ":100644 100644 <old blob> <new blob> M", then the path
        old_mode, new_mode = modes.lstrip(":").split()[:2]
        name = path.rsplit("/", 1)[-1]
        if (
            old_mode in LINKED_MODES
            or new_mode in LINKED_MODES
            or path.endswith(CODE_SUFFIXES)
            or name in DEPENDENCY_FILES
            or (name.startswith("requirements") and name.endswith((".txt", ".in")))
            or path.startswith(f"{deployments}/")
        ):
            return False
    return True


def prefect_inferred_version(root: Path, environment: Mapping[str, str]) -> str | None:
    """The version `prefect deploy` infers for a deployment that sets none, found as Prefect finds it; None when
    this cannot be sure of it (another CI's environment, no origin remote: Prefect then falls back to other
    sources). tests/unit/flowops/test_pin_moves.py compares it with Prefect's own inference."""
    if all(environment.get(name) for name in GITHUB_VERSION_ENVIRONMENT):
        return environment["GITHUB_SHA"][:SHORT_SHA_LENGTH]
    if any(environment.get(name) for name in OTHER_CI_COMMIT):
        return None
    if not git_output(root, "config", "--get", "remote.origin.url"):
        return None
    head = git_output(root, "rev-parse", "HEAD")
    return head[:SHORT_SHA_LENGTH] if head else None


def planned_move(api: PlainAPI, project: Project, rendered: Rendered, environment: Mapping[str, str]) -> PinMove | None:
    """The pin moves that take the branch to the rendered commit, or None when this path does not apply (see the
    module's docstring) or the server could not say."""
    specs = rendered.content.get("deployments") or []
    if any("version" in d or "version_type" in d for d in specs):
        return None
    version = prefect_inferred_version(project.root, environment)
    target = rendered.target
    try:
        record = read_record(api, rendered)
        if record is None or record.get("pinless") != pinless_digest(project, rendered, environment):
            return None
        old = str(record.get("commit") or "")
        if version is None or not moves_forward_without_code(project, old, rendered.sha):
            return None
        live = api.deployments_tagged(ownership_tags(target.project, target.branch))
    except PrefectAPIError:
        return None  # the whole way will say what is wrong with the server
    if not live or record.get("live") != live_digest(live):
        return None
    # Prefect creates a deployment whose flow has no docstring with the description 'None', and the whole way's
    # move writes null over it (gitops._pin_fields). Without a description in the file, 'None' can only be that.
    created_without = [d["id"] for d in live if d.get("description") == "None"]
    if created_without and any("description" in d for d in specs):
        return None
    updates = {
        d["id"]: {
            "tags": _moved(d.get("tags") or [], old, rendered.sha),
            "pull_steps": _moved(d.get("pull_steps") or [], old, rendered.sha),
            "version": version,
            **({"description": None} if d["id"] in created_without else {}),
        }
        for d in live
    }
    return PinMove(old, rendered.sha, live, updates)


def _moved(value: Any, old: str, new: str) -> Any:
    """`value` with commit `old` replaced by `new`, in full and in its short form (the commit tag)."""
    if isinstance(value, str):
        return value.replace(old, new).replace(old[:SHORT_SHA_LENGTH], new[:SHORT_SHA_LENGTH])
    if isinstance(value, list):
        return [_moved(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: _moved(item, old, new) for key, item in value.items()}
    return value


def move_pins(
    api: PlainAPI,
    project: Project,
    rendered: Rendered,
    environment: Mapping[str, str],
    on_moved: Callable[[], None] | None = None,
) -> int | None:
    """Move the branch's deployments to the rendered commit under the environment's lock; `on_moved` runs once
    they all moved, still under the lock (to record the deploy, as gitops.deploy's `on_deployed`). How many moved,
    or None when this path does not apply (nothing was written). Raises DeployFailed when a write failed; every
    deployment written is then put back."""
    from flowops.deploy.lock import environment_lock
    from flowops.timings import phase

    with phase("pin moves: the check"):
        if planned_move(api, project, rendered, environment) is None:  # first without the lock: most stop here
            return None
    target = rendered.target
    purpose = f"deploy {target.branch} @ {rendered.sha[:8]} (pin moves)"
    with environment_lock(api, target.project, target.environment, purpose):
        with phase("pin moves: the check again, under the lock"):
            move = planned_move(api, project, rendered, environment)  # another deploy may have come first
        if move is None:
            return None
        with phase(f"pin moves: writing ({len(move.updates)})"):
            write_pin_moves(api, move)
        if on_moved:
            on_moved()
    return len(move.updates)


def write_pin_moves(api: PlainAPI, move: PinMove) -> None:
    """Write `move`, one deployment after the other; when a write fails (after its tries, see
    PlainAPI.update_deployment), put back every one written and raise DeployFailed."""
    written: list[dict[str, Any]] = []
    for deployment in move.live:
        try:
            api.update_deployment(deployment["id"], move.updates[deployment["id"]])
        except PrefectAPIError as error:
            failure = f"moving {len(move.updates)} deployment(s) to {move.new[:12]}: {error}"
            break
        written.append(deployment)
    else:
        return
    try:
        for deployment in written:
            api.update_deployment(
                deployment["id"], {key: deployment.get(key) for key in move.updates[deployment["id"]]}
            )
    except PrefectAPIError as error:
        raise DeployFailed(f"{failure}, and undoing it failed: {error}", "") from None
    raise DeployFailed(f"{failure}; the server was put back as it was", "")
