""" "Nothing changed", answered without importing Prefect: the most frequent deploy (a job run again, a push that
left a branch's deployments as they are) costs one filtered read and one Variable read instead of the full plan.

Every successful deploy records, in a Variable of the branch (`flowops-deployed-...`), two digests:

- `rendered`: what the deploy was made from: the rendered file (its commit's pins, names, pools, tags), the policy
  it was checked under, the environment values its `{{ $VAR }}` placeholders and Prefect's version inference read,
  and the versions of flowops, Prefect and pydantic (which shape the stored parameter schemas);
- `live`: what the server held for the branch right after it, every field flowops compares, and the schedules.

A later deploy or plan of the same branch whose `rendered` digest is the recorded one, while the server's
deployments of the branch still digest to the recorded `live` (no drift, none added or deleted), has nothing to
do. Anything else, or a record missing or unreadable, goes the whole way: validation, the plan, the deploy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flowops.api.http import PlainAPI, canonical_json
from flowops.api.server import PrefectAPIError
from flowops.config.project import Project
from flowops.render.branches import branch_slug
from flowops.render.prefect_yaml import SHORT_SHA_LENGTH, Rendered, ownership_tags

RECORD_PREFIX = "flowops-deployed-"
RECORD_FORMAT = 2
# What Prefect's version inference reads (prefect/_internal/versioning.py): the `version` it stores comes from them
VERSION_ENVIRONMENT = (
    "GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL",
    "CI_COMMIT_SHA", "CI_COMMIT_REF_NAME", "CI_PROJECT_NAME", "CI_PROJECT_URL",
    "BITBUCKET_COMMIT", "BITBUCKET_BRANCH", "BITBUCKET_REPO_SLUG", "BITBUCKET_GIT_HTTP_ORIGIN",
    "BUILD_SOURCEVERSION", "BUILD_SOURCEBRANCHNAME", "BUILD_REPOSITORY_NAME", "BUILD_REPOSITORY_URI",
)  # fmt: skip
# Of those, the ones that change with every commit: the digest of what a move to another commit keeps leaves them out
COMMIT_ENVIRONMENT = ("GITHUB_SHA", "CI_COMMIT_SHA", "BITBUCKET_COMMIT", "BUILD_SOURCEVERSION")
COMMIT_MASK = "<commit>"
# Prefect's placeholder syntax (prefect.utilities.templating): `{{ $NAME }}` reads the environment at deploy time
ENVIRONMENT_PLACEHOLDER = re.compile(r"{{\s*\$([\w\.\-\[\]$]+)\s*}}")
# The fields of a deployment a plan compares (client.STORED_FIELDS), and what identifies it
DIGESTED_FIELDS = (
    "id", "name", "flow_id", "description", "parameters", "tags", "work_pool_name", "work_queue_name",
    "job_variables", "pull_steps", "entrypoint", "paused", "concurrency_limit", "enforce_parameter_schema",
    "parameter_openapi_schema", "version",
)  # fmt: skip
DIGESTED_SCHEDULE_FIELDS = ("schedule", "active", "parameters", "slug")


def record_name(project: str, slug: str) -> str:
    """The Variable recording the last deploy of the branch whose slug is `slug` (gc knows branches by slug)."""
    # Variable names allow letters, digits, - and _ only; the slug hashes anything else, so names never collide
    return RECORD_PREFIX + branch_slug(f"{project}/{slug}")


def rendered_digest(project: Project, rendered: Rendered, environment: Mapping[str, str]) -> str:
    return _digest(_deploy_inputs(project, rendered, environment))


def pinless_digest(project: Project, rendered: Rendered, environment: Mapping[str, str]) -> str:
    """The digest of what a deploy is made from, but for its commit: equal for two commits whose deploys differ only
    in their pins (deploy/pin_moves.py). An environment value the file's placeholders read stays in, even a SHA."""
    inputs = _deploy_inputs(project, rendered, environment)
    text = inputs["rendered"].replace(rendered.sha, COMMIT_MASK).replace(rendered.sha[:SHORT_SHA_LENGTH], COMMIT_MASK)
    placeholders = set(ENVIRONMENT_PLACEHOLDER.findall(text))
    inputs["rendered"] = text
    inputs["environment"] = {
        name: value
        for name, value in inputs["environment"].items()
        if name not in COMMIT_ENVIRONMENT or name in placeholders
    }
    return _digest(inputs)


def _deploy_inputs(project: Project, rendered: Rendered, environment: Mapping[str, str]) -> dict[str, Any]:
    text = rendered.as_yaml()
    policy = project.policy
    read = sorted({*ENVIRONMENT_PLACEHOLDER.findall(text), *VERSION_ENVIRONMENT})
    return {
        "format": RECORD_FORMAT,
        "rendered": text,
        "policy": {
            "config": policy.config.model_dump(mode="json"),
            "files": {name: file.content for name, file in sorted(policy.files.items())},
        },
        "environment": {name: environment.get(name) for name in read},
        "versions": {name: _installed(name) for name in ("flowops-prefect", "prefect", "pydantic")},
    }


def live_digest(deployments: list[dict[str, Any]]) -> str:
    """The branch's deployments as the API returned them, in a stable order, reduced to what a deploy decides."""
    kept = [
        {
            **{name: deployment.get(name) for name in DIGESTED_FIELDS},
            "schedules": sorted(
                canonical_json({k: s.get(k) for k in DIGESTED_SCHEDULE_FIELDS})
                for s in deployment.get("schedules") or []
            ),
        }
        for deployment in deployments
    ]
    return _digest(sorted(kept, key=canonical_json))


def unchanged_count(api: PlainAPI, project: Project, rendered: Rendered, environment: Mapping[str, str]) -> int | None:
    """How many deployments the branch has, when nothing changed since the last deploy of this very input; None
    when something may have (or the server could not say)."""
    target = rendered.target
    try:
        record = read_record(api, rendered)
        if record is None or record.get("rendered") != rendered_digest(project, rendered, environment):
            return None
        live = api.deployments_tagged(ownership_tags(target.project, target.branch))
    except PrefectAPIError:
        return None  # the whole way will say what is wrong with the server
    return len(live) if live and record.get("live") == live_digest(live) else None


def read_record(api: PlainAPI, rendered: Rendered) -> dict[str, Any] | None:
    """The branch's record (see the module's docstring), or None when it has none."""
    target = rendered.target
    record = api.variable(record_name(target.project, branch_slug(target.branch)))
    return record if isinstance(record, dict) else None


def record_deploy(api: PlainAPI, project: Project, rendered: Rendered, environment: Mapping[str, str]) -> None:
    """Record what this deploy was made from and what the server holds now (see the module's docstring), and
    its commit with the digest of all but it, for the next commit's pin moves (deploy/pin_moves.py)."""
    target = rendered.target
    live = api.deployments_tagged(ownership_tags(target.project, target.branch))
    record = {
        "rendered": rendered_digest(project, rendered, environment),
        "live": live_digest(live),
        "commit": rendered.sha,
        "pinless": pinless_digest(project, rendered, environment),
    }
    api.set_variable(record_name(target.project, branch_slug(target.branch)), record, ["flowops"])


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def _installed(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
