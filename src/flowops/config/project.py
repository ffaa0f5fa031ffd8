"""The project's deployment files: `deployments/flowops.yaml` (ours) and the prefect.yaml files it names.

Every key, its type, default and meaning: `flowops schema --markdown` (reference.py generates it from the models
below, whose field descriptions are the reference's text), with a whole example.

What a branch deployment may use (its environment, that environment's work pools and blocks, its data
environment's name) is read from a protected branch's commit, the *policy* (`Project.with_policy_from`), never
from the branch's own files: a pull request changes its code and its staging file, not where they deploy.
"""

from __future__ import annotations

import copy
import functools
import posixpath
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from flowops.errors import FlowopsError

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
    """A protected branch and the prefect.yaml it deploys."""

    model_config = ConfigDict(extra="forbid")

    branch: str = Field(description="The git branch whose pushes deploy this environment (`main`, `staging`).")
    file: str = Field(
        description="Its prefect.yaml, relative to `deployments/` (`main/prefect.yaml`; `../prefect.yaml` for a root"
        " file)."
    )
    secrets: dict[BlockName, SecretVariable] = Field(
        default={},
        description="The Secret blocks `flowops bootstrap --environment NAME` saves, block name -> the environment"
        " variable holding its value (in Actions, that GitHub environment's secret). Each environment has blocks of"
        " its own: a block shared by two environments would let one load into the other's database.",
    )


# `{{ flowops.NAME }}` placeholders of branch_environments' parameters, filled in by render for each branch.
BRANCH_PLACEHOLDERS = ("environment", "branch", "slug", "commit")
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's limit on a schema's (or any identifier's) name
_PLACEHOLDERS_NOTE = "`{{ flowops.environment }}`, `.branch`, `.slug` and `.commit` are filled in for each branch."


class Cleanup(BaseModel):
    """What teardown and gc run to drop a branch environment's data, before its deployments go."""

    model_config = ConfigDict(extra="forbid")

    deployment: str = Field(
        min_length=1,
        description="A deployment of the branch deployments' file: each branch's own copy of it (`NAME-<slug>`) is"
        " run.",
    )
    parameters: dict[str, Any] = Field(default={}, description=f"The cleanup run's parameters. {_PLACEHOLDERS_NOTE}")
    timeout: float = Field(
        default=300, gt=0, le=3600, description="Seconds to wait for the cleanup run; one not ended then is cancelled"
        " (it never runs later, beside the retry) and reported (exit 1), and gc retries it."
    )  # fmt: skip


class SampleRuns(BaseModel):
    """What a pull request proves on data: after its branch deploy, each changed branch deployment named here runs
    once with these parameters (a small sample), and the pull request's comment shows its state, duration and
    summary (the artifact `flowops-summary`) beside the latest staging run's."""

    model_config = ConfigDict(extra="forbid")

    deployments: dict[str, dict[str, Any]] = Field(
        min_length=1,
        description="A deployment of the branch deployments' file (its name there) -> the parameters of its sample"
        f" run, on top of the deployment's own. {_PLACEHOLDERS_NOTE}",
    )
    timeout: float = Field(
        default=600, gt=0, le=3600, description="Seconds to wait for the sample runs; one not ended then is"
        " cancelled and fails the job."
    )  # fmt: skip
    reset: bool = Field(
        default=True,
        description="Run the cleanup first, so each push's sample runs start from an empty data environment (a"
        " changed transform is never hidden behind rows the last push loaded). false: the data stays between pushes.",
    )


class BranchEnvironments(BaseModel):
    """Every branch deployment's own data environment: a name derived from the branch, handed to its flows as
    parameters (and as $FLOWOPS_DATA_ENVIRONMENT), and dropped by `cleanup` when the branch goes."""

    model_config = ConfigDict(extra="forbid")

    # at most 23 + 40 bytes, a PostgreSQL identifier; two branches never share one (slugs are unique, and the change
    # of `-` to `_` keeps them apart)
    prefix: str = Field(
        default="branch_",
        pattern=r"^[a-z][a-z0-9_]{0,22}$",
        description="The name is this prefix and the branch's slug, `-` as `_`: `branch_feature_foo_1a2b3c4d`.",
    )
    parameters: dict[str, Any] = Field(
        default={}, description=f"Given to every branch deployment (but the cleanup). {_PLACEHOLDERS_NOTE}"
    )
    cleanup: Cleanup | None = Field(default=None, description="How teardown and gc drop the data.")
    sample_runs: SampleRuns | None = Field(default=None, description="What a pull request runs to prove its change.")

    @model_validator(mode="after")
    def _a_reset_needs_a_cleanup(self) -> BranchEnvironments:
        if self.sample_runs and self.sample_runs.reset and self.cleanup is None:
            raise ValueError(
                "sample_runs.reset: resetting a branch environment runs its cleanup, and none is declared"
                " (declare branch_environments.cleanup, or set reset: false)"
            )
        return self


class WorkPool(BaseModel):
    """A work pool the deployment files name."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Its Prefect worker type (`process`, `docker`, `kubernetes`, ...).")


class Image(BaseModel):
    """The flows' image, for Docker and Kubernetes pools: `flowops deploy` fills in its tag."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="registry/repository; the tag is a hash of what it is built from.")
    dockerfile: str = Field(default="Dockerfile", description="Relative to the repository's root.")
    registry_credentials: str | None = Field(
        default=None,
        pattern=BLOCK_NAME_PATTERN,
        description="A private image: the DockerRegistryCredentials block Docker workers pull it with (bootstrap"
        " saves it from REGISTRY_USERNAME / REGISTRY_PASSWORD).",
    )


class FlowopsConfig(BaseModel):
    """`deployments/flowops.yaml`: which prefect.yaml each branch deploys, and what flowops needs to know of it."""

    model_config = ConfigDict(extra="forbid", title="flowops.yaml")

    project: str = Field(
        pattern=PROJECT_PATTERN,
        max_length=100,
        description="This repository's identity on a shared Prefect server (owner/name): every deployment flowops"
        " makes is tagged `project:<it>`, and plan, prune, teardown and gc touch no deployment without it.",
    )
    environments: dict[str, Environment] = Field(
        description="Each environment by name (`production`, `staging`): the branch that deploys it and its file."
    )
    branch_deployments_from: str = Field(
        description="The environment whose file every other branch deploys, renamed, as its own branch deployments."
    )
    work_pools: dict[str, WorkPool] = Field(default={}, description="The type of each work pool the files name.")
    image: Image | None = Field(default=None, description="The flows' image, for Docker and Kubernetes pools.")
    branch_environments: BranchEnvironments | None = Field(
        default=None, description="Each branch deployment's own data, and what a pull request proves on it."
    )
    automations: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.ya?ml$",
        description="The file under deployments/ holding the Prefect automations `flowops bootstrap` applies.",
    )

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
        raise ProjectError(f"{relative}: {field}: {message} (every key: `flowops schema --markdown`)") from None


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
        # git reads a path inside the commit as it is written: `deployments/../prefect.yaml` (a root file) first
        # becomes `prefect.yaml`, and nothing outside the repository is ever asked for
        relative = Path(posixpath.normpath((deployments / environment.file).as_posix()))
        if relative.is_absolute() or relative.parts[:1] == ("..",):
            raise ProjectError(f"{ref}:{deployments / CONFIG_FILE}: environments.{name}.file: outside the repository")
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
