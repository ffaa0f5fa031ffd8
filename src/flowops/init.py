"""`flowops init`: adopt flowops in an existing Prefect repository, from what is already there.

It reads the repository's prefect.yaml files, the work pools they name (their types from the Prefect server when
one is reachable), the Secret blocks they load and whether there is a Dockerfile, then writes:

- `deployments/flowops.yaml`, pointing at the files that are there: `deployments/<env>/prefect.yaml` for an
  environment per folder, or the root `prefect.yaml` as production's;
- with only a root `prefect.yaml`, staging's own file beside it, `deployments/staging/prefect.yaml`: the same
  deployments named `<name>-staging`, on pools `<pool>-staging` of the same types, loading Secret blocks
  `<block>-staging` (an environment never shares a pool or a Secret block with another: that is what keeps a pull
  request's runs out of production);
- `.github/workflows/deploy.yml`, calling flowops' reusable workflow at the installed release's tag, installing what
  the repository has (its uv project, else its requirements.txt beside flowops, else flowops alone);
- `.github/workflows/checks.yml`, calling flowops' reusable checks at the same tag: `flowops validate`, the lint
  the repository has set up (pre-commit, else ruff) and its tests (pytest, when it has a tests/ folder).

A file that is there already is never overwritten without `force` (one with the same content is left as it is,
so init can run again). The result says what was written and what only the user can set: repository secrets and
variables, each environment's protection rules, workers for the pools.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowops.checks.boundaries import BLOCK_PARAMETER_SUFFIX
from flowops.config.project import CONFIG_FILE, PROJECT_PATTERN, read_yaml
from flowops.config.templating import block_references
from flowops.errors import FlowopsError
from flowops.extras import DISTRIBUTION, POOL_TYPE_EXTRAS
from flowops.gitrepo import origin_repository
from flowops.render.prefect_yaml import IMAGE_POOL_TYPES

PRODUCTION, STAGING = "production", "staging"
SECRET_BLOCK_TYPE = "secret"  # noqa: S105 - Prefect's block type slug, not a password
DEFAULT_POOL_TYPE = "process"
STAGING_SUFFIX = "-staging"


class InitError(FlowopsError):
    pass


@dataclass
class InitResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # there already, with other content: not overwritten
    todo: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.kept


@dataclass(frozen=True)
class Layout:
    """Which prefect.yaml each environment deploys (relative to deployments/), and the files init must write."""

    files: dict[str, str]  # environment -> file, relative to deployments/
    generated: dict[str, dict[str, Any]]  # environment -> the content init writes for it (staging's copy)
    sources: dict[str, dict[str, Any]]  # environment -> its file's content


def init(
    root: Path,
    project: str | None = None,
    pool_type: Callable[[str], str | None] = lambda pool: None,
    force: bool = False,
    production_branch: str = "main",
    staging_branch: str = "staging",
) -> InitResult:
    """Write flowops.yaml, the workflow (and staging's file, when only a root prefect.yaml is there) for the
    repository at `root`. `pool_type(name)` is a pool's type as the server knows it (None: unknown)."""
    deployments = root / "deployments"
    layout = _layout(root, deployments)
    result = InitResult()
    declared = _declared_pool_types(deployments / CONFIG_FILE)
    pools = _pools(layout, lambda pool: pool_type(pool) or declared.get(pool), result)
    secrets = {environment: _secrets(layout.sources[environment]) for environment in (PRODUCTION, STAGING)}
    for block in sorted(secrets[PRODUCTION].keys() & secrets[STAGING].keys()):
        del secrets[STAGING][block]  # a block is one environment's: production keeps it
        result.todo.append(
            f"Secret block {block!r} is loaded by production's file and staging's: give staging one of its own"
            f" (in {layout.files[STAGING]} and flowops.yaml), or a branch deployment cannot load it"
        )
    config: dict[str, Any] = {
        "project": project or _project_name(root),
        "environments": {
            environment: {
                "branch": production_branch if environment == PRODUCTION else staging_branch,
                "file": layout.files[environment],
                **({"secrets": secrets[environment]} if secrets[environment] else {}),
            }
            for environment in (PRODUCTION, STAGING)
        },
        "branch_deployments_from": STAGING,
        "work_pools": {name: {"type": kind} for name, kind in sorted(pools.items())},
    }
    if not re.fullmatch(PROJECT_PATTERN, config["project"]):
        raise InitError(f"project {config['project']!r}: give one as owner/name with --name; nothing was written")
    if (root / "Dockerfile").is_file() and IMAGE_POOL_TYPES & set(pools.values()):
        config["image"] = {"name": f"ghcr.io/{config['project'].lower()}-flows"}
    outputs = {deployments / CONFIG_FILE: _HEADER + yaml.safe_dump(config, sort_keys=False)}
    install = _install(root, config, result)
    ref = _release_ref(result)
    outputs[root / WORKFLOW_FILE] = WORKFLOW.format(
        production=production_branch, staging=staging_branch, ref=ref, install=install.command, flowops=install.flowops
    )
    result.todo.append(f"{WORKFLOW_FILE}: `workflow_dispatch:` with manual.yml's inputs runs flowops by hand")
    outputs[root / CHECKS_FILE] = _checks_workflow(root, install, ref, production_branch, staging_branch, result)
    for environment, content in layout.generated.items():
        header = f"# {environment}: made by `flowops init` from {layout.files[PRODUCTION]}; yours to change.\n"
        outputs[deployments / layout.files[environment]] = header + yaml.safe_dump(content, sort_keys=False)
    for path, text in outputs.items():
        relative = str(path.relative_to(root))
        if path.exists() and path.read_text() == text:
            result.unchanged.append(relative)
        elif path.exists() and not force:
            result.kept.append(relative)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            result.written.append(relative)
    result.todo += _todo(config, production_branch)
    return result


WORKFLOW_FILE = ".github/workflows/deploy.yml"
WORKFLOW = """\
# Delivery by flowops' reusable workflow (written by `flowops init`; yours to change): pushes to {production} and
# {staging} deploy them, a pull request gets deployments of its own and a comment, and its closing, a deleted branch
# or the daily gc tear them down. Each job reads its GitHub environment's secrets (PREFECT_API_URL, ...).
name: Deploy
on:
  push: {{branches: [{production}, {staging}]}}
  pull_request: {{types: [opened, synchronize, reopened, closed]}}
  delete:
  schedule: [{{cron: "23 4 * * *"}}]
permissions: {{}}
jobs:
  flowops:
    uses: flowops-dev/flowops/.github/workflows/flowops.yml@{ref}
    permissions: {{contents: read, packages: write, pull-requests: write}}
    with:
      install: {install}
      flowops: {flowops}
      production-branch: {production}
      staging-branch: {staging}
    secrets: inherit # zizmor: ignore[secrets-inherit] (environments' secrets reach a called workflow only so)
"""


@dataclass(frozen=True)
class Install:
    """How the workflows install flowops and the flows' dependencies, and run flowops and python afterwards."""

    command: str
    flowops: str
    python: str
    uv_project: bool


def _install(root: Path, config: dict[str, Any], result: InitResult) -> Install:
    """What this repository has: its uv project (flowops among its dependencies), else its requirements.txt
    beside flowops, else flowops alone; with the extras its pools need."""
    kinds = {pool["type"] for pool in config["work_pools"].values()}
    extras = sorted({POOL_TYPE_EXTRAS[kind] for kind in kinds if kind in POOL_TYPE_EXTRAS})
    if "image" in config:
        extras = sorted({*extras, "docker"})
    spec = DISTRIBUTION + (f"[{','.join(extras)}]" if extras else "")
    if (root / "uv.lock").is_file():
        result.todo.append(f"add {spec} to your project's dependencies (`uv add --dev '{spec}'`): the workflow runs it")
        return Install("uv sync --locked", "uv run flowops", "uv run python", uv_project=True)
    requirements = "-r requirements.txt " if (root / "requirements.txt").is_file() else ""
    command = f"uv venv --quiet .venv && uv pip install --quiet --python .venv {requirements}'{spec}'"
    return Install(command, ".venv/bin/flowops", ".venv/bin/python", uv_project=False)


def _release_ref(result: InitResult) -> str:
    """The tag of the installed release, which the workflows call flowops' own at; else main, to be pinned."""
    from flowops import __version__

    if re.fullmatch(r"\d+(\.\d+)*", __version__):
        return f"v{__version__}"
    result.todo.append(
        f"{WORKFLOW_FILE}, {CHECKS_FILE}: pin flowops' workflows to a release's tag or commit, not `main`"
    )
    return "main"


CHECKS_FILE = ".github/workflows/checks.yml"
CHECKS = """\
# Checks by flowops' reusable workflow (written by `flowops init`; yours to change): lint, `flowops validate` and the
# tests on every pull request and push. An empty command leaves its job out; `postgres: true` gives the tests a
# PostgreSQL service at $DATABASE_URL. Branch protection requires `checks / pass`.
name: Checks
on:
  pull_request:
  push: {{branches: [{production}, {staging}]}}
permissions: {{}}
jobs:
  checks:
    uses: flowops-dev/flowops/.github/workflows/flowops-checks.yml@{ref}
    permissions: {{contents: read}}
    with:
      install: {install}
      flowops: {flowops}
      lint: {lint}
      test: {test}
"""


def _checks_workflow(root: Path, install: Install, ref: str, production: str, staging: str, result: InitResult) -> str:
    """The caller of flowops' reusable checks, with the lint and the tests this repository has set up."""
    pyproject = (root / "pyproject.toml").read_text() if (root / "pyproject.toml").is_file() else ""
    if (root / ".pre-commit-config.yaml").is_file():
        lint = "uvx pre-commit run --all-files"
    elif (root / "ruff.toml").is_file() or (root / ".ruff.toml").is_file() or "[tool.ruff" in pyproject:
        lint = "uvx ruff check"
    else:
        lint = ""
        result.todo.append(f"{CHECKS_FILE}: no lint set up here (pre-commit or ruff); `lint:` runs yours")
    command = install.command
    if (root / "tests").is_dir() or "[tool.pytest" in pyproject:
        test = "uv run pytest" if install.uv_project else f"{install.python} -m pytest"
        if not install.uv_project:
            command += " pytest"
        result.todo.append(f"{CHECKS_FILE}: `postgres: true` if the tests need PostgreSQL (at $DATABASE_URL)")
    else:
        test = ""
        result.todo.append(f"{CHECKS_FILE}: no tests/ folder here; `test:` runs yours")
    return CHECKS.format(
        production=production, staging=staging, ref=ref, install=command, flowops=install.flowops,
        lint=json.dumps(lint), test=json.dumps(test),
    )  # fmt: skip


_HEADER = """\
# flowops' settings, made by `flowops init`: which prefect.yaml each branch deploys, each environment's Secret
# blocks and the type of each work pool. Every key: `flowops schema --markdown`.
"""


def _layout(root: Path, deployments: Path) -> Layout:
    folders = {path.parent.name: path for path in sorted(deployments.glob("*/prefect.yaml"))}
    production = next((folders[name] for name in ("main", "production") if name in folders), None)
    staging = folders.get("staging")
    if production and staging:
        files = {PRODUCTION: f"{production.parent.name}/prefect.yaml", STAGING: "staging/prefect.yaml"}
        return Layout(files, {}, {env: _read(root, deployments / f) for env, f in files.items()})
    root_file = root / "prefect.yaml"
    source = production or (root_file if root_file.is_file() else None)
    if source is None:
        raise InitError(
            "no prefect.yaml here (at the root, or deployments/<environment>/prefect.yaml): make one with"
            " `prefect init` or `prefect deploy`, then run flowops init again; nothing was written"
        )
    content = _read(root, source)
    production_file = str(
        Path("..", source.relative_to(root)) if source == root_file else source.relative_to(deployments)
    )
    staging_copy = _staging_copy(content)
    files = {PRODUCTION: production_file, STAGING: "staging/prefect.yaml"}
    return Layout(files, {STAGING: staging_copy}, {PRODUCTION: content, STAGING: staging_copy})


def _read(root: Path, path: Path) -> dict[str, Any]:
    content = read_yaml(path, path.relative_to(root), "not found")
    if not isinstance(content, dict) or not isinstance(content.get("deployments"), list):
        raise InitError(f"{path.relative_to(root)}: expected a mapping with a `deployments` list; nothing was written")
    return content


def _staging_copy(production: dict[str, Any]) -> dict[str, Any]:
    """Production's file as staging's: its deployments, pools and Secret blocks named apart, git_clone steps on
    the staging branch (flowops pins every deployment to its commit anyway)."""
    staging = copy.deepcopy(production)
    for deployment in staging.get("deployments") or []:
        if not isinstance(deployment, dict):
            continue
        deployment["name"] = f"{deployment.get('name')}{STAGING_SUFFIX}"
        pool = deployment.get("work_pool")
        if isinstance(pool, dict) and isinstance(pool.get("name"), str):
            pool["name"] += STAGING_SUFFIX
        parameters = deployment.get("parameters")
        if isinstance(parameters, dict):
            for key, value in parameters.items():
                if str(key).endswith(BLOCK_PARAMETER_SUFFIX) and isinstance(value, str) and "{{" not in value:
                    parameters[key] = value + STAGING_SUFFIX
    renamed: dict[str, Any] = _renamed_secret_templates(_on_staging_branch(staging))
    return renamed


def _on_staging_branch(content: Any) -> Any:
    if isinstance(content, dict):
        clone = content.get("prefect.deployments.steps.git_clone")
        if isinstance(clone, dict) and "branch" in clone:
            clone["branch"] = STAGING
        return {key: _on_staging_branch(value) for key, value in content.items()}
    if isinstance(content, list):
        return [_on_staging_branch(item) for item in content]
    return content


def _renamed_secret_templates(content: Any) -> Any:
    """`{{ prefect.blocks.secret.NAME }}` -> `{{ prefect.blocks.secret.NAME-staging }}`, everywhere."""
    if isinstance(content, dict):
        return {key: _renamed_secret_templates(value) for key, value in content.items()}
    if isinstance(content, list):
        return [_renamed_secret_templates(item) for item in content]
    if isinstance(content, str) and "prefect.blocks.secret." in content:
        return re.sub(r"(prefect\.blocks\.secret\.)([a-z0-9-]+)", rf"\1\2{STAGING_SUFFIX}", content)
    return content


def _pools(layout: Layout, pool_type: Callable[[str], str | None], result: InitResult) -> dict[str, str]:
    """Every pool the files name, with its type: the server's, else production's pool's for a staging copy, else
    process (said in the result: only the user knows)."""
    found: dict[str, str] = {}
    for environment in (PRODUCTION, STAGING):
        for deployment in layout.sources[environment].get("deployments") or []:
            pool = (deployment.get("work_pool") or {}).get("name") if isinstance(deployment, dict) else None
            if not isinstance(pool, str) or pool in found:
                continue
            kind = pool_type(pool) or found.get(pool.removesuffix(STAGING_SUFFIX))
            if kind is None:
                result.todo.append(f"work pool {pool!r}: its type is not known here; process assumed (set it in"
                                   f" deployments/{CONFIG_FILE}: work_pools)")  # fmt: skip
            found[pool] = kind or DEFAULT_POOL_TYPE
    return found


def _declared_pool_types(config_file: Path) -> dict[str, str]:
    """The pool types a flowops.yaml that is there already declares (init runs again, or over a hand-made one)."""
    try:
        content = yaml.safe_load(config_file.read_text()) if config_file.is_file() else None
    except yaml.YAMLError:
        return {}
    pools = content.get("work_pools") if isinstance(content, dict) else None
    if not isinstance(pools, dict):
        return {}
    return {str(name): str(spec["type"]) for name, spec in pools.items() if isinstance(spec, dict) and "type" in spec}


def _secrets(content: dict[str, Any]) -> dict[str, str]:
    """The Secret blocks a file loads (templates, `*_block` parameters) -> the variable bootstrap saves each from."""
    blocks: set[str] = set()
    for deployment in content.get("deployments") or []:
        if not isinstance(deployment, dict):
            continue
        parameters = deployment.get("parameters")
        for key, value in (parameters if isinstance(parameters, dict) else {}).items():
            if str(key).endswith(BLOCK_PARAMETER_SUFFIX) and isinstance(value, str) and "{{" not in value:
                blocks.add(value)
        blocks |= {name for kind, name in block_references(deployment) if kind == SECRET_BLOCK_TYPE}
    blocks |= {name for kind, name in block_references(content.get("pull") or []) if kind == SECRET_BLOCK_TYPE}
    return {block: _variable(block.removesuffix(STAGING_SUFFIX)) for block in sorted(blocks)}


def _variable(block: str) -> str:
    name = re.sub(r"[^A-Z0-9]+", "_", block.upper()).strip("_") or "SECRET"
    name = name if not name.startswith(("PREFECT_", "GITHUB_", "ACTIONS_", "RUNNER_")) else f"FLOWOPS_{name}"
    return name if not name[0].isdigit() else f"_{name}"


def _project_name(root: Path) -> str:
    """owner/name from the `origin` remote, else local/<folder>."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip("-.") or "flows"
    return origin_repository(root) or f"local/{folder}"


def _todo(config: dict[str, Any], production_branch: str) -> list[str]:
    lines = [
        "repository secrets: PREFECT_API_URL (and PREFECT_API_KEY for Prefect Cloud), which every workflow job reads",
        (
            f"GitHub environments `production` (deployment branches: {production_branch} only) and `staging`:"
            " their protection rules are what keeps a pull request out of production"
        ),
    ]
    for environment, declared in config["environments"].items():
        for block, variable in (declared.get("secrets") or {}).items():
            lines.append(
                f"environment {environment!r}: secret {variable} (block {block!r}); then"
                f" `flowops bootstrap --environment {environment}` saves it"
            )
    pools = ", ".join(f"{name} ({spec['type']})" for name, spec in config["work_pools"].items())
    lines.append(f"a worker for each work pool: {pools}")
    if "image" in config:
        lines.append(f"the flows' image: {config['image']['name']} (flowops.yaml image.name; `flowops image ensure`)")
    return lines
