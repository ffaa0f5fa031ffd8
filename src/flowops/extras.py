"""What flowops installs only on demand: its integrations are extras (`pip install 'flowops-prefect[docker]'`), pulled
only by projects whose flowops.yaml uses them. A command that needs one that is missing says which to install,
before it changes anything."""

from __future__ import annotations

import importlib.util

from flowops.errors import FlowopsError

DISTRIBUTION = "flowops-prefect"  # `flowops` on PyPI is another project
PACKAGES = {"docker": "prefect_docker", "kubernetes": "prefect_kubernetes", "github": "prefect_github"}
POOL_TYPE_EXTRAS = {"docker": "docker", "kubernetes": "kubernetes"}  # work pool type -> the extra with its worker


class MissingExtra(FlowopsError):
    pass


def installed(extra: str) -> bool:
    return importlib.util.find_spec(PACKAGES[extra]) is not None


def install_hint(extra: str) -> str:
    return f"install flowops' {extra} extra: pip install '{DISTRIBUTION}[{extra}]' (it brings {PACKAGES[extra]})"


def require(extra: str, what: str) -> None:
    """Raise MissingExtra, naming it, when `extra` is not installed; `what` says what needed it."""
    if not installed(extra):
        raise MissingExtra(f"{what}: {install_hint(extra)}; nothing was changed")


def missing_for_pool(pool_type: str) -> str | None:
    """The extra a work pool of `pool_type` needs that is not installed, if any."""
    extra = POOL_TYPE_EXTRAS.get(pool_type)
    return extra if extra is not None and not installed(extra) else None
