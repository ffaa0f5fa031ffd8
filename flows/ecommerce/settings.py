"""Where the database is: never a literal in code or a parameter default.

The flow reads the URL from a Secret block first (a deployment names its block), then from
ECOMMERCE_DATABASE_URL, and only when neither exists falls back to an embedded SQLite file.
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_VARIABLE = "ECOMMERCE_DATABASE_URL"
DEFAULT_SECRET_BLOCK = "ecommerce-database-url"  # noqa: S105 - a block name, not a secret


def database_url_from_environment() -> str | None:
    return os.environ.get(DATABASE_URL_VARIABLE) or None


def embedded_database_url() -> str:
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return f"sqlite:///{data_home / 'flowops' / 'ecommerce.sqlite'}"
