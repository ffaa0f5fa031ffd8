"""Render the exact prefect.yaml that `flowops deploy` hands to `prefect deploy --all` for a branch.

`main` and `staging` deploy their committed file; any other branch deploys the staging file as its own
branch deployments:

    deployments:
      - name: staging-feature-foo-1a2b3c4d       # suffixed by the branch's slug: never overwrites staging
        tags: [ecommerce, flowops, project:acme/flows, branch:feature-foo-1a2b3c4d, env:staging, commit:0123abcd]
        schedules: [{cron: "0 2 * * *", timezone: UTC, active: false}]   # runs only when asked
        pull:
          - prefect.deployments.steps.git_clone: {repository: ..., commit_sha: 0123abcd...}   # pinned

Every deployment, production's included, is pinned to the commit it was deployed from: a merge changes what
production runs only when its deploy succeeds, and an older commit can be deployed back (`--rollback`).
Every one carries `flowops`, `project:<id>`, `branch:<slug>` and `commit:<short sha>` tags: they tell anyone in
the Prefect UI where it came from, and they are how prune, teardown and gc find this project's deployments of a
branch (and only those).

Every one also tells its flows where they run, in its job variables' `env`: $FLOWOPS_PROJECT, $FLOWOPS_BRANCH,
$FLOWOPS_ENVIRONMENT and $FLOWOPS_BRANCH_DEPLOYMENT (`true` or `false`); a branch deployment of a project with
`branch_environments` also gets $FLOWOPS_DATA_ENVIRONMENT, its data environment's name, and the parameters
branch_environments names, `{{ flowops.environment }}` (and `.branch`, `.slug`, `.commit`) filled in.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from typing import Any

import yaml

from flowops.config.project import BranchEnvironments, Project, Target
from flowops.render.branches import branch_slug, data_environment_name
from flowops.render.image import default_image_ref

MANAGED_TAG = "flowops"
PROJECT_TAG_PREFIX = "project:"
BRANCH_TAG_PREFIX = "branch:"
COMMIT_TAG_PREFIX = "commit:"
ENV_TAG_PREFIX = "env:"
RESERVED_TAG_PREFIXES = (PROJECT_TAG_PREFIX, BRANCH_TAG_PREFIX, COMMIT_TAG_PREFIX, ENV_TAG_PREFIX)
GIT_CLONE_STEP = "prefect.deployments.steps.git_clone"
SHORT_SHA_LENGTH = 8
DOCKER_POOL_TYPES = {"docker"}  # their workers log in to the image's registry with a DockerRegistryCredentials block
# Pools whose runs start in a container of the flows' image: deploy fills in the image, and requires one.
IMAGE_POOL_TYPES = {"docker", "kubernetes"}


@dataclass(frozen=True)
class Overrides:
    """What differs when deploying anywhere else than the committed target; each one is explicit."""

    repository: str | None = None
    work_pool: str | None = None
    image: str | None = None  # on every deployment
    default_image: str | None = None  # on deployments of `image_pools` that name no image themselves
    image_pools: frozenset[str] = frozenset()
    work_pool_type: str | None = None  # the type of `work_pool` when flowops.yaml does not declare it


def branch_values(target: Target, sha: str, branch_environments: BranchEnvironments | None) -> dict[str, str]:
    """What `{{ flowops.NAME }}` stands for in `target`'s deployments (project.BRANCH_PLACEHOLDERS)."""
    values = {"branch": target.branch, "slug": branch_slug(target.branch), "commit": sha}
    if target.is_branch_deployment and branch_environments:
        values["environment"] = data_environment_name(branch_environments.prefix, target.branch)
    return values


# Prefect's placeholder syntax (prefect.utilities.templating.PLACEHOLDER_CAPTURE_REGEX)
PLACEHOLDER = re.compile(r"({{\s*([\w\.\-\[\]$]+)\s*}})")


def fill_branch_values(value: Any, values: dict[str, str]) -> Any:
    """`value` with its `{{ flowops.NAME }}` placeholders filled in, as Prefect's templating fills them. When those
    are all the placeholders it has (the usual case), without importing Prefect (1.2 s, most of a "nothing
    changed" deploy): the same result, which tests/unit/flowops/test_render.py compares; anything else (another
    placeholder, a name not in `values`) goes through Prefect's own `apply_values`, which leaves others untouched."""
    if all(_is_branch_value(name, values) for name in _placeholder_names(value)):
        return _fill(value, values)
    from prefect.utilities.templating import apply_values

    return apply_values(copy.deepcopy(value), {"flowops": values}, remove_notset=False)


def _placeholder_names(value: Any) -> set[str]:
    if isinstance(value, str):
        return {name for _, name in PLACEHOLDER.findall(value)}
    if isinstance(value, dict):
        return set().union(*(_placeholder_names(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_placeholder_names(item) for item in value))
    return set()


def _is_branch_value(name: str, values: dict[str, str]) -> bool:
    prefix, _, key = name.partition(".")
    return prefix == "flowops" and key in values and re.fullmatch(r"\w+", key) is not None


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda match: values[match.group(2).partition(".")[2]], value)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return copy.deepcopy(value)


def render_branch_deployments(
    target: Target,
    sha: str,
    overrides: Overrides = Overrides(),
    branch_environments: BranchEnvironments | None = None,
) -> dict[str, Any]:
    """The prefect.yaml content for `target.branch` at commit `sha`: a new dict, the committed file untouched."""
    rendered = copy.deepcopy(target.file.content)
    flowops_tags = [*ownership_tags(target.project, target.branch), ENV_TAG_PREFIX + target.environment]
    flowops_tags.append(COMMIT_TAG_PREFIX + sha[:SHORT_SHA_LENGTH])
    slug = branch_slug(target.branch)
    values = branch_values(target, sha, branch_environments)
    environment = {
        "FLOWOPS_PROJECT": target.project,
        "FLOWOPS_BRANCH": target.branch,
        "FLOWOPS_ENVIRONMENT": target.environment,
        "FLOWOPS_BRANCH_DEPLOYMENT": "true" if target.is_branch_deployment else "false",
    }
    if "environment" in values:
        environment["FLOWOPS_DATA_ENVIRONMENT"] = values["environment"]
    cleanup = branch_environments.cleanup if branch_environments else None

    if rendered.get("pull"):
        rendered["pull"] = _render_pull_steps(rendered["pull"], sha, overrides)
    for deployment in rendered.get("deployments") or []:
        # the cleanup deployment is given its own parameters when it runs (cleanup.parameters)
        is_cleanup = cleanup is not None and deployment.get("name") == cleanup.deployment
        if target.is_branch_deployment and branch_environments and branch_environments.parameters and not is_cleanup:
            parameters = deployment.get("parameters")
            merged = {**(parameters if isinstance(parameters, dict) else {}), **branch_environments.parameters}
            deployment["parameters"] = fill_branch_values(merged, values)
        if target.is_branch_deployment:
            deployment["name"] = f"{deployment.get('name')}-{slug}"
            for schedule in deployment.get("schedules") or []:
                if isinstance(schedule, dict):
                    schedule["active"] = False
        tags = deployment.get("tags") or []
        deployment["tags"] = [*tags, *(tag for tag in flowops_tags if tag not in tags)]
        if deployment.get("pull"):
            deployment["pull"] = _render_pull_steps(deployment["pull"], sha, overrides)
        _render_work_pool(deployment, overrides, environment)
    return rendered


def ownership_tags(project: str, branch: str) -> list[str]:
    """The tags every deployment of `project`'s `branch` carries, all of which a deployment must have for
    prune, teardown and gc to touch it."""
    return [MANAGED_TAG, PROJECT_TAG_PREFIX + project, BRANCH_TAG_PREFIX + branch_slug(branch)]


def _render_work_pool(deployment: dict[str, Any], overrides: Overrides, environment: dict[str, str]) -> None:
    work_pool = deployment.get("work_pool")
    if not isinstance(work_pool, dict):
        return
    if overrides.work_pool:
        work_pool["name"] = overrides.work_pool
    job_variables = work_pool.get("job_variables") or {}
    env = job_variables.get("env") if isinstance(job_variables, dict) else None
    if isinstance(job_variables, dict) and (env is None or isinstance(env, dict)):  # validate reports the rest
        job_variables["env"] = {**(env or {}), **environment}
    if overrides.image:
        job_variables["image"] = overrides.image
    elif overrides.default_image and work_pool.get("name") in overrides.image_pools and "image" not in job_variables:
        job_variables["image"] = overrides.default_image
    if job_variables:
        work_pool["job_variables"] = job_variables


def _render_pull_steps(steps: list[Any], sha: str, overrides: Overrides) -> list[Any]:
    for step in steps:
        clone = step.get(GIT_CLONE_STEP) if isinstance(step, dict) else None
        if not isinstance(clone, dict):
            continue
        if overrides.repository:
            clone["repository"] = overrides.repository
        clone.pop("branch", None)
        clone["commit_sha"] = sha
        if not str(clone.get("repository", "")).startswith("https://"):
            # git_clone only ever uses credentials for https URLs, but it resolves the block reference
            # first: a local or ssh origin must not depend on a GitHub credentials block existing.
            clone.pop("credentials", None)
            clone.pop("access_token", None)
    return steps


def rendered_header(target: Target, sha: str) -> str:
    return (
        f"# Rendered by flowops from {target.file.path} for branch {target.branch!r} at commit {sha}.\n"
        "# Do not edit: change the committed file and render again.\n"
    )


@dataclass(frozen=True)
class Rendered:
    """The prefect.yaml a branch deploys at a commit, and the overrides it was rendered with."""

    target: Target
    sha: str
    content: dict[str, Any]
    overrides: Overrides = Overrides()
    data_environment: str | None = None  # the branch's own data environment, when flowops.yaml declares them
    data_left_behind: bool = False  # branch environments without a cleanup: teardown leaves the data

    def pool_type(self, project: Project, pool: str) -> str | None:
        """The type flowops.yaml declares for `pool`, or `--work-pool-type` for the `--work-pool` override."""
        return declared_pool_type(project, self.overrides, pool)

    @property
    def label(self) -> str:
        """How problems name the rendered file."""
        return f"{self.target.file.path} (rendered for {self.target.branch!r})"

    def as_yaml(self) -> str:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, where PyYAML has it
        header = rendered_header(self.target, self.sha)
        if self.data_environment:
            header += f"# Its data environment: {self.data_environment} (flowops.yaml branch_environments).\n"
        return header + yaml.dump(self.content, Dumper=dumper, sort_keys=False)


def render(project: Project, branch: str, sha: str, overrides: Overrides = Overrides()) -> Rendered:
    """The file `branch` deploys at `sha`; Docker and Kubernetes pools get the flows' image unless an image is
    given."""
    target = project.target(branch)
    pools = {overrides.work_pool or (d.get("work_pool") or {}).get("name") for d in target.file.deployments()}
    image_pools = frozenset(p for p in pools if p and declared_pool_type(project, overrides, p) in IMAGE_POOL_TYPES)
    if overrides.image is None and project.config.image and image_pools:
        overrides = replace(overrides, default_image=str(default_image_ref(project)), image_pools=image_pools)
    branch_environments = project.policy_config.branch_environments
    content = render_branch_deployments(target, sha, overrides, branch_environments)
    data_environment = branch_values(target, sha, branch_environments).get("environment")
    left = data_environment is not None and branch_environments is not None and branch_environments.cleanup is None
    return Rendered(target, sha, content, overrides, data_environment, left)


def declared_pool_type(project: Project, overrides: Overrides, pool: str | None) -> str | None:
    """A pool's type as the files and the command line say it (the server may know more)."""
    declared = project.pool_type(pool) if pool else None
    return declared or (overrides.work_pool_type if pool and pool == overrides.work_pool else None)
