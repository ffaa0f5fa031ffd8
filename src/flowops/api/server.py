"""What flowops needs of a Prefect server, as data and one protocol, with no Prefect import.

`prefect_api.connect()` gives the real server (one client per command); tests pass an in-memory fake. The
operations (gitops, server_checks, lock) take a `ServerAPI` and never open a client of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from flowops.errors import FlowopsError

REGISTRY_CREDENTIALS_BLOCK_TYPE = "docker-registry-credentials"


class PrefectAPIError(FlowopsError):
    """The Prefect API could not be reached or refused a call; the message says which and why."""


@dataclass(frozen=True)
class LiveDeployment:
    id: UUID
    flow_name: str
    name: str
    fields: dict[str, Any]  # prefect_api.STORED_FIELDS, as the server returns them
    schedules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    @property
    def tags(self) -> list[str]:
        return list(self.fields.get("tags") or [])


@dataclass(frozen=True)
class WorkPoolInfo:
    type: str
    job_variables_schema: dict[str, Any]  # what the server checks a deployment's job variables against

    def default_of(self, variable: str) -> Any:
        """The pool's default for the job variable `variable` (None when it has none)."""
        return self.job_variables_schema.get("properties", {}).get(variable, {}).get("default")


@dataclass(frozen=True)
class LiveAutomation:
    id: UUID
    name: str
    spec: dict[str, Any]  # automations.canonical_spec of what the server holds: comparable with a file's

    @property
    def tags(self) -> list[str]:
        return list(self.spec.get("tags") or [])


@dataclass(frozen=True)
class RegistryLogin:
    username: str
    password: str = field(repr=False)
    registry_url: str


@dataclass(frozen=True)
class RunResult:
    flow_run_id: UUID
    flow_run_name: str
    state_type: str
    state_name: str
    message: str | None
    seconds: float | None = None  # from its start to its end (or to now), once it has started
    deployment_id: UUID | None = None

    @property
    def completed(self) -> bool:
        return self.state_type == "COMPLETED"

    @property
    def ended(self) -> bool:
        return self.state_type in FINAL_STATE_TYPES


FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


@dataclass(frozen=True)
class Lease:
    """A lock held on the server: a Variable that exists while someone holds it (see lock.py)."""

    id: UUID
    name: str
    holder: str
    seconds: float  # how long it lasts after it was taken or last renewed
    renewed: float  # when the server last wrote it (epoch seconds, the server's clock)


class LeaseAPI(Protocol):
    """The calls that hold an environment's lock (lock.py): Prefect's client (client.py) and the plain one
    (http.py) both make them."""

    def take_lease(self, name: str, holder: str, seconds: float) -> Lease | None: ...

    def read_lease(self, name: str) -> Lease | None: ...

    def renew_lease(self, lease: Lease) -> bool: ...

    def drop_lease(self, lease: Lease) -> None: ...


class ServerAPI(LeaseAPI, Protocol):
    """The calls flowops makes. Each raises PrefectAPIError, saying what it was doing, when the server fails."""

    def read_tagged_deployments(self, tags: list[str]) -> list[LiveDeployment]: ...

    def read_deployments_by_name(self, full_names: list[str]) -> dict[str, LiveDeployment]: ...

    def delete_deployments(self, deployments: list[LiveDeployment]) -> None: ...

    def restore_deployment(self, snapshot: LiveDeployment) -> None: ...

    def move_to_commit(self, updates: dict[UUID, dict[str, Any]]) -> None: ...

    def read_work_pool(self, name: str) -> WorkPoolInfo | None: ...

    def default_job_variables_schema(self, pool_type: str) -> dict[str, Any]: ...

    def ensure_work_pool(self, name: str, pool_type: str, defaults: dict[str, Any] | None = None) -> bool: ...

    def set_pool_default(self, name: str, variable: str, value: Any) -> None: ...

    def block_document_id(self, block_type: str, name: str) -> UUID | None: ...

    def block_document_name(self, block_id: str) -> str | None: ...

    def existing_blocks(self, names: list[str]) -> set[str]: ...

    def save_secret_block(self, name: str, value: str) -> bool: ...

    def save_github_credentials_block(self, name: str, token: str) -> bool: ...

    def save_registry_credentials_block(self, name: str, username: str, password: str, registry_url: str) -> bool: ...

    def read_registry_credentials(self, name: str) -> RegistryLogin | None: ...

    def run_deployment(
        self,
        full_name: str,
        parameters: dict[str, Any],
        wait: bool,
        timeout: float | None,
        on_state: Callable[[str, str], None] | None = None,
    ) -> RunResult: ...

    def start_run(self, full_name: str, parameters: dict[str, Any]) -> RunResult: ...

    def read_run(self, flow_run_id: UUID) -> RunResult: ...

    def unfinished_runs(self, deployment_ids: list[UUID]) -> list[RunResult]: ...

    def cancel_run(self, flow_run_id: UUID) -> None: ...

    def read_run_artifact(self, flow_run_id: UUID, key: str) -> Any: ...

    def latest_completed_run(self, full_name: str, artifact_key: str) -> tuple[RunResult, Any] | None: ...

    def read_automations(self, *, names: list[str] | None = None, tag: str | None = None) -> list[LiveAutomation]: ...

    def save_automation(self, spec: dict[str, Any], automation_id: UUID | None = None) -> UUID: ...

    def delete_automation(self, automation_id: UUID) -> None: ...

    def read_variable(self, name: str) -> Any: ...

    def create_variable(self, name: str, value: Any, tags: list[str]) -> bool: ...

    def delete_variable(self, name: str) -> None: ...
