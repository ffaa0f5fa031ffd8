"""The project's deployment files: `deployments/flowops.yaml` (ours) and the prefect.yaml files it names.

project: acme/flows                   # who owns a deployment: tagged project:acme/flows, the only ones flowops touches
environments:
  production:
    branch: main
    file: main/prefect.yaml
    secrets: {acme-production-db: ACME_DATABASE_URL}  # Secret blocks `bootstrap --environment production` saves
  staging:
    branch: staging
    file: staging/prefect.yaml
    secrets: {acme-staging-db: ACME_DATABASE_URL}     # the same variable, from the staging environment's secrets
branch_deployments_from: staging      # every other branch deploys this file, as its own deployments
branch_environments:                  # each branch deployment's own data (see branch_environment_name)
  prefix: branch_                     # its name: branch_<slug>, a PostgreSQL identifier
  parameters: {database_schema: "{{ flowops.environment }}"}  # given to every branch deployment
  cleanup: {deployment: drop-branch-data, parameters: {database_schema: "{{ flowops.environment }}"}, timeout: 300}
  sample_runs:                        # on a pull request: each changed deployment named here runs once, on a sample
    deployments: {staging: {sample_rows: 10000}}
    timeout: 600
work_pools:
  ecommerce-production: {type: docker}
  ecommerce-staging: {type: process}
automations: automations.yaml         # Prefect automations bootstrap applies (automations.py)
image:                                # the flows' image, for Docker pools; tagged by content hash
  name: ghcr.io/acme/flows
  registry_credentials: acme-registry # a private image: Docker workers pull it with this DockerRegistryCredentials block

What a branch deployment may use (its environment, that environment's work pools and blocks, its data
environment's name) is read from a protected branch's commit, the *policy* (`Project.with_policy_from`), never
from the branch's own files: a pull request changes its code and its staging file, not where they deploy.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import FlowopsError

CONFIG_FILE = "flowops.yaml"
PROJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
BLOCK_NAME_PATTERN = r"^[a-z0-9-]+$"  # what Prefect accepts as a block document's name


# What the flows load by name, and where bootstrap reads its value: never a credential of Prefect or of GitHub
# Actions themselves (a branch's flowops.yaml must not copy those into a block).
def _not_a_ci_credential(variable: str) -> str:
    if variable.startswith(("PREFECT_", "GITHUB_", "ACTIONS_", "RUNNER_")):
        raise ValueError(f"{variable} is Prefect's or GitHub Actions' own: it never goes into a block")
    return variable


BlockName = Annotated[str, Field(pattern=BLOCK_NAME_PATTERN)]
SecretVariable = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"), AfterValidator(_not_a_ci_credential)]


class ProjectError(FlowopsError):
    """The project's own configuration is unusable; the message is one line naming the file and field."""


class Environment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branch: str
    file: str
    # The Secret blocks `flowops bootstrap --environment NAME` saves, each from an environment variable: block name
    # -> variable. Each environment has its own: a block shared by two environments lets one load into the other's
    # database. The variable is read from that environment's own secrets (a GitHub environment's, in Actions).
    secrets: dict[BlockName, SecretVariable] = {}


# `{{ flowops.NAME }}` placeholders of branch_environments' parameters, filled in by render for each branch.
BRANCH_PLACEHOLDERS = ("environment", "branch", "slug", "commit")
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's limit on a schema's (or any identifier's) name


class Cleanup(BaseModel):
    """What teardown and gc run to drop a branch environment's data, before its deployments go."""

    model_config = ConfigDict(extra="forbid")

    # A deployment of the branch deployments' file: each branch's own copy of it (`NAME-<slug>`) is run.
    deployment: str = Field(min_length=1)
    parameters: dict[str, Any] = {}
    timeout: float = Field(default=300, gt=0, le=3600)  # seconds to wait for the cleanup run to end


class SampleRuns(BaseModel):
    """What a pull request proves on data: after its branch deploy, each changed branch deployment named here runs
    once with these parameters (a small sample), and the pull request's comment shows its state, duration and
    summary (the artifact `flowops-summary`) beside the latest staging run's."""

    model_config = ConfigDict(extra="forbid")

    # A deployment of the branch deployments' file (its name there) -> the parameters of its sample run, on top of
    # the deployment's own; `{{ flowops.* }}` placeholders are filled in as in `parameters`.
    deployments: dict[str, dict[str, Any]] = Field(min_length=1)
    timeout: float = Field(default=600, gt=0, le=3600)  # seconds to wait for the sample runs to end
    # Run the cleanup first, so each push's sample runs start from an empty data environment (a transform that
    # changed is never hidden behind rows the last push loaded). False: the branch's data stays between pushes.
    reset: bool = True


class BranchEnvironments(BaseModel):
    """Every branch deployment's own data environment: a name derived from the branch, handed to its flows as
    parameters (and as $FLOWOPS_DATA_ENVIRONMENT), and dropped by `cleanup` when the branch goes."""

    model_config = ConfigDict(extra="forbid")

    # The name is prefix + the branch's slug with `_` for `-`: at most 23 + 40 bytes, a PostgreSQL identifier;
    # two branches never share one (slugs are unique, and the change of `-` to `_` keeps them apart).
    prefix: str = Field(default="branch_", pattern=r"^[a-z][a-z0-9_]{0,22}$")
    parameters: dict[str, Any] = {}
    cleanup: Cleanup | None = None
    sample_runs: SampleRuns | None = None

    @model_validator(mode="after")
    def _a_reset_needs_a_cleanup(self) -> BranchEnvironments:
        if self.sample_runs and self.sample_runs.reset and self.cleanup is None:
            raise ValueError(
                "sample_runs.reset: resetting a branch environment runs its cleanup, and none is declared"
                " (declare branch_environments.cleanup, or set reset: false)"
            )
        return self


class WorkPool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str


class Image(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str  # registry/repository; the tag is a content hash (flowops image tag)
    dockerfile: str = "Dockerfile"
    # The DockerRegistryCredentials block workers pull a private image with: bootstrap saves it, deploy makes a
    # reference to it the `registry_credentials` default of each Docker pool (resolved as each run starts).
    registry_credentials: str | None = Field(default=None, pattern=BLOCK_NAME_PATTERN)


class FlowopsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # This repository's identity on a shared Prefect server (owner/name by convention): every deployment flowops
    # makes is tagged with it, and plan, prune, teardown and gc never consider a deployment without it.
    project: str = Field(pattern=PROJECT_PATTERN, max_length=100)
    environments: dict[str, Environment]
    branch_deployments_from: str
    work_pools: dict[str, WorkPool] = {}
    image: Image | None = None
    branch_environments: BranchEnvironments | None = None
    # The file under deployments/ holding the Prefect automations `flowops bootstrap` applies (automations.py).
    automations: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.ya?ml$")

    @model_validator(mode="before")
    @classmethod
    def _no_shared_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secrets" in data:
            raise ValueError(
                "secrets: declare each Secret block under the environment it belongs to"
                " (environments.NAME.secrets): one block shared by every environment let a branch's runs load into"
                " production's database"
            )
        return data

    @model_validator(mode="after")
    def _branch_deployments_come_from_an_environment(self) -> FlowopsConfig:
        if self.branch_deployments_from not in self.environments:
            raise ValueError(f"branch_deployments_from: {self.branch_deployments_from!r} is not an environment")
        branches = [environment.branch for environment in self.environments.values()]
        if len(set(branches)) != len(branches):
            raise ValueError("environments: two environments name the same branch")
        owners: dict[str, str] = {}
        for name, environment in self.environments.items():
            for block in environment.secrets:
                if block in owners:
                    raise ValueError(
                        f"environments: Secret block {block!r} is declared by {owners[block]!r} and {name!r}:"
                        " each environment needs blocks of its own"
                    )
                owners[block] = name
        return self

    def secret_owner(self, block: str) -> str | None:
        """The environment whose secrets declare `block`."""
        return next((name for name, env in self.environments.items() if block in env.secrets), None)


@dataclass(frozen=True)
class DeploymentFile:
    """One prefect.yaml as committed: where it is (relative to the project root) and its content."""

    path: str
    content: dict[str, Any]

    def deployments(self) -> list[dict[str, Any]]:
        return [d for d in self.content.get("deployments") or [] if isinstance(d, dict)]


@dataclass(frozen=True)
class Target:
    """What a branch deploys: its environment, the file it starts from, and whether it is a branch deployment."""

    branch: str
    environment: str
    file: DeploymentFile
    is_branch_deployment: bool
    project: str  # flowops.yaml's project: who owns what this target deploys


@dataclass(frozen=True)
class Policy:
    """flowops.yaml and each environment's file as a protected branch's commit holds them: what decides which
    environment a branch deploys into, and what a branch deployment may use there."""

    config: FlowopsConfig
    files: dict[str, DeploymentFile]  # environment -> its file at `ref`
    ref: str | None = None  # the git revision they were read from; None: the checked-out files themselves

    @property
    def source(self) -> str:
        return f"the protected branch's files ({self.ref})" if self.ref else "the checked-out files"


@dataclass(frozen=True)
class Project:
    root: Path
    config: FlowopsConfig
    deployments_dir: Path
    policy_from: Policy | None = field(default=None, compare=False)  # None: the checked-out files decide

    @property
    def policy(self) -> Policy:
        if self.policy_from is not None:
            return self.policy_from
        return Policy(self.config, {name: self.environment_file(name) for name in self.config.environments})

    def with_policy_from(self, ref: str) -> Project:
        """This project whose policy is read from the commit `ref` (a protected branch's)."""
        return replace(self, policy_from=load_policy(self, ref))

    def environment_file(self, environment: str) -> DeploymentFile:
        return load_deployment_file(self.root, self.deployments_dir / self.config.environments[environment].file)

    def files(self) -> list[DeploymentFile]:
        return [self.environment_file(name) for name in self.config.environments]

    def unreferenced_files(self) -> list[str]:
        """prefect.yaml files under deployments/ that no environment names: no branch would ever deploy them."""
        named = {
            (self.deployments_dir / environment.file).resolve() for environment in self.config.environments.values()
        }
        found = sorted(self.deployments_dir.glob("**/prefect.yaml"))
        return [str(path.relative_to(self.root)) for path in found if path.resolve() not in named]

    def automations_file(self) -> str | None:
        """The automations file flowops.yaml names, relative to the project root (None: it names none)."""
        if self.config.automations is None:
            return None
        return str((self.deployments_dir / self.config.automations).relative_to(self.root))

    @property
    def policy_config(self) -> FlowopsConfig:
        """The policy's flowops.yaml (without reading its files, as `policy` does)."""
        return self.policy_from.config if self.policy_from is not None else self.config

    def protected_branches(self) -> set[str]:
        return {environment.branch for environment in self.policy_config.environments.values()}

    def target(self, branch: str) -> Target:
        """What `branch` deploys: which environment (the policy says), from the checked-out file at the path the
        policy names for it."""
        policy = self.policy_config
        for name, environment in policy.environments.items():
            if environment.branch == branch:
                return Target(branch, name, self._file_at(environment.file), False, policy.project)
        source = policy.branch_deployments_from
        return Target(branch, source, self._file_at(policy.environments[source].file), True, policy.project)

    def _file_at(self, relative: str) -> DeploymentFile:
        return load_deployment_file(self.root, self.deployments_dir / relative)

    def pool_type(self, pool: str) -> str | None:
        declared = self.config.work_pools.get(pool)
        return declared.type if declared else None


def load_project(root: Path | str = ".", deployments_dir: str = "deployments") -> Project:
    root = Path(root).resolve()
    config_path = root / deployments_dir / CONFIG_FILE
    relative = config_path.relative_to(root)
    raw = read_yaml(config_path, relative, "not found (flowops needs it to know which file each branch deploys)")
    return Project(root, _validated_config(raw, relative), root / deployments_dir)


def _validated_config(raw: Any, relative: Path | str) -> FlowopsConfig:
    try:
        return FlowopsConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
        raise ProjectError(f"{relative}: {field}: {message}") from None


def load_policy(project: Project, ref: str) -> Policy:
    """flowops.yaml and the environments' files at the commit `ref`, read from git (not from the work tree)."""
    deployments = project.deployments_dir.relative_to(project.root)

    def at_ref(relative: Path, what: str) -> Any:
        where = f"{ref}:{relative.as_posix()}"
        result = subprocess.run(
            ["git", "-C", str(project.root), "show", "--end-of-options", where],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ProjectError(f"{where}: cannot read {what} from the protected branch's commit: {_first_line(result)}")
        return parse_yaml(result.stdout, where)

    config = _validated_config(at_ref(deployments / CONFIG_FILE, "the policy"), f"{ref}:{deployments / CONFIG_FILE}")
    files = {}
    for name, environment in config.environments.items():
        relative = deployments / environment.file
        content = at_ref(relative, f"environment {name}'s file")
        if not isinstance(content, dict):
            raise ProjectError(f"{ref}:{relative}: expected a mapping with a `deployments` list")
        files[name] = DeploymentFile(f"{ref}:{relative.as_posix()}", content)
    return Policy(config, files, ref)


def _first_line(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr.strip().splitlines() or ["git show failed"])[0]


def load_deployment_file(root: Path, path: Path) -> DeploymentFile:
    if not path.resolve().is_relative_to(root.resolve()):  # `file: ../../elsewhere.yaml`, an absolute path, a symlink
        raise ProjectError(f"{path}: outside the repository {root}: a deployment file must be one of its own")
    relative = str(path.resolve().relative_to(root.resolve()))
    content = read_yaml(path, relative, "not found")
    if not isinstance(content, dict):
        raise ProjectError(f"{relative}: expected a mapping with a `deployments` list")
    return DeploymentFile(relative, content)


# libyaml's loader where PyYAML has it (its wheels do): a 100-deployment file parses in 15 ms instead of 140.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, relative: Path | str, when_missing: str) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ProjectError(f"{relative}: {when_missing}") from None
    return parse_yaml(text, relative)


# More values than any real deployment file holds (300 deployments hold ~15,000): YAML aliases can make a small
# file stand for billions of them ("billion laughs"), which every walk over it would expand.
MAX_YAML_VALUES = 200_000


def parse_yaml(text: str, relative: Path | str) -> Any:
    try:  # a command reads each file several times (validate, render, plan): parse each text once
        parsed = _parsed_yaml(text)
    except yaml.YAMLError as error:
        raise ProjectError(f"{relative}: not valid YAML: {_one_line(error)}") from None
    if _expands_past(parsed, MAX_YAML_VALUES):
        raise ProjectError(
            f"{relative}: its aliases expand to more than {MAX_YAML_VALUES:,} values (a YAML alias bomb?); refused"
        )
    return copy.deepcopy(parsed)


def _expands_past(value: Any, limit: int) -> bool:
    """Whether `value`, with every alias expanded, holds more than `limit` values (stops counting there)."""
    pending, seen = [value], 0
    while pending:
        item = pending.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


@functools.lru_cache(maxsize=32)
def _parsed_yaml(text: str) -> Any:
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader, libyaml's or PyYAML's own


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
