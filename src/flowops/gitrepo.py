"""Facts about the git repository flowops deploys from. Git runs with argument lists, never through a shell."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

_SHA = re.compile(r"[0-9a-f]{40}")


class GitError(Exception):
    pass


def _git(root: Path, *args: str) -> str | None:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
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


def default_repository(root: Path, environ: Mapping[str, str] = os.environ) -> str | None:
    """The URL workers clone: GitHub's own in Actions, else the `origin` remote, else None (keep the file's)."""
    server, repository = environ.get("GITHUB_SERVER_URL"), environ.get("GITHUB_REPOSITORY")
    if server and repository:
        return f"{server.rstrip('/')}/{repository}.git"
    return _git(root, "remote", "get-url", "origin") or None
