"""The checks only the server can answer, made before a deploy changes anything (validate.py checks the files).

Each pool's type is known, a Docker pool gets an image, job variables fit the pool's schema, the credentials
blocks exist, and no deployment of another project is overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from flowops.api.server import REGISTRY_CREDENTIALS_BLOCK_TYPE, LiveDeployment, ServerAPI, WorkPoolInfo
from flowops.checks.boundaries import parameter_blocks
from flowops.checks.validate import schema_errors
from flowops.config.problems import Problem
from flowops.config.project import CONFIG_FILE, Project
from flowops.config.templating import block_references, is_template
from flowops.render.prefect_yaml import (
    DOCKER_POOL_TYPES,
    GIT_CLONE_STEP,
    IMAGE_POOL_TYPES,
    PROJECT_TAG_PREFIX,
    Rendered,
)

REGISTRY_CREDENTIALS_VARIABLE = "registry_credentials"  # the Docker worker's job variable
_BLOCK_CLASSES = {"github-credentials": "GitHubCredentials"}  # as problems name a block type


@dataclass(frozen=True)
class ServerFacts:
    """What deploy learns from the server before it changes anything."""

    # The Docker pools whose `registry_credentials` default must become this reference to the block flowops.yaml
    # names (image.registry_credentials): the job variable their workers log in to the image's registry with.
    registry_reference: dict[str, Any] | None = None
    pools_to_log_in: list[str] = field(default_factory=list)
    pools_to_create: dict[str, str] = field(default_factory=dict)  # missing pools of a type flowops.yaml declares


def check_against_server(server: ServerAPI, project: Project, rendered: Rendered) -> tuple[list[Problem], ServerFacts]:
    """The problems with deploying `rendered` to `server` (each pool and block read once), and what deploy must
    set on its pools."""
    problems: list[Problem] = []
    pools: dict[str, WorkPoolInfo | None] = {}
    pool_types: dict[str, str | None] = {}
    github_blocks: dict[str, bool] = {}
    for deployment in rendered.content["deployments"]:
        name = deployment["name"]
        pool = deployment["work_pool"]["name"]
        job_variables = deployment["work_pool"].get("job_variables") or {}
        if pool not in pools:
            pools[pool] = server.read_work_pool(pool)
        existing = pools[pool]
        pool_type = rendered.pool_type(project, pool) or (existing.type if existing else None)
        pool_types[pool] = pool_type
        if pool_type is None:
            problems.append(
                Problem(
                    rendered.label,
                    name,
                    "work_pool.name",
                    f"work pool {pool!r} does not exist and flowops.yaml does not declare its type;"
                    f" run `flowops bootstrap --work-pool {pool} --type TYPE`",
                )
            )
            continue
        if pool_type in IMAGE_POOL_TYPES and not job_variables.get("image"):
            problems.append(
                Problem(
                    rendered.label,
                    name,
                    "work_pool.job_variables.image",
                    f"{pool!r} is a {pool_type} pool: pass --image with the flows' image",
                )
            )
        checked = {key: value for key, value in job_variables.items() if not is_template(value)}
        if checked:
            # The server checks job variables only as it creates each deployment, that is half-way through
            # `prefect deploy --all`: check them all first.
            schema = existing.job_variables_schema if existing else server.default_job_variables_schema(pool_type)
            problems += [
                Problem(rendered.label, name, f"work_pool.job_variables.{path}", f"{message} (work pool {pool!r})")
                for path, message in schema_errors(checked, schema)
            ]
        for step in deployment.get("pull") or rendered.content.get("pull") or []:
            credentials = (step.get(GIT_CLONE_STEP) or {}).get("credentials")
            for block_type, block in block_references(credentials):
                if block not in github_blocks:  # asked once per block, not once per deployment
                    github_blocks[block] = server.block_document_id(block_type, block) is not None
                if not github_blocks[block]:
                    problems.append(
                        Problem(
                            rendered.label,
                            name,
                            "pull.git_clone.credentials",
                            f"{_BLOCK_CLASSES.get(block_type, block_type)} block {block!r} does not exist; run"
                            " `flowops bootstrap` with FLOWOPS_GIT_TOKEN set (or pass --repository for a public or"
                            " local clone)",
                        )
                    )
    problems += _missing_parameter_blocks(server, project, rendered)
    docker_pools = sorted(pool for pool, pool_type in pool_types.items() if pool_type in DOCKER_POOL_TYPES)
    login_problems, facts = _registry_login(server, project, rendered, {pool: pools[pool] for pool in docker_pools})
    missing = {pool: pool_type for pool, pool_type in pool_types.items() if pool_type and pools[pool] is None}
    return problems + login_problems, replace(facts, pools_to_create=missing)


def _missing_parameter_blocks(server: ServerAPI, project: Project, rendered: Rendered) -> list[Problem]:
    """A deployment whose flow would load a block the server does not have fails at run time, or worse, falls
    back to something else: refuse it now (one read for every block named)."""
    named = {d["name"]: parameter_blocks(d) for d in rendered.content["deployments"]}
    existing = server.existing_blocks(sorted({block for blocks in named.values() for block in blocks.values()}))
    problems = []
    for deployment, blocks in named.items():
        for parameter, block in sorted(blocks.items()):
            if block in existing:
                continue
            owner = project.config.secret_owner(block)
            variable = project.config.environments[owner].secrets[block] if owner else None
            how = (
                f"run `flowops bootstrap --environment {owner}` with ${variable} set"
                if owner
                else "declare it under its environment's `secrets` in flowops.yaml and bootstrap, or create it"
            )
            problems.append(
                Problem(
                    rendered.label,
                    deployment,
                    f"parameters.{parameter}",
                    f"block {block!r} does not exist on the server, so every run would fail; {how}",
                )
            )
    return problems


def _registry_login(
    server: ServerAPI, project: Project, rendered: Rendered, docker_pools: dict[str, WorkPoolInfo | None]
) -> tuple[list[Problem], ServerFacts]:
    """The Docker pools whose workers must log in with the block flowops.yaml names, and why they cannot."""
    block = project.config.image.registry_credentials if project.config.image else None
    if not (block and docker_pools):
        return [], ServerFacts()
    block_id = server.block_document_id(REGISTRY_CREDENTIALS_BLOCK_TYPE, block)
    if block_id is None:
        config_file = str((project.deployments_dir / CONFIG_FILE).relative_to(project.root))
        message = (
            f"DockerRegistryCredentials block {block!r} does not exist (work pool {min(docker_pools)!r} would pull"
            " the image with it); run `flowops bootstrap` with REGISTRY_USERNAME and REGISTRY_PASSWORD set"
        )
        return [Problem(config_file, None, "image.registry_credentials", message)], ServerFacts()
    reference = registry_reference(block_id)
    problems = []
    to_log_in = []
    for pool, info in sorted(docker_pools.items()):
        current = info.default_of(REGISTRY_CREDENTIALS_VARIABLE) if info else None
        if current == reference:
            continue
        other = _referenced_block_name(server, current)
        if other:
            problems.append(
                Problem(
                    rendered.label,
                    None,
                    "work_pool.name",
                    f"work pool {pool!r} logs in to registries with block {other!r}, not {block!r}"
                    " (flowops.yaml image.registry_credentials): give this project a Docker pool of its own",
                )
            )
        to_log_in.append(pool)
    return problems, ServerFacts(reference, to_log_in)


def registry_reference(block_id: object) -> dict[str, Any]:
    """A job variable's value that names a block by id: the server and the workers resolve it when a run
    starts. It can only be a work pool's default: the server refuses it in a deployment's job variables, and
    `prefect deploy` resolves any block reference there, storing the password on the deployment."""
    return {"$ref": {"block_document_id": str(block_id)}}


def _referenced_block_name(server: ServerAPI, default: Any) -> str | None:
    """The name of the block a pool's default refers to, when that block still exists."""
    block_id = default.get("$ref", {}).get("block_document_id") if isinstance(default, dict) else None
    return server.block_document_name(block_id) if block_id else None


def owned_elsewhere(rendered: Rendered, live_by_name: dict[str, LiveDeployment]) -> list[Problem]:
    """A deployment of the same name that another project made is never overwritten (one made by hand, or by
    flowops before deployments carried their project, is adopted)."""
    ours = PROJECT_TAG_PREFIX + rendered.target.project
    problems = []
    for name, live in sorted(live_by_name.items()):
        owners = [tag for tag in live.tags if tag.startswith(PROJECT_TAG_PREFIX)]
        if owners and ours not in owners:
            problems.append(
                Problem(
                    rendered.label,
                    live.name,
                    "name",
                    f"{name} already exists on the server and belongs to {owners[0]}, not {ours}: rename it",
                )
            )
    return problems
