"""Where the database is: never a literal in code or a parameter default.

A deployment names its Secret block, and a run whose block is missing fails. With no block named (the command
line, `make demo`), the URL comes from ECOMMERCE_DATABASE_URL, else an embedded SQLite file.
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
