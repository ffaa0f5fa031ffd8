"""Branch environments: the data of a branch deployment, apart from staging's and production's.

flowops gives a branch deployment the parameter `schema` (its data environment's name, e.g. `branch_feature_x`)
and tells the run where it is in its environment: $FLOWOPS_PROJECT, $FLOWOPS_BRANCH, $FLOWOPS_BRANCH_DEPLOYMENT.
The first load makes the schema and marks it, in its comment, as this project's branch environment; the cleanup
flow (cleanup.py) drops a schema only when it carries that mark, so it never drops `public`, staging's or
production's tables, or another project's environment. In SQLite a schema is a database file of its own beside
the main one, and dropping it removes that file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MARKER_PREFIX = "flowops branch environment"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Never a data environment: PostgreSQL's own schemas and the default one.
RESERVED_SCHEMAS = {"public", "information_schema"}


class SchemaError(ValueError):
    """A schema name flowops' branch environments cannot use."""


def check_schema_name(schema: str) -> str:
    """`schema` if it is an unquoted PostgreSQL identifier (at most 63 bytes) that is not reserved."""
    if not _SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_"):
        raise SchemaError(
            f"schema: {schema!r} must be lower-case letters, digits and _, at most 63 characters, not starting pg_"
        )
    return schema


def environment_marker() -> str:
    """The comment of a schema a load made: whose branch environment it is."""
    project = os.environ.get("FLOWOPS_PROJECT", "")
    branch = os.environ.get("FLOWOPS_BRANCH", "")
    return f"{MARKER_PREFIX}; project={project}; branch={branch}"


def marker_project(comment: str | None) -> str | None:
    """The project a schema's comment names, or None when the comment is not a branch environment's mark."""
    if not comment or not comment.startswith(MARKER_PREFIX + ";"):
        return None
    fields = dict(part.strip().partition("=")[::2] for part in comment.split(";")[1:])
    return fields.get("project", "")


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sqlite_schema_path(main: Path, schema: str) -> Path:
    """Where a schema of the SQLite database `main` lives: `ecommerce.sqlite` -> `ecommerce.branch_x.sqlite`."""
    return main.with_name(f"{main.stem}.{check_schema_name(schema)}{main.suffix or '.sqlite'}")
