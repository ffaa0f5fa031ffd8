"""An in-memory Prefect server for the operations' unit tests: flowops.server.ServerAPI over dicts.

It keeps the real interface and the real failure type (PrefectAPIError), so gitops, server_checks and lock run
unchanged against it in milliseconds. The end-to-end tests run the same operations against real servers.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from flowops.api.server import (
    Lease,
    LiveAutomation,
    LiveDeployment,
    PrefectAPIError,
    RegistryLogin,
    RunResult,
    WorkPoolInfo,
)


@dataclass
class FakeServer:
    deployments: dict[UUID, LiveDeployment] = field(default_factory=dict)
    pools: dict[str, WorkPoolInfo] = field(default_factory=dict)
    blocks: dict[tuple[str, str], UUID] = field(default_factory=dict)  # (block type, name) -> id
    leases: dict[str, Lease] = field(default_factory=dict)
    automations: dict[UUID, LiveAutomation] = field(default_factory=dict)
    variables: dict[str, tuple[Any, list[str]]] = field(default_factory=dict)  # name -> (value, tags)
    # How each deployment's runs end here (state type, message), as a worker would report them; none: no worker
    # picks the run up, and a wait ends at its timeout with the run still Scheduled.
    run_outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    runs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (deployment, parameters) started
    cancelled: list[UUID] = field(default_factory=list)  # the runs cancelled
    # Runs that have not ended, as workers left them (`add_run`). Cancelling one ends it, but for those in
    # `unstoppable`: they stay Cancelling, as a run whose worker is gone does.
    unfinished: dict[UUID, RunResult] = field(default_factory=dict)
    unstoppable: set[UUID] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)  # calls that fail as an unreachable server would
    calls: Counter[str] = field(default_factory=Counter)

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if name in self.failing:
            raise PrefectAPIError(f"{name}: cannot reach the Prefect API at 'http://fake/api': refused")

    def add_deployment(self, flow_name: str, name: str, **fields: Any) -> LiveDeployment:
        live = LiveDeployment(uuid.uuid4(), flow_name, name, fields)
        self.deployments[live.id] = live
        return live

    def by_name(self) -> dict[str, LiveDeployment]:
        return {live.full_name: live for live in self.deployments.values()}

    def add_block(self, block_type: str, name: str) -> UUID:
        self.blocks[(block_type, name)] = uuid.uuid4()
        return self.blocks[(block_type, name)]

    def read_tagged_deployments(self, tags: list[str]) -> list[LiveDeployment]:
        self._call("read_tagged_deployments")
        return [live for live in self.deployments.values() if set(tags) <= set(live.tags)]

    def read_deployments_by_name(self, full_names: list[str]) -> dict[str, LiveDeployment]:
        self._call("read_deployments_by_name")
        return {name: live for name, live in self.by_name().items() if name in full_names}

    def delete_deployments(self, deployments: list[LiveDeployment]) -> None:
        self._call("delete_deployments")
        for live in deployments:
            self.deployments.pop(live.id, None)

    def restore_deployment(self, snapshot: LiveDeployment) -> None:
        self._call("restore_deployment")
        self.deployments[snapshot.id] = snapshot

    def move_to_commit(self, updates: dict[UUID, dict[str, Any]]) -> None:
        self._call("move_to_commit")
        for deployment_id, fields in updates.items():
            live = self.deployments[deployment_id]
            self.deployments[deployment_id] = replace(live, fields={**live.fields, **fields})

    def read_work_pool(self, name: str) -> WorkPoolInfo | None:
        self._call("read_work_pool")
        return self.pools.get(name)

    def default_job_variables_schema(self, pool_type: str) -> dict[str, Any]:
        from flowops.api.client import _default_base_job_template  # Prefect's own templates: no server needed

        variables: dict[str, Any] = _default_base_job_template(pool_type)["variables"]
        return variables

    def ensure_work_pool(self, name: str, pool_type: str, defaults: dict[str, Any] | None = None) -> bool:
        self._call("ensure_work_pool")
        if name in self.pools:
            return False
        schema = self.default_job_variables_schema(pool_type)
        for key, value in (defaults or {}).items():
            schema["properties"][key]["default"] = value
        self.pools[name] = WorkPoolInfo(pool_type, schema)
        return True

    def set_pool_default(self, name: str, variable: str, value: Any) -> None:
        self._call("set_pool_default")
        self.pools[name].job_variables_schema["properties"][variable]["default"] = value

    def block_document_id(self, block_type: str, name: str) -> UUID | None:
        self._call("block_document_id")
        return self.blocks.get((block_type, name))

    def block_document_name(self, block_id: str) -> str | None:
        self._call("block_document_name")
        return next((name for (_, name), found in self.blocks.items() if str(found) == str(block_id)), None)

    def existing_blocks(self, names: list[str]) -> set[str]:
        self._call("existing_blocks")
        return {name for (_, name) in self.blocks if name in names}

    def read_variable(self, name: str) -> Any:
        self._call("read_variable")
        return self.variables[name][0] if name in self.variables else None

    def create_variable(self, name: str, value: Any, tags: list[str]) -> bool:
        self._call("create_variable")
        if name in self.variables:
            return False
        self.variables[name] = (value, tags)
        return True

    def delete_variable(self, name: str) -> None:
        self._call("delete_variable")
        self.variables.pop(name, None)

    def _save(self, block_type: str, name: str) -> bool:
        created = (block_type, name) not in self.blocks
        if created:
            self.add_block(block_type, name)
        return created

    def save_secret_block(self, name: str, value: str) -> bool:
        self._call("save_secret_block")
        return self._save("secret", name)

    def save_github_credentials_block(self, name: str, token: str) -> bool:
        self._call("save_github_credentials_block")
        return self._save("github-credentials", name)

    def save_registry_credentials_block(self, name: str, username: str, password: str, registry_url: str) -> bool:
        self._call("save_registry_credentials_block")
        return self._save("docker-registry-credentials", name)

    def read_registry_credentials(self, name: str) -> RegistryLogin | None:
        raise NotImplementedError("the image tests use a real server")

    def run_deployment(
        self,
        full_name: str,
        parameters: dict[str, Any],
        wait: bool,
        timeout: float | None,
        on_state: Callable[[str, str], None] | None = None,
    ) -> RunResult:
        self._call("run_deployment")
        if full_name not in self.by_name():
            raise PrefectAPIError(f"no deployment {full_name!r} (names are flow/deployment)")
        self.runs.append((full_name, parameters))
        state_type, message = self.run_outcomes.get(full_name, ("SCHEDULED", ""))
        return RunResult(uuid.uuid4(), f"run-{len(self.runs)}", state_type, state_type.title(), message)

    def add_run(self, deployment: LiveDeployment, state_type: str) -> RunResult:
        run = RunResult(uuid.uuid4(), f"run-{len(self.unfinished)}", state_type, state_type.title(), None, None)
        self.unfinished[run.flow_run_id] = replace(run, deployment_id=deployment.id)
        return self.unfinished[run.flow_run_id]

    def unfinished_runs(self, deployment_ids: list[UUID]) -> list[RunResult]:
        self._call("unfinished_runs")
        return [run for run in self.unfinished.values() if run.deployment_id in deployment_ids and not run.ended]

    def read_run(self, flow_run_id: UUID) -> RunResult:
        self._call("read_run")
        return self.unfinished[flow_run_id]

    def cancel_run(self, flow_run_id: UUID) -> None:
        self._call("cancel_run")
        self.cancelled.append(flow_run_id)
        if flow_run_id in self.unfinished:
            state_type = "CANCELLING" if flow_run_id in self.unstoppable else "CANCELLED"
            self.unfinished[flow_run_id] = replace(
                self.unfinished[flow_run_id], state_type=state_type, state_name=state_type.title()
            )

    def read_automations(self, *, names: list[str] | None = None, tag: str | None = None) -> list[LiveAutomation]:
        self._call("read_automations")
        return [
            automation
            for automation in self.automations.values()
            if (names is None or automation.name in names) and (tag is None or tag in automation.tags)
        ]

    def save_automation(self, spec: dict[str, Any], automation_id: UUID | None = None) -> UUID:
        self._call("save_automation")
        automation_id = automation_id or uuid.uuid4()
        self.automations[automation_id] = LiveAutomation(automation_id, spec["name"], spec)
        return automation_id

    def delete_automation(self, automation_id: UUID) -> None:
        self._call("delete_automation")
        self.automations.pop(automation_id, None)

    def take_lease(self, name: str, holder: str, seconds: float) -> Lease | None:
        self._call("take_lease")
        if name in self.leases:
            return None
        self.leases[name] = Lease(uuid.uuid4(), name, holder, seconds, time.time())
        return self.leases[name]

    def read_lease(self, name: str) -> Lease | None:
        self._call("read_lease")
        return self.leases.get(name)

    def renew_lease(self, lease: Lease) -> bool:
        self._call("renew_lease")
        current = self.leases.get(lease.name)
        if current is None or current.id != lease.id:
            return False
        self.leases[lease.name] = replace(current, renewed=time.time())
        return True

    def drop_lease(self, lease: Lease) -> None:
        self._call("drop_lease")
        current = self.leases.get(lease.name)
        if current is not None and current.id == lease.id:
            del self.leases[lease.name]
