"""Check deployment files before anything reaches the server; report every problem, one line each.

Each problem names the file, the deployment and the field:

    deployments/main/prefect.yaml: production: parameters.concurrency: 'two' is not of type 'integer'

The checks are those `prefect deploy` skips or only finds half-way (or at run time): the entrypoint is a
@flow, parameters fit its signature, schedules parse, a work pool is named, workers git-clone exactly one of a
branch or a commit, no `{{ $VAR }}` is unset (Prefect silently makes it ''), no secret is written in plain text
or resolved into the deployment, names are unique per flow, and no field is one Prefect would silently ignore.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from flowops.api.pool_types import job_variables_schema
from flowops.config.entrypoints import EntrypointError, FlowEntrypoint, inspect_entrypoint
from flowops.config.problems import Problem
from flowops.config.project import BRANCH_PLACEHOLDERS, CONFIG_FILE, DeploymentFile, Project
from flowops.config.templating import block_references, env_variables, is_template, template_names
from flowops.extras import install_hint, missing_for_pool
from flowops.gitrepo import without_userinfo
from flowops.render.automations import load_automations
from flowops.render.prefect_yaml import GIT_CLONE_STEP, MANAGED_TAG, RESERVED_TAG_PREFIXES

TOP_LEVEL_FIELDS = {"name", "prefect-version", "prefect_version", "build", "push", "pull", "deployments"}
DEPLOYMENT_FIELDS = {
    "name", "version", "version_type", "tags", "description", "schedule", "schedules", "paused",
    "concurrency_limit", "flow_name", "entrypoint", "parameters", "enforce_parameter_schema",
    "build", "push", "pull", "work_pool", "triggers", "sla",
}  # fmt: skip
WORK_POOL_FIELDS = {"name", "work_queue_name", "job_variables"}
SCHEDULE_FIELDS = {
    "cron", "interval", "rrule", "timezone", "anchor_date", "active", "parameters", "slug", "replaces", "day_or",
}  # fmt: skip

# A variable whose name says it holds a secret: `{{ $VAR }}` is resolved when Prefect deploys, then stored.
_SECRET_VARIABLE = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|PWD|CREDENTIAL|DSN|DATABASE_URL|AUTH|PRIVATE|SIGNATURE", re.IGNORECASE
)
_URL_USERINFO = re.compile(r"\b(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<userinfo>[^/\s@]+)@", re.IGNORECASE)
# A query parameter that carries a secret (a presigned URL's signature, a token): the flow's redact.py masks the same.
_SECRET_QUERY = re.compile(
    r"[?&;][\w.-]*(?:password|passwd|pwd|pass|secret|token|key|credential|auth|signature|sig|session|dsn|private)"
    r"[\w.-]*=[^&#\s]",
    re.IGNORECASE,
)
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|private[_-]?key|credential", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub tokens
    r"|\bpnu_[A-Za-z0-9]{20,}"  # Prefect Cloud API keys
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key ids
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def validate_project(project: Project, branch: str | None = None) -> list[Problem]:
    """Every committed file (or only the one `branch` deploys), plus names unique per flow across all files; with
    no `branch`, the automations file too."""
    files = project.files() if branch is None else [project.target(branch).file]
    problems: list[Problem] = []
    if branch is None:
        for path in project.unreferenced_files():
            problems.append(
                Problem(path, None, "", "no environment in flowops.yaml names this file: no branch deploys it")
            )
    for file in files:
        problems += validate_file(project, file, committed=True)
    problems += _duplicate_names(project, project.files())
    problems += _branch_environment_problems(project)
    if branch is None:
        problems += load_automations(project)[1]
    return problems


def validate_file(project: Project, file: DeploymentFile, committed: bool) -> list[Problem]:
    """The checks of one file; `committed` files must also name only work pools declared in flowops.yaml."""
    checker = _FileChecker(project, file)
    checker.check(committed)
    return checker.problems


def _banned_name_characters() -> list[str]:
    from prefect.types.names import BANNED_CHARACTERS as banned  # Prefect's own list: `/ % & > <`

    return list(banned)


class _FileChecker:
    def __init__(self, project: Project, file: DeploymentFile):
        self.project = project
        self.file = file
        self.problems: list[Problem] = []
        self.deployment: str | None = None

    def problem(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.file.path, self.deployment, field, message))

    def check(self, committed: bool) -> None:
        content = self.file.content
        for key in content.keys() - TOP_LEVEL_FIELDS:
            self.problem(str(key), "unknown top-level field (Prefect ignores it silently)")
        deployments = content.get("deployments")
        if not isinstance(deployments, list) or not deployments:
            self.problem("deployments", "expected a non-empty list of deployments")
            return
        names = [d.get("name") for d in deployments if isinstance(d, dict)]
        for index, deployment in enumerate(deployments):
            self.deployment = f"deployments[{index}]"
            if not isinstance(deployment, dict):
                self.problem("", "expected a mapping")
                continue
            name = deployment.get("name")
            if not isinstance(name, str) or not name.strip():
                self.problem("name", "missing: every deployment needs a name")
            else:
                self.deployment = name
                if names.count(name) > 1:
                    self.problem("name", "used by more than one deployment in this file")
                banned = [character for character in _banned_name_characters() if character in name]
                if banned:
                    self.problem("name", f"{banned[0]!r} is not allowed in a deployment's name (Prefect refuses it)")
            self.check_deployment(deployment, content.get("pull"), committed)
        self.deployment = None
        for field, value in _leaves(content.get("pull") or [], "pull (top level)"):
            if isinstance(value, str):
                self.check_credentials_and_variables(field, value)

    def check_deployment(self, deployment: dict[str, Any], file_pull: Any, committed: bool) -> None:
        for key in deployment.keys() - DEPLOYMENT_FIELDS:
            self.problem(str(key), "unknown field (Prefect ignores it silently)")
        flow = self.check_entrypoint(deployment.get("entrypoint"))
        self.check_parameters(deployment.get("parameters"), flow)
        self.check_schedules(deployment)
        self.check_work_pool(deployment.get("work_pool"), committed)
        self.check_pull_steps(deployment.get("pull", file_pull), "pull" if "pull" in deployment else "pull (top level)")
        self.check_tags(deployment.get("tags"), committed)
        self.check_placeholders_and_secrets(deployment)

    def check_entrypoint(self, entrypoint: Any) -> FlowEntrypoint | None:
        if not entrypoint:
            self.problem("entrypoint", "missing: it names the flow, as path/to/file.py:flow_function")
            return None
        try:
            return inspect_entrypoint(self.project.root, entrypoint)
        except EntrypointError as error:
            self.problem("entrypoint", str(error))
            return None

    def check_parameters(self, parameters: Any, flow: FlowEntrypoint | None) -> None:
        if parameters is None:
            return
        if not isinstance(parameters, dict):
            self.problem("parameters", "expected a mapping of parameter names to values")
            return
        if flow is None:
            return
        for path, message in parameter_problems(parameters, flow):
            self.problem(f"parameters.{path}", message)

    def check_schedules(self, deployment: dict[str, Any]) -> None:
        if "schedule" in deployment:
            self.problem("schedule", "use `schedules:` (a list); `schedule:` is deprecated")
        schedules = deployment.get("schedules")
        if schedules is None:
            return
        if not isinstance(schedules, list):
            self.problem("schedules", "expected a list")
            return
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

        for index, schedule in enumerate(schedules):
            field = f"schedules[{index}]"
            if not isinstance(schedule, dict):
                self.problem(field, "expected a mapping such as {cron: '0 2 * * *', timezone: UTC}")
                continue
            for key in schedule.keys() - SCHEDULE_FIELDS:
                self.problem(f"{field}.{key}", "unknown field")
            kinds = [kind for kind in ("cron", "interval", "rrule") if kind in schedule]
            if len(kinds) != 1:
                self.problem(field, "needs exactly one of cron, interval or rrule")
                continue
            kind = kinds[0]
            model = {"cron": CronSchedule, "interval": IntervalSchedule, "rrule": RRuleSchedule}[kind]
            fields = {key: schedule[key] for key in (kind, "timezone", "day_or", "anchor_date") if key in schedule}
            try:
                model(**fields)
            except (ValueError, TypeError) as error:
                message = error.errors()[0]["msg"] if hasattr(error, "errors") else str(error)
                self.problem(field, f"{message} ({', '.join(f'{k}={v!r}' for k, v in fields.items())})")
            active = schedule.get("active", True)
            if not isinstance(active, bool):
                self.problem(f"{field}.active", f"expected true or false, got {active!r}")

    def check_work_pool(self, work_pool: Any, committed: bool) -> None:
        if not isinstance(work_pool, dict) or not work_pool.get("name"):
            self.problem("work_pool.name", "missing: workers pick up runs by work pool")
            return
        for key in work_pool.keys() - WORK_POOL_FIELDS:
            self.problem(f"work_pool.{key}", "unknown field (Prefect ignores it silently)")
        name = work_pool["name"]
        if committed and self.project.pool_type(name) is None:
            self.problem("work_pool.name", f"{name!r} is not declared in flowops.yaml work_pools (its type is needed)")
        job_variables = work_pool.get("job_variables")
        if job_variables is not None and not isinstance(job_variables, dict):
            self.problem("work_pool.job_variables", "expected a mapping")
        elif job_variables and "registry_credentials" in job_variables:
            self.problem(
                "work_pool.job_variables.registry_credentials",
                "`prefect deploy` would store the registry's password on the deployment; name the block in"
                " flowops.yaml (image.registry_credentials): deploy makes it the Docker pool's default",
            )
        elif job_variables and committed:
            self.check_job_variables(job_variables, name)

    def check_job_variables(self, job_variables: dict[str, Any], pool: str) -> None:
        """Against the job variables a new pool of the declared type has (its worker package's template, no
        server needed: a Kubernetes pool is checked where no cluster is). Deploy checks them again against the
        pool the server really has, which may have been customised."""
        pool_type = self.project.pool_type(pool)
        extra = missing_for_pool(pool_type) if pool_type else None
        if extra:
            self.problem("work_pool.name", f"{pool!r} is a {pool_type} pool: {install_hint(extra)}")
            return
        schema = job_variables_schema(pool_type) if pool_type else None
        if schema is None:
            return
        checked = {key: value for key, value in job_variables.items() if not is_template(value)}
        for path, message in schema_errors(checked, schema):
            self.problem(f"work_pool.job_variables.{path}", f"{message} (a {pool_type} pool's job variables)")

    def check_pull_steps(self, steps: Any, field: str) -> None:
        if not isinstance(steps, list) or not steps:
            self.problem(
                field,
                f"no pull steps: workers would run code from the deploying machine's disk, not git ({GIT_CLONE_STEP} is needed)",
            )
            return
        clones = [step[GIT_CLONE_STEP] for step in steps if isinstance(step, dict) and GIT_CLONE_STEP in step]
        if not clones:
            self.problem(field, f"no {GIT_CLONE_STEP} step: workers must fetch the code from git")
        for clone in clones:
            if not isinstance(clone, dict) or not clone.get("repository"):
                self.problem(f"{field}.git_clone.repository", "missing")
                continue
            given = [key for key in ("branch", "commit_sha") if clone.get(key)]
            if len(given) != 1:
                self.problem(
                    f"{field}.git_clone",
                    "needs exactly one of branch or commit_sha"
                    + (" (both deploy fine, then every run crashes)" if len(given) == 2 else ""),
                )

    def check_tags(self, tags: Any, committed: bool) -> None:
        if tags is None:
            return
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            self.problem("tags", "expected a list of strings")
            return
        if committed:
            for tag in tags:
                if tag == MANAGED_TAG or tag.startswith(RESERVED_TAG_PREFIXES):
                    self.problem("tags", f"{tag!r} is set by flowops when it deploys; remove it from the file")

    def check_placeholders_and_secrets(self, deployment: dict[str, Any]) -> None:
        for field, value in _leaves(deployment):
            if not isinstance(value, str):
                continue
            self.check_credentials_and_variables(field, value)
            stored = field.startswith(("parameters", "work_pool.job_variables"))
            if field.startswith("work_pool.job_variables.registry_credentials"):
                continue  # check_work_pool's problem says it all
            if stored and (block_references(value) or ".$ref." in field):
                self.problem(
                    field,
                    "a block reference here is resolved at deploy time and stored in plain text on the deployment;"
                    " pass the block's name and load it in the flow",
                )
            elif not field.startswith("pull") and _looks_like_secret(field, value):
                self.problem(field, "looks like a secret in plain text; keep it in a Secret block")

    def check_credentials_and_variables(self, field: str, value: str) -> None:
        """Anywhere in a deployment, pull steps included: no URL with credentials, no secret-looking or unset
        `{{ $VAR }}`."""
        self.check_credentials_in_urls(field, value)
        for variable in env_variables(value):
            if _SECRET_VARIABLE.search(variable):
                self.problem(
                    field,
                    f"${variable} looks like a secret: Prefect resolves {{{{ ${variable} }}}} as it deploys and"
                    " stores the value in plain text on the deployment; keep it in a block (a pull step takes"
                    " `{{ prefect.blocks... }}`, resolved at run time; a parameter takes the block's name)",
                )
            elif variable not in os.environ:
                self.problem(field, f"${variable} is not set (Prefect would deploy it as an empty string)")

    def check_credentials_in_urls(self, field: str, value: str) -> None:
        """A URL carrying a password, or a token as its user (https://TOKEN@host), anywhere: pull steps included
        (an `origin` remote with a token in it, passed on as the clone URL)."""
        if _has_url_credentials(value):
            self.problem(
                field,
                f"{without_userinfo(value)}: a URL with credentials in it would be stored on the deployment in plain text;"
                " use a credentials block (git_clone's `credentials`) or the environment",
            )


def _has_url_credentials(value: str) -> bool:
    """A URL with a password, or a token as an http(s) URL's user (a lone user elsewhere is a name: postgresql://app@db)."""
    return any(
        ":" in match.group("userinfo") or match.group("scheme").lower() in ("http", "https")
        for match in _URL_USERINFO.finditer(value)
    )


def run_parameter_problems(parameters: dict[str, Any]) -> list[str]:
    """Why these run parameters must not be sent: Prefect stores a flow run's parameters in plain text and shows
    them in its UI, so a URL with credentials (userinfo, or a signature or token in its query) or a value that
    looks like a secret would leak before the flow could redact anything. One line per parameter, values masked."""
    problems = []
    for field, value in _leaves(parameters):
        if not isinstance(value, str):
            continue
        if _has_url_credentials(value) or _SECRET_QUERY.search(value):
            problems.append(f"{field}: a URL with credentials in it")
        elif _looks_like_secret(field, value):
            problems.append(f"{field}: looks like a secret")
    return problems


def schema_errors(value: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted path, message) for each way `value` breaks the JSON schema, required fields aside (defaults fill
    them). jsonschema directly, as Prefect's server does: Prefect's own wrapper imports SQLAlchemy (0.25 s)."""
    import jsonschema

    schema = {key: item for key, item in schema.items() if key != "required"}
    validator = jsonschema.Draft202012Validator(schema)
    return [(".".join(map(str, error.absolute_path)), error.message) for error in validator.iter_errors(value)]


def _looks_like_secret(field: str, value: str) -> bool:
    if _SECRET_VALUE.search(value):
        return True
    key = field.rsplit(".", 1)[-1]
    return bool(_SECRET_KEY.search(key)) and not _is_reference(key, value)


def _is_reference(key: str, value: str) -> bool:
    """A value naming where a secret lives (a template, or a block's name under a `*_block` key), not the secret."""
    return is_template(value) or bool(re.search(r"(_|^)(block|name)$", key, re.IGNORECASE))


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _branch_environment_problems(project: Project) -> list[Problem]:
    """flowops.yaml's branch_environments: its placeholders are flowops' own, its cleanup names a deployment of
    the branch deployments' file."""
    branch_environments = project.config.branch_environments
    if branch_environments is None:
        return []
    config_file = str((project.deployments_dir / CONFIG_FILE).relative_to(project.root))
    problems = []
    sections = {"branch_environments.parameters": branch_environments.parameters}
    if branch_environments.cleanup:
        sections["branch_environments.cleanup.parameters"] = branch_environments.cleanup.parameters
    samples = branch_environments.sample_runs
    for name, parameters in (samples.deployments if samples else {}).items():
        sections[f"branch_environments.sample_runs.deployments.{name}"] = parameters
    for section, parameters in sections.items():
        for field, value in _leaves(parameters, section):
            for placeholder in sorted(template_names(value)):
                name = placeholder.removeprefix("flowops.")
                if not placeholder.startswith("flowops.") or name not in BRANCH_PLACEHOLDERS:
                    known = ", ".join(f"{{{{ flowops.{n} }}}}" for n in BRANCH_PLACEHOLDERS)
                    problems.append(
                        Problem(config_file, None, field, f"{{{{ {placeholder} }}}}: only {known} are filled in here")
                    )
    cleanup = branch_environments.cleanup
    source = project.environment_file(project.config.branch_deployments_from)
    if cleanup and cleanup.deployment not in [d.get("name") for d in source.deployments()]:
        problems.append(
            Problem(
                config_file,
                None,
                "branch_environments.cleanup.deployment",
                f"{cleanup.deployment!r} is not a deployment of {source.path} (the branch deployments' file)",
            )
        )
    if samples:
        problems += _sample_run_problems(project, config_file, source, samples.deployments)
    return problems


def _sample_run_problems(
    project: Project, config_file: str, source: DeploymentFile, samples: dict[str, dict[str, Any]]
) -> list[Problem]:
    """Each sample run names a deployment of the branch deployments' file (not the cleanup, which drops data),
    with parameters its flow takes."""
    cleanup = project.config.branch_environments.cleanup if project.config.branch_environments else None
    by_name = {d.get("name"): d for d in source.deployments()}
    problems = []
    for name, parameters in samples.items():
        field = f"branch_environments.sample_runs.deployments.{name}"
        deployment = by_name.get(name)
        if deployment is None:
            problems.append(
                Problem(
                    config_file,
                    None,
                    field,
                    f"{name!r} is not a deployment of {source.path} (the branch deployments' file)",
                )
            )
            continue
        if cleanup and name == cleanup.deployment:
            problems.append(
                Problem(config_file, None, field, f"{name!r} is the cleanup: it drops data, it is no sample")
            )
            continue
        try:
            flow = inspect_entrypoint(project.root, str(deployment.get("entrypoint")))
        except EntrypointError:
            continue  # the deployment's own check reports it
        for path, message in parameter_problems(parameters, flow):
            problems.append(Problem(config_file, None, f"{field}.{path}", message))
    return problems


def parameter_problems(parameters: dict[str, Any], flow: FlowEntrypoint) -> list[tuple[str, str]]:
    """(parameter path, message) for each parameter `flow` does not take, or whose value does not fit its type
    (templates are filled in later: not judged here)."""
    known = flow.parameter_schema.get("properties", {})
    problems = [
        (name, f"not a parameter of flow {flow.flow_name!r} (it has: {', '.join(known)})")
        for name in sorted(parameters.keys() - known.keys())
    ]
    given = {name: value for name, value in parameters.items() if name in known and not is_template(value)}
    return problems + schema_errors(given, flow.parameter_schema)


def _duplicate_names(project: Project, files: list[DeploymentFile]) -> list[Problem]:
    """Deployment names are unique per flow on a server: two files using one name overwrite each other."""
    seen: dict[tuple[str, str], str] = {}
    problems = []
    for file in files:
        for deployment in file.deployments():
            name, entrypoint = deployment.get("name"), deployment.get("entrypoint")
            if not isinstance(name, str) or not isinstance(entrypoint, str):
                continue
            try:
                flow_name = inspect_entrypoint(project.root, entrypoint).flow_name
            except EntrypointError:
                continue
            key = (flow_name, name)
            if key in seen and seen[key] != file.path:
                problems.append(Problem(file.path, name, "name", f"{flow_name}/{name} is also deployed by {seen[key]}"))
            seen.setdefault(key, file.path)
    return problems
