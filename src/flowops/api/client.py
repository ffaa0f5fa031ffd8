"""The Prefect API through Prefect's own client (PREFECT_API_URL / PREFECT_API_KEY, as Prefect reads them); the
only other module that calls it is http.py, for the three calls the nothing-changed path makes without Prefect.

A command opens one client (`with connect() as server:`) and passes it to the operations; every call here is
small and synchronous. Prefect is imported lazily so `flowops --help` stays fast.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flowops.api.pool_types import default_base_job_template
from flowops.api.server import (
    FINAL_STATE_TYPES,
    REGISTRY_CREDENTIALS_BLOCK_TYPE,
    Lease,
    LiveAutomation,
    LiveDeployment,
    PrefectAPIError,
    RegistryLogin,
    RunResult,
    WorkPoolInfo,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import Variable, WorkPool
    from prefect.client.schemas.responses import DeploymentResponse

PAGE_SIZE = 200
POOL_CREATE_SECONDS = 60.0  # how long a pool creation the server refuses (5xx) is tried again
TERMINAL_POLL_SECONDS = 0.25  # a run followed to its end (cheap reads; a teardown waits on its cleanup run)

# The deployment fields flowops compares and restores; everything else is the server's own bookkeeping.
STORED_FIELDS = (
    "description", "parameters", "tags", "work_pool_name", "work_queue_name", "job_variables", "pull_steps",
    "entrypoint", "paused", "concurrency_limit", "enforce_parameter_schema", "parameter_openapi_schema", "version",
)  # fmt: skip


def server_is_healthy(api_url: str) -> bool:
    """Whether the Prefect server at `api_url` answers its health check (used while one starts)."""
    import httpx

    try:
        return httpx.get(f"{api_url}/health", timeout=2).text.strip() == "true"
    except httpx.HTTPError:
        return False


def require_api_url() -> str:
    """The configured Prefect API URL. Without one Prefect would start a throwaway local server, and a deploy or a
    teardown would "succeed" against it: refuse instead (a secret not set in CI, a Dependabot pull request)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise PrefectAPIError(
            "PREFECT_API_URL is not set (or empty): set it to the Prefect server to act on; nothing was done"
        )
    return str(url)


# A server that accepts connections and never answers kept a command waiting 423 s with Prefect's defaults (60 s
# a try, 5 retries). flowops' own (20 s a try, 2 retries) give up in about a minute; Prefect's settings, set, win.
DEFAULT_CLIENT_SETTINGS = {"PREFECT_API_REQUEST_TIMEOUT": 20.0, "PREFECT_CLIENT_MAX_RETRIES": 2}


@contextlib.contextmanager
def connect() -> Iterator[PrefectAPI]:
    """The configured server, through one client for the whole command."""
    import os

    import prefect.settings
    from prefect.client.orchestration import get_client

    api_url = require_api_url()
    defaults = {
        getattr(prefect.settings, name): value
        for name, value in DEFAULT_CLIENT_SETTINGS.items()
        if name not in os.environ
    }
    # no request yet: each call below says what failed
    with prefect.settings.temporary_settings(updates=defaults), get_client(sync_client=True) as client:
        yield PrefectAPI(client, api_url)


@contextlib.contextmanager
def _calling(what: str) -> Iterator[None]:
    """Turn connection and HTTP errors into one line saying what flowops was doing."""
    import httpx

    try:
        yield
    except httpx.HTTPStatusError as error:
        raise PrefectAPIError(f"{what}: {error.response.status_code} {error.response.text[:300]}") from None
    except (httpx.TransportError, RuntimeError) as error:
        from prefect.settings import PREFECT_API_URL

        from flowops.gitrepo import without_userinfo

        where = without_userinfo(str(PREFECT_API_URL.value()))  # a URL may carry a password: never shown
        message = without_userinfo(
            f"{what}: cannot reach the Prefect API at {where!r}: {error or type(error).__name__}"
        )
        raise PrefectAPIError(message) from None


class PrefectAPI:
    """A Prefect server through one synchronous client (httpx's client may be shared between threads: the lock's
    renewals use it too). Implements server.ServerAPI."""

    def __init__(self, client: SyncPrefectClient, api_url: str):
        self._client = client
        self.api_url = api_url
        self._flow_names: dict[UUID, str] = {}  # a flow's name, read once per command

    def _live(self, deployment: DeploymentResponse) -> LiveDeployment:
        if deployment.flow_id not in self._flow_names:
            self._flow_names[deployment.flow_id] = self._client.read_flow(deployment.flow_id).name
        data = deployment.model_dump(mode="json")
        schedules = [{"schedule": s["schedule"], "active": s["active"]} for s in data.get("schedules") or []]
        return LiveDeployment(
            id=deployment.id,
            flow_name=self._flow_names[deployment.flow_id],
            name=deployment.name,
            fields={name: data.get(name) for name in STORED_FIELDS},
            schedules=schedules,
        )

    def read_tagged_deployments(self, tags: list[str]) -> list[LiveDeployment]:
        """Every deployment carrying all of `tags` (flowops marks a branch's deployments with `branch:<slug>`)."""
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

        deployment_filter = DeploymentFilter(tags=DeploymentFilterTags(all_=tags))
        found: list[LiveDeployment] = []
        with _calling(f"reading deployments tagged {', '.join(tags)}"):
            offset = 0
            while True:
                page = self._client.read_deployments(
                    deployment_filter=deployment_filter, limit=PAGE_SIZE, offset=offset
                )
                found += [self._live(deployment) for deployment in page]
                if len(page) < PAGE_SIZE:
                    return found
                offset += PAGE_SIZE

    def read_deployments_by_name(self, full_names: list[str]) -> dict[str, LiveDeployment]:
        """The deployments named `flow/name` that exist, whoever made them: one query (a page per 200), however
        many names, so that a plan costs the same for 1 deployment or 100."""
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName

        wanted = set(full_names)
        if not wanted:
            return {}
        flows = sorted({name.split("/", 1)[0] for name in wanted})
        names = sorted({name.split("/", 1)[1] for name in wanted})
        flow_filter = FlowFilter(name=FlowFilterName(any_=flows))
        deployment_filter = DeploymentFilter(name=DeploymentFilterName(any_=names))
        found: dict[str, LiveDeployment] = {}
        with _calling("reading deployments"):
            offset = 0
            while True:
                page = self._client.read_deployments(
                    flow_filter=flow_filter, deployment_filter=deployment_filter, limit=PAGE_SIZE, offset=offset
                )
                for deployment in page:
                    live = self._live(deployment)
                    if live.full_name in wanted:  # the filters match flows and names apart: keep the exact pairs
                        found[live.full_name] = live
                if len(page) < PAGE_SIZE:
                    return found
                offset += PAGE_SIZE

    def delete_deployments(self, deployments: list[LiveDeployment]) -> None:
        from prefect.exceptions import ObjectNotFound

        with _calling("deleting deployments"):
            for deployment in deployments:
                with contextlib.suppress(ObjectNotFound):  # already gone: what we wanted
                    self._client.delete_deployment(deployment.id)

    def restore_deployment(self, snapshot: LiveDeployment) -> None:
        """Put a deployment back exactly as `snapshot` recorded it (used to undo a deploy that failed half-way)."""
        from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate

        with _calling(f"restoring {snapshot.full_name}"):
            self._client.update_deployment(snapshot.id, DeploymentUpdate(**snapshot.fields))
            for schedule in self._client.read_deployment_schedules(snapshot.id):
                self._client.delete_deployment_schedule(snapshot.id, schedule.id)
            if snapshot.schedules:
                self._client.create_deployment_schedules(
                    snapshot.id, [DeploymentScheduleCreate.model_validate(s) for s in snapshot.schedules]
                )

    def move_to_commit(self, updates: dict[UUID, dict[str, Any]]) -> None:
        """Write these fields (tags, pull_steps, version, description) of these deployments, and nothing else: no
        schedule is recreated, so their upcoming scheduled runs stay as they are. One after the other: several at
        once were no faster on PostgreSQL (2.7 s against 2.3 to 2.5 s for 101) and ten times slower on SQLite, whose
        server answers 503 to writes that queue up. With a plain configuration (api/http.py) and the same server, the
        writes go without Prefect's client, as PlainAPI.update_deployment retries them; otherwise a write refused even
        after the client's retries gets one more try: it writes the same fields."""
        from prefect.client.schemas.actions import DeploymentUpdate

        from flowops.api.http import plain_api

        plain = plain_api()
        if plain is not None and plain.url == self.api_url.rstrip("/"):
            # the same server, called without Prefect's client: 16 ms a write here against 23 to 25 ms through it
            for deployment_id, fields in updates.items():
                payload = DeploymentUpdate(**fields).model_dump(mode="json", exclude_unset=True)  # as Prefect's
                plain.update_deployment(str(deployment_id), payload)
            return
        with _calling("moving deployments to the commit"):
            for deployment_id, fields in updates.items():
                try:
                    self._client.update_deployment(deployment_id, DeploymentUpdate(**fields))
                except Exception:  # noqa: BLE001 - tried once more; its second failure is the one reported
                    self._client.update_deployment(deployment_id, DeploymentUpdate(**fields))

    def _read_work_pool(self, name: str) -> WorkPool | None:
        from prefect.exceptions import ObjectNotFound

        with _calling(f"reading work pool {name!r}"):
            try:
                return self._client.read_work_pool(name)
            except ObjectNotFound:
                return None

    def read_work_pool(self, name: str) -> WorkPoolInfo | None:
        """The work pool `name` on the server, or None when it does not exist."""
        pool = self._read_work_pool(name)
        if pool is None:
            return None
        return WorkPoolInfo(pool.type, (pool.base_job_template or {}).get("variables") or {})

    def default_job_variables_schema(self, pool_type: str) -> dict[str, Any]:
        """The job-variables schema of a new pool of `pool_type` (the one deploy will create)."""
        variables: dict[str, Any] = _default_base_job_template(pool_type).get("variables") or {}
        return variables

    def set_pool_default(self, name: str, variable: str, value: Any) -> None:
        """Make `value` the default of the pool's job variable `variable`: what every run in the pool gets unless
        its deployment sets it. A block reference there is resolved by the server and the worker as a run
        starts."""
        from prefect.client.schemas.actions import WorkPoolUpdate

        pool = self._read_work_pool(name)
        if pool is None:
            raise PrefectAPIError(f"work pool {name!r} does not exist")
        template = pool.base_job_template or {}
        properties = template.get("variables", {}).get("properties", {})
        if variable not in properties:
            raise PrefectAPIError(f"work pool {name!r} ({pool.type}) has no job variable {variable!r}")
        properties[variable]["default"] = value
        with _calling(f"setting {variable} on work pool {name!r}"):
            self._client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))

    def ensure_work_pool(self, name: str, pool_type: str, defaults: dict[str, Any] | None = None) -> bool:
        """Create the work pool if it is missing, with `defaults` for its job variables (e.g. network_mode=host);
        True when it was created. An existing pool is left as it is."""
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists

        if self._read_work_pool(name) is not None:
            return False
        template = _default_base_job_template(pool_type)
        properties = template.get("variables", {}).get("properties", {})
        for key, value in (defaults or {}).items():
            if key not in properties:
                raise PrefectAPIError(
                    f"{pool_type} work pools have no job variable {key!r} (they have: {', '.join(properties)})"
                )
            properties[key]["default"] = value
        import httpx

        # A worker starting on the pool creates it too: the server, waiting on that insert's lock, can give up with
        # a 500 (seen in the HA stack test), and the other insert may still be rolled back. So a 5xx is tried again
        # until the pool is there (someone else made it) or the insert succeeds, for at most POOL_CREATE_SECONDS.
        deadline = time.monotonic() + POOL_CREATE_SECONDS
        with _calling(f"creating work pool {name!r} of type {pool_type!r}"):
            while True:
                try:
                    self._client.create_work_pool(WorkPoolCreate(name=name, type=pool_type, base_job_template=template))
                    return True
                except ObjectAlreadyExists:  # created meanwhile by someone else
                    return False
                except httpx.HTTPStatusError as error:
                    if error.response.status_code < 500 or time.monotonic() > deadline:
                        raise
                if self._read_work_pool(name) is not None:
                    return False
                time.sleep(1)  # the server's own contention: nothing to wait on but time

    def block_document_name(self, block_id: str) -> str | None:
        """The name of the block with id `block_id`, or None when there is none."""
        from prefect.exceptions import ObjectNotFound

        with _calling(f"reading block {block_id}"):
            try:
                return self._client.read_block_document(UUID(str(block_id)), include_secrets=False).name
            except (ObjectNotFound, ValueError):
                return None

    def block_document_id(self, block_type: str, name: str) -> UUID | None:
        """The id of the block `block_type/name`, or None when there is none (its data is not read)."""
        from prefect.exceptions import ObjectNotFound

        with _calling(f"reading block {block_type}/{name}"):
            try:
                document = self._client.read_block_document_by_name(
                    name, block_type_slug=block_type, include_secrets=False
                )
            except ObjectNotFound:
                return None
        return document.id

    def existing_blocks(self, names: list[str]) -> set[str]:
        """Which of `names` some block document (of any type) has as its name; their data is not read."""
        if not names:
            return set()
        body = {"block_documents": {"name": {"any_": sorted(set(names))}}, "include_secrets": False, "limit": 200}
        with _calling("reading blocks"):
            found = self._client.request("POST", "/block_documents/filter", json=body).json()
        return {document["name"] for document in found}

    # Blocks are saved through the block classes (they know their schemas), which open clients of their own.
    def save_secret_block(self, name: str, value: str) -> bool:
        """Create or update the Secret block `name`; True when it was created."""
        from prefect.blocks.system import Secret
        from pydantic import SecretStr

        existed = self.block_document_id("secret", name) is not None
        with _calling(f"saving Secret block {name!r}"):
            Secret(value=SecretStr(value)).save(name, overwrite=True)
        return not existed

    def save_github_credentials_block(self, name: str, token: str) -> bool:
        """Create or update the prefect-github GitHubCredentials block `name`; True when it was created."""
        from prefect_github import GitHubCredentials

        existed = self.block_document_id("github-credentials", name) is not None
        with _calling(f"saving GitHubCredentials block {name!r}"):
            GitHubCredentials(token=token).save(name, overwrite=True)
        return not existed

    def save_registry_credentials_block(self, name: str, username: str, password: str, registry_url: str) -> bool:
        """Create or update the prefect-docker DockerRegistryCredentials block `name`; True when it was created."""
        from prefect_docker import DockerRegistryCredentials

        existed = self.block_document_id(REGISTRY_CREDENTIALS_BLOCK_TYPE, name) is not None
        credentials = DockerRegistryCredentials(username=username, password=password, registry_url=registry_url)
        with _calling(f"saving DockerRegistryCredentials block {name!r}"):
            credentials.save(name, overwrite=True)
        return not existed

    def read_registry_credentials(self, name: str) -> RegistryLogin | None:
        """The login the DockerRegistryCredentials block `name` holds, or None when there is no such block."""
        from prefect.exceptions import ObjectNotFound
        from pydantic import SecretStr

        with _calling(f"reading DockerRegistryCredentials block {name!r}"):
            try:
                document = self._client.read_block_document_by_name(
                    name, block_type_slug=REGISTRY_CREDENTIALS_BLOCK_TYPE
                )
            except ObjectNotFound:
                return None
        data = document.data
        secret = data.get("password")
        password = secret.get_secret_value() if isinstance(secret, SecretStr) else str(secret or "")
        return RegistryLogin(str(data.get("username") or ""), password, str(data.get("registry_url") or ""))

    def run_deployment(
        self,
        full_name: str,
        parameters: dict[str, Any],
        wait: bool,
        timeout: float | None,
        on_state: Callable[[str, str], None] | None = None,
    ) -> RunResult:
        """Create a flow run of `flow/name`; with `wait`, follow it until it ends (or `timeout` seconds pass)."""
        from prefect.exceptions import ObjectNotFound

        with _calling(f"running {full_name}"):
            try:
                deployment = self._client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                raise PrefectAPIError(f"no deployment {full_name!r} (names are flow/deployment)") from None
            flow_run = self._client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
            last_state: str | None = None
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                state = flow_run.state
                if on_state and state is not None and state.name != last_state:
                    on_state(flow_run.name, str(state.name))
                    last_state = state.name
                if not wait or (state is not None and state.is_final()):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(TERMINAL_POLL_SECONDS)
                flow_run = self._client.read_flow_run(flow_run.id)
        return _run_result(flow_run)

    def start_run(self, full_name: str, parameters: dict[str, Any]) -> RunResult:
        """A new flow run of `flow/name` with `parameters`, not waited for."""
        return self.run_deployment(full_name, parameters, wait=False, timeout=None)

    def read_run(self, flow_run_id: UUID) -> RunResult:
        with _calling(f"reading flow run {flow_run_id}"):
            return _run_result(self._client.read_flow_run(flow_run_id))

    def unfinished_runs(self, deployment_ids: list[UUID]) -> list[RunResult]:
        """Every run of these deployments that has not ended (Scheduled, Pending, Running, Paused, Cancelling)."""
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterDeploymentId,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        if not deployment_ids:
            return []
        ended = [StateType(state_type) for state_type in sorted(FINAL_STATE_TYPES)]
        found: list[RunResult] = []
        with _calling("reading the runs that have not ended"):
            while True:  # every page: a schedule may have made many
                page = self._client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        deployment_id=FlowRunFilterDeploymentId(any_=deployment_ids),
                        state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=ended)),
                    ),
                    offset=len(found),
                    limit=PAGE_SIZE,
                )
                found += [_run_result(flow_run) for flow_run in page]
                if len(page) < PAGE_SIZE:
                    return found

    def cancel_run(self, flow_run_id: UUID) -> None:
        """Stop a run that has not ended: one not started yet is Cancelled, a running one is asked to stop."""
        from prefect.client.schemas.objects import State
        from prefect.states import Cancelled, Cancelling

        with _calling(f"cancelling flow run {flow_run_id}"):
            flow_run = self._client.read_flow_run(flow_run_id)
            if flow_run.state is None or flow_run.state.is_final():
                return
            stop: State[Any] = Cancelling() if flow_run.state.is_running() else Cancelled()
            self._client.set_flow_run_state(flow_run_id, stop, force=True)

    def read_run_artifact(self, flow_run_id: UUID, key: str) -> Any:
        """The data of the artifact `key` a flow run made (its latest version; JSON decoded when it is JSON), or
        None when it made none."""
        import json

        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
        from prefect.client.schemas.sorting import ArtifactSort

        artifact_filter = ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
        )
        with _calling(f"reading artifact {key!r} of flow run {flow_run_id}"):
            found = self._client.read_artifacts(
                artifact_filter=artifact_filter, sort=ArtifactSort.CREATED_DESC, limit=1
            )
        if not found:
            return None
        data = found[0].data
        if isinstance(data, str):
            try:
                return json.loads(data)
            except json.JSONDecodeError:
                return data
        return data

    def latest_completed_run(self, full_name: str, artifact_key: str) -> tuple[RunResult, Any] | None:
        """The latest Completed run of `flow/name` that made the artifact `artifact_key`, and that artifact's data
        (among its last 10 Completed runs); None when there is none (or no such deployment)."""
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterDeploymentId,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort
        from prefect.exceptions import ObjectNotFound

        with _calling(f"reading the latest runs of {full_name}"):
            try:
                deployment = self._client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                return None
            runs = self._client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])),
                ),
                sort=FlowRunSort.END_TIME_DESC,
                limit=10,
            )
        for flow_run in runs:
            data = self.read_run_artifact(flow_run.id, artifact_key)
            if data is not None:
                return _run_result(flow_run), data
        return None

    def read_automations(self, *, names: list[str] | None = None, tag: str | None = None) -> list[LiveAutomation]:
        """The automations with any of these names, or carrying this tag (every page of them)."""
        from prefect.events.filters import AutomationFilter, AutomationFilterName, AutomationFilterTags

        from flowops.render.automations import canonical_spec

        wanted = AutomationFilter(
            name=AutomationFilterName(any_=names) if names is not None else None,
            tags=AutomationFilterTags(all_=[tag]) if tag is not None else None,
        )
        found: list[LiveAutomation] = []
        with _calling("reading automations"):
            while page := self._client.read_automations(automations=wanted, offset=len(found), limit=200):
                found += [LiveAutomation(a.id, a.name, canonical_spec(a.model_dump(mode="json"))) for a in page]
        return found

    def save_automation(self, spec: dict[str, Any], automation_id: UUID | None = None) -> UUID:
        """Create the automation `spec` describes, or replace the one `automation_id` names with it."""
        from prefect.events.schemas.automations import AutomationCore

        automation = AutomationCore.model_validate(spec)
        with _calling(f"saving automation {automation.name!r}"):
            if automation_id is None:
                return self._client.create_automation(automation)
            self._client.update_automation(automation_id, automation)
            return automation_id

    def delete_automation(self, automation_id: UUID) -> None:
        with _calling(f"deleting automation {automation_id}"):
            self._client.delete_automation(automation_id)

    def read_variable(self, name: str) -> Any:
        """The value of the Variable `name`, or None when there is none."""
        with _calling(f"reading variable {name!r}"):
            variable = self._client.read_variable_by_name(name)
        return variable.value if variable else None

    def create_variable(self, name: str, value: Any, tags: list[str]) -> bool:
        """Create the Variable `name`; False when it exists already (it is left as it is)."""
        from prefect.client.schemas.actions import VariableCreate
        from prefect.exceptions import ObjectAlreadyExists

        with _calling(f"creating variable {name!r}"):
            try:
                self._client.create_variable(VariableCreate(name=name, value=value, tags=tags))
            except ObjectAlreadyExists:
                return False
        return True

    def delete_variable(self, name: str) -> None:
        """Delete the Variable `name`; one that is not there is what was wanted."""
        from prefect.exceptions import ObjectNotFound

        with _calling(f"deleting variable {name!r}"), contextlib.suppress(ObjectNotFound):
            self._client.delete_variable_by_name(name)

    def take_lease(self, name: str, holder: str, seconds: float) -> Lease | None:
        """Create the Variable `name` if nobody has; the server's unique names make this atomic. None when
        taken."""
        from prefect.client.schemas.actions import VariableCreate
        from prefect.exceptions import ObjectAlreadyExists

        value = {"holder": holder, "seconds": seconds}
        with _calling(f"taking the lock {name!r}"):
            try:
                variable = self._client.create_variable(VariableCreate(name=name, value=value, tags=["flowops-lock"]))
            except ObjectAlreadyExists:
                return None
        return _lease(variable)

    def read_lease(self, name: str) -> Lease | None:
        with _calling(f"reading the lock {name!r}"):
            variable = self._client.read_variable_by_name(name)
        return _lease(variable) if variable else None

    def renew_lease(self, lease: Lease) -> bool:
        """Write the lease again, so the server's `updated` moves on; False when it is no longer ours."""
        import httpx

        value = {"holder": lease.holder, "seconds": lease.seconds}
        with _calling(f"renewing the lock {lease.name!r}"):
            try:
                self._client.request("PATCH", "/variables/{id}", path_params={"id": lease.id}, json={"value": value})
            except httpx.HTTPStatusError as error:
                if error.response.status_code == 404:
                    return False
                raise
        return True

    def drop_lease(self, lease: Lease) -> None:
        """Delete this very lease (by id: never one someone else took after it expired)."""
        import httpx

        with _calling(f"releasing the lock {lease.name!r}"):
            try:
                self._client.request("DELETE", "/variables/{id}", path_params={"id": lease.id})
            except httpx.HTTPStatusError as error:
                if error.response.status_code != 404:
                    raise


def _run_result(flow_run: Any) -> RunResult:
    state = flow_run.state
    seconds = None
    if flow_run.start_time is not None:
        end = flow_run.end_time
        if end is None:
            import datetime

            end = datetime.datetime.now(datetime.UTC)
        seconds = max(0.0, (end - flow_run.start_time).total_seconds())
    return RunResult(
        flow_run.id,
        flow_run.name,
        state.type.value if state else "UNKNOWN",
        str(state.name) if state else "Unknown",
        state.message if state else None,
        seconds,
        flow_run.deployment_id,
    )


def _default_base_job_template(pool_type: str) -> dict[str, Any]:
    """The job template `prefect work-pool create --type T` would give: the installed worker's, else (a type no
    package here provides) the one Prefect's collections registry lists, when it can be reached."""
    from prefect.utilities.asyncutils import run_coro_as_sync
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    template = default_base_job_template(pool_type)
    if template is None:
        template = run_coro_as_sync(get_default_base_job_template_for_infrastructure_type(pool_type))
    if not template:
        from flowops.extras import install_hint, missing_for_pool

        extra = missing_for_pool(pool_type)
        hint = install_hint(extra) if extra else "no installed worker package provides it"
        raise PrefectAPIError(f"work pool type {pool_type!r}: {hint}")
    return dict(template)


def _lease(variable: Variable) -> Lease:
    value = variable.value if isinstance(variable.value, dict) else {}
    return Lease(
        variable.id,
        variable.name,
        str(value.get("holder", "unknown")),
        float(value.get("seconds", 0)),
        variable.updated.timestamp() if variable.updated else 0.0,
    )
