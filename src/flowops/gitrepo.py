"""Facts about the git repository flowops deploys from. Git runs with argument lists, never through a shell."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from flowops.errors import FlowopsError

_SHA = re.compile(r"[0-9a-f]{40}")


class GitError(FlowopsError):
    pass


def _git_environment() -> dict[str, str]:
    # never a credentials prompt: a fetch that needs one fails instead of hanging a CI job
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0"}


def _git(root: Path, *args: str) -> str | None:
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False, env=_git_environment()
    )
    return result.stdout.strip() if result.returncode == 0 else None


def resolve_sha(root: Path, sha: str | None) -> str:
    """The full commit SHA of `sha` (any revision git understands), or of HEAD."""
    revision = sha or "HEAD"
    if revision.startswith("-"):
        raise GitError(f"not a commit: {revision!r}")
    full = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if full and _SHA.fullmatch(full):
        return full
    if sha and _SHA.fullmatch(sha):
        return sha  # a commit this clone does not have (a shallow CI checkout): trust the full SHA given
    raise GitError(f"{revision!r} is not a commit of the repository at {root}")


def first_commit_of(root: Path, revisions: list[str]) -> str | None:
    """The full SHA of the first of `revisions` that names a commit here (a SHA, a branch, origin/main)."""
    for revision in revisions:
        if revision.startswith("-"):
            continue
        for candidate in (revision, f"origin/{revision}") if "/" not in revision else (revision,):
            full = _git(root, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
            if full and _SHA.fullmatch(full):
                return full
    return None


def in_commit(root: Path, sha: str, path: str) -> bool:
    """Whether the commit `sha` holds the file `path` (relative to `root`)."""
    return _git(root, "cat-file", "-e", f"{sha}:./{path}") is not None  # ./: relative to `root`, not the top


def default_repository(root: Path, environ: Mapping[str, str] = os.environ) -> str | None:
    """The URL workers clone: GitHub's own in Actions, else the `origin` remote, else None (keep the file's)."""
    server, repository = environ.get("GITHUB_SERVER_URL"), environ.get("GITHUB_REPOSITORY")
    if server and repository:
        return f"{server.rstrip('/')}/{repository}.git"
    return _git(root, "remote", "get-url", "origin") or None


def origin_repository(root: Path) -> str | None:
    """`owner/name` of the `origin` remote (an https or ssh URL, GitHub's form), or None."""
    remote = _git(root, "remote", "get-url", "origin") or ""
    match = re.search(r"[:/]([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*?)(?:\.git)?/?$", remote)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def git_output(root: Path, *args: str) -> str | None:
    """What `git args` prints in `root` (stripped), or None when it fails."""
    return _git(root, *args)


def is_clean(root: Path) -> bool:
    """No tracked file differs from HEAD. Untracked files are not counted: workers clone the commit, which
    lacks them, and `__pycache__` is untracked in many repositories."""
    return _git(root, "status", "--porcelain", "--untracked-files=no") == ""


def head_sha(root: Path) -> str | None:
    return _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")


def is_ancestor(root: Path, older: str, newer: str) -> bool | None:
    """Whether `older` is an ancestor of `newer` (or the same commit). A commit this clone lacks is fetched from
    origin; None when it still lacks one (history rewritten: it is on no branch any more). A shallow clone cannot
    tell, and says so."""
    for commit in (older, newer):
        if not _SHA.fullmatch(commit):
            raise GitError(f"not a full commit SHA: {commit!r}")
        if not has_commit(root, commit):
            _git(root, "fetch", "--quiet", "--no-tags", "origin", commit)
    if _git(root, "rev-parse", "--is-shallow-repository") == "true":
        raise GitError(
            f"cannot tell whether {older[:12]} comes before {newer[:12]}: {root} is a shallow clone;"
            " fetch the whole history (actions/checkout with fetch-depth: 0)"
        )
    if not (has_commit(root, older) and has_commit(root, newer)):
        return None
    result = subprocess.run(
        ["git", "-C", str(root), "merge-base", "--is-ancestor", older, newer], capture_output=True, check=False
    )
    return result.returncode == 0


def has_commit(root: Path, sha: str) -> bool:
    return _git(root, "cat-file", "-e", f"{sha}^{{commit}}") is not None


def require_commit_of_branch(root: Path, sha: str, branch: str) -> None:
    """`sha` is in the history of `branch` on origin: a rollback goes back to what the branch once was, never to
    a commit from elsewhere (another branch, a fork's pull request ref)."""
    tip = _git(root, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}^{{commit}}")
    if tip is None:
        raise GitError(f"branch {branch!r} is not on origin (fetch the whole history: fetch-depth 0)")
    if not is_ancestor(root, sha, tip):
        raise GitError(f"{sha[:12]} is not a commit of branch {branch!r}: refusing to roll back to it")


def remote_branches(root: Path, repository: str, token: str | None = None) -> set[str]:
    """The branch names `repository` (a URL or a remote of `root`) has now, by `git ls-remote`. `token` goes, as
    an Authorization header, to that https URL only, through the environment (never on a command line)."""
    if repository.startswith("-"):
        raise GitError(f"not a repository: {repository!r}")
    environment = _git_environment()
    if token and repository.startswith("https://"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        environment.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"http.{repository}.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
        )
    result = subprocess.run(
        ["git", "-C", str(root), "ls-remote", "--heads", repository],
        capture_output=True, text=True, check=False, env=environment, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GitError(f"cannot list the branches of {without_userinfo(repository)}: {without_userinfo(detail)}")
    return {line.split("\trefs/heads/", 1)[1] for line in result.stdout.splitlines() if "\trefs/heads/" in line}


def without_userinfo(text: str) -> str:
    """`text` with every URL's credentials masked: a repository URL may carry a token."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)
