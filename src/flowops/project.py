"""The project's deployment files: `deployments/flowops.yaml` (ours) and the prefect.yaml files it names.

project: acme/flows                   # who owns a deployment: tagged project:acme/flows, the only ones flowops touches
environments:
  production: {branch: main, file: main/prefect.yaml}
  staging: {branch: staging, file: staging/prefect.yaml}
branch_deployments_from: staging      # every other branch deploys this file, as its own deployments
work_pools:
  ecommerce-production: {type: docker}
  ecommerce-staging: {type: process}
secrets: {acme-db: ACME_DATABASE_URL}  # Secret blocks bootstrap saves from the environment
automations: automations.yaml         # Prefect automations bootstrap applies (automations.py)
image:                                # the flows' image, for Docker pools; tagged by content hash
  name: ghcr.io/acme/flows
  registry_credentials: acme-registry # a private image: Docker workers pull it with this DockerRegistryCredentials block
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
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
    # The Secret blocks `flowops bootstrap` saves, each from an environment variable: block name -> variable.
    secrets: dict[BlockName, SecretVariable] = {}
    # The file under deployments/ holding the Prefect automations `flowops bootstrap` applies (automations.py).
    automations: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.ya?ml$")

    @model_validator(mode="after")
    def _branch_deployments_come_from_an_environment(self) -> FlowopsConfig:
        if self.branch_deployments_from not in self.environments:
            raise ValueError(f"branch_deployments_from: {self.branch_deployments_from!r} is not an environment")
        branches = [environment.branch for environment in self.environments.values()]
        if len(set(branches)) != len(branches):
            raise ValueError("environments: two environments name the same branch")
        return self


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
class Project:
    root: Path
    config: FlowopsConfig
    deployments_dir: Path

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

    def protected_branches(self) -> set[str]:
        return {environment.branch for environment in self.config.environments.values()}

    def target(self, branch: str) -> Target:
        for name, environment in self.config.environments.items():
            if environment.branch == branch:
                return Target(branch, name, self.environment_file(name), False, self.config.project)
        source = self.config.branch_deployments_from
        return Target(branch, source, self.environment_file(source), True, self.config.project)

    def pool_type(self, pool: str) -> str | None:
        declared = self.config.work_pools.get(pool)
        return declared.type if declared else None


def load_project(root: Path | str = ".", deployments_dir: str = "deployments") -> Project:
    root = Path(root).resolve()
    config_path = root / deployments_dir / CONFIG_FILE
    relative = config_path.relative_to(root)
    raw = read_yaml(config_path, relative, "not found (flowops needs it to know which file each branch deploys)")
    try:
        config = FlowopsConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ProjectError(f"{relative}: {field}: {first['msg']}") from None
    return Project(root, config, root / deployments_dir)


def load_deployment_file(root: Path, path: Path) -> DeploymentFile:
    relative = str(path.relative_to(root))
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
    try:  # a command reads each file several times (validate, render, plan): parse each text once
        return copy.deepcopy(_parsed_yaml(text))
    except yaml.YAMLError as error:
        raise ProjectError(f"{relative}: not valid YAML: {_one_line(error)}") from None


@functools.lru_cache(maxsize=32)
def _parsed_yaml(text: str) -> Any:
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader, libyaml's or PyYAML's own


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
