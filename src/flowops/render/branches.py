"""Git branch names as Prefect names: a safe slug for each branch, and which branches are protected.

A branch name is data from whoever pushed it (`feature/Foo_Bar`, 120 characters, `x";touch${IFS}/tmp/x;#`):
it becomes a slug of `[a-z0-9-]` that is used in deployment names and tags, and never reaches a shell.
"""

from __future__ import annotations

import hashlib
import re

MAX_SLUG_LENGTH = 40
HASH_LENGTH = 8

_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")
# How every hashed slug ends. A branch named like one is hashed too, so kept names and hashed slugs never meet.
_HASHED_ENDING = re.compile(rf"(^|-)[0-9a-f]{{{HASH_LENGTH}}}$")


def branch_slug(branch: str) -> str:
    """`main` stays `main`; any name that does not survive as it is gets a short hash of the full name.

    So two branches never share a slug by accident (`feature/foo` and `feature-foo`, `Main` and `main`, or
    `Feature/Foo` and a branch literally named as its slug, `feature-foo-cc4d8924`), and a long name keeps a
    readable start: `feature-foo-bar-1a2b3c4d`.
    """
    if not branch or branch != branch.strip() or "\n" in branch:
        raise ValueError(f"not a usable branch name: {branch!r}")
    readable = _NOT_ALLOWED.sub("-", branch.lower()).strip("-")
    if readable == branch and len(readable) <= MAX_SLUG_LENGTH and not _HASHED_ENDING.search(readable):
        return readable
    digest = hashlib.sha256(branch.encode()).hexdigest()[:HASH_LENGTH]
    readable = readable[: MAX_SLUG_LENGTH - HASH_LENGTH - 1].rstrip("-")
    return f"{readable}-{digest}" if readable else digest


def data_environment_name(prefix: str, branch: str) -> str:
    """The name of `branch`'s own data environment (a PostgreSQL schema, a database file): `prefix` + the branch's
    slug, `-` made `_`. Valid unquoted as a PostgreSQL identifier (a 23-byte prefix + 40 bytes), and two branches
    never share one: their slugs differ, and `-` is the only character changed."""
    return data_environment_of_slug(prefix, branch_slug(branch))


def data_environment_of_slug(prefix: str, slug: str) -> str:
    """The same name from the slug alone (what a deployment's `branch:` tag keeps of a branch that is gone)."""
    return prefix + slug.replace("-", "_")
