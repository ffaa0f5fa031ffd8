"""Work pool types: the job template a new pool of each type gets, from the worker package installed here.

Without a template, the server checks no job variables and workers ignore them: `prefect work-pool create
--type T` asks the same packages. The common types are imported directly: loading every Prefect collection to
find one costs 1.4 s here (prefect-kubernetes alone 1.2 s), so a project with no Kubernetes pool never pays it.
"""

from __future__ import annotations

import copy
import functools
import importlib
from typing import Any

_WORKERS = {
    "process": "prefect.workers.process:ProcessWorker",
    "docker": "prefect_docker.worker:DockerWorker",
    "kubernetes": "prefect_kubernetes.worker:KubernetesWorker",
}


def default_base_job_template(pool_type: str) -> dict[str, Any] | None:
    """A new pool's job template for `pool_type`, or None when no installed worker provides the type."""
    template = _template(pool_type)
    return copy.deepcopy(template) if template is not None else None


def job_variables_schema(pool_type: str) -> dict[str, Any] | None:
    """What a new pool of `pool_type` checks a deployment's job variables against (None: type unknown here)."""
    template = _template(pool_type)
    return copy.deepcopy(template.get("variables") or {}) if template is not None else None


@functools.cache
def _template(pool_type: str) -> dict[str, Any] | None:
    from prefect.workers.base import BaseWorker

    module, _, name = _WORKERS.get(pool_type, ":").partition(":")
    try:
        worker = getattr(importlib.import_module(module), name) if module else None
    except ImportError:  # the package is not installed: ask every collection, as Prefect does
        worker = None
    worker = worker or BaseWorker.get_worker_class_from_type(pool_type)
    return dict(worker.get_default_base_job_template()) if worker is not None else None
