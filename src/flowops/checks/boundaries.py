"""What a branch deployment may use, decided by the policy (a protected branch's files), never by the branch.

A pull request changes its code and its copy of the branch deployments' file; it does not choose where they go.
Before anything changes, a branch deployment is refused, one line per reason, when:

- its flowops.yaml differs from the policy's in what decides where branches deploy (the project, the
  environments and their branches and files, `branch_deployments_from`, `branch_environments`);
- a deployment names a work pool that the policy's file of its environment does not name (production's pool,
  say), or a block that the environment neither declares (its `secrets`) nor has its policy file refer to.

Blocks are found where flows and workers name them: `{{ prefect.blocks.TYPE.NAME }}` anywhere in a deployment,
and the value of any parameter whose name ends in `_block` (`database_secret_block: ecommerce-staging-db`).

This holds the files of a pull request to its environment. It cannot hold its code: on one Prefect server every
block can be read by anyone with the API, so production's boundary is a server (or workspace) and credentials
of its own, which no staging job or worker holds (README, "Environment boundaries").
"""

from __future__ import annotations

from typing import Any

from flowops.config.problems import Problem
from flowops.config.project import CONFIG_FILE, DeploymentFile, Policy, Project
from flowops.config.templating import block_references, is_template
from flowops.render.prefect_yaml import Rendered

# The parts of flowops.yaml that say where a branch deploys: a branch's own copy must not change them.
POLICY_FIELDS = ("project", "environments", "branch_deployments_from", "branch_environments")
BLOCK_PARAMETER_SUFFIX = "_block"


def policy_differences(project: Project) -> list[Problem]:
    """Where a branch's own flowops.yaml differs from the policy's in what decides where it deploys."""
    policy = project.policy
    config_file = str((project.deployments_dir / CONFIG_FILE).relative_to(project.root))
    own, trusted = project.config.model_dump(), policy.config.model_dump()
    return [
        Problem(
            config_file,
            None,
            name,
            f"differs from {policy.source}: a branch cannot change where branch deployments go or what they may"
            " use; merge the change to a protected branch first",
        )
        for name in POLICY_FIELDS
        if policy.ref and own.get(name) != trusted.get(name)
    ]


def branch_deployment_problems(project: Project, rendered: Rendered) -> list[Problem]:
    """Why `rendered` (a branch deployment) may not use the pools and blocks it names, under `project`'s policy."""
    policy = project.policy
    environment = rendered.target.environment
    problems = []
    allowed_file = policy.files[environment]
    pools = pools_of(allowed_file)
    if rendered.overrides.work_pool:
        pools.add(rendered.overrides.work_pool)  # the command line's own choice, not the branch's files
    blocks = environment_blocks(policy, environment)
    for deployment in rendered.content.get("deployments") or []:
        name = deployment.get("name")
        pool = (deployment.get("work_pool") or {}).get("name")
        if pool not in pools:
            problems.append(
                Problem(
                    rendered.label,
                    name,
                    "work_pool.name",
                    f"{pool!r} is not a work pool of environment {environment!r} ({_listed(pools)}, as"
                    f" {policy.source} say): a branch deployment runs only on its environment's pools",
                )
            )
        for block in sorted(referenced_blocks(deployment, rendered.content.get("pull")) - blocks):
            owner = policy.config.secret_owner(block)
            whose = f"it belongs to environment {owner!r}" if owner else f"{environment!r} does not declare it"
            problems.append(
                Problem(
                    rendered.label,
                    name,
                    "blocks",
                    f"block {block!r} is not a block of environment {environment!r} ({_listed(blocks)}): {whose}"
                    f" ({policy.source}); a branch deployment uses only its environment's blocks",
                )
            )
    return problems


def environment_blocks(policy: Policy, environment: str) -> set[str]:
    """The blocks `environment` may use: those it declares (its `secrets`) and those its policy file refers to."""
    return blocks_of(policy.files[environment]) | set(policy.config.environments[environment].secrets)


def pools_of(file: DeploymentFile) -> set[str]:
    return {pool for d in file.deployments() if isinstance(pool := (d.get("work_pool") or {}).get("name"), str)}


def blocks_of(file: DeploymentFile) -> set[str]:
    found: set[str] = set()
    for deployment in file.deployments():
        found |= referenced_blocks(deployment, file.content.get("pull"))
    return found


def referenced_blocks(deployment: dict[str, Any], file_pull: Any) -> set[str]:
    """The names of the blocks a deployment refers to: by template anywhere (its pull steps included, or the
    file's when it has none), and as the value of a `*_block` parameter."""
    found: set[str] = set()
    pull = deployment.get("pull", file_pull) or []
    for value in _strings({**deployment, "pull": pull}):
        found |= {name for _, name in block_references(value)}
    return found | set(parameter_blocks(deployment).values())


def parameter_blocks(deployment: dict[str, Any]) -> dict[str, str]:
    """The blocks a deployment's flows load by name: parameter -> block, for each `*_block` parameter."""
    parameters = deployment.get("parameters")
    return {
        str(key): value
        for key, value in (parameters if isinstance(parameters, dict) else {}).items()
        if str(key).endswith(BLOCK_PARAMETER_SUFFIX) and isinstance(value, str) and value and not is_template(value)
    }


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def _listed(names: set[str]) -> str:
    return ", ".join(repr(name) for name in sorted(names)) or "none"
