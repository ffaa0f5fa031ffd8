"""Where the database is: never a literal in code or a parameter default.

A deployment names its Secret block, and a run whose block is missing fails. With no block named (the command
line), the URL comes from ECOMMERCE_DATABASE_URL, else an embedded SQLite file.
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_VARIABLE = "ECOMMERCE_DATABASE_URL"


def database_url_from_environment() -> str | None:
    return os.environ.get(DATABASE_URL_VARIABLE) or None


def embedded_database_url() -> str:
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return f"sqlite:///{data_home / 'flowops' / 'ecommerce.sqlite'}"


class MissingDatabaseError(LookupError):
    """The deployment names a Secret block the server does not have: loading elsewhere would lose the rows."""


def resolve_database_url(secret_block: str | None) -> str:
    """The Secret block's value when a block is named, and nothing else: a missing block is an error, never a
    quiet load into a file on the worker. With no block named (the command line):
    ECOMMERCE_DATABASE_URL, else the embedded SQLite file."""
    if secret_block:
        try:
            from prefect.blocks.system import Secret

            return Secret.load(secret_block).get()
        except ValueError:  # no such block
            raise MissingDatabaseError(
                f"database_secret_block: Secret block {secret_block!r} does not exist on the Prefect server; run"
                " `flowops bootstrap --environment ENVIRONMENT` with its variable set; nothing was loaded"
            ) from None
    url = database_url_from_environment()
    if url:
        return url
    url = embedded_database_url()
    from prefect import get_run_logger

    get_run_logger().warning(
        "No Secret block and no ECOMMERCE_DATABASE_URL: loading into the embedded SQLite database %s", url
    )
    return url
