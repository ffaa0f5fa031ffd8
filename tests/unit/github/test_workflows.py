"""The workflows are hardened and thin: checked by actionlint and zizmor, and by the rules they cannot express."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# Each verified pin's action.yml, copied from the action's own repository at that commit (see its README).
VERIFIED_ACTIONS = ROOT / "tests" / "fixtures" / "actions"
# A run step is one project command, or in flowops.yml (for any repository) the caller's `install` and `flowops`
# inputs, passed through env: `bash -c "$INSTALL"`, `$FLOWOPS github-event`.
PROJECT_COMMAND = re.compile(
    r'^(make [a-z-]+|uv run flowops [a-z -]+|bash -c "\$(INSTALL|LINT|TEST)"|\$FLOWOPS [a-z -]+)$'
)
REUSABLE = ROOT / ".github" / "workflows" / "flowops.yml"
CHECKS = ROOT / ".github" / "workflows" / "flowops-checks.yml"
CALLERS = ("deploy.yml", "gc.yml", "manual.yml")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def steps_of(document: dict):
    for job in (document.get("jobs") or {}).values():
        yield from job.get("steps") or []
    yield from (document.get("runs") or {}).get("steps") or []


def tool(name: str) -> str:
    found = shutil.which(name) or str(Path(__import__("sys").executable).with_name(name))
    if not Path(found).exists():
        pytest.fail(f"{name} is not installed: run `make setup`")
    return found


def test_there_are_workflows_for_ci_delivery_and_manual_runs():
    assert {path.name for path in WORKFLOWS} == {
        "ci.yml", "deploy.yml", "gc.yml", "manual.yml", "flowops.yml", "flowops-checks.yml"
    }  # fmt: skip


def test_actionlint_reports_nothing():
    result = subprocess.run([tool("actionlint"), "-no-color"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_reports_nothing():
    command = [tool("zizmor"), "--offline", "--no-progress", "--format", "plain", ".github"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_empty_at_the_top_and_granted_per_job(path):
    document = load(path)
    assert document["permissions"] == {}
    for name, job in document["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} must state its permissions"
        assert "write-all" not in str(job["permissions"])


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: p.parent.name if p.name == "action.yml" else p.name)
def test_third_party_actions_are_pinned_by_full_sha_with_their_version_in_a_comment(path):
    text = path.read_text()
    for step in steps_of(load(path)):
        uses = step.get("uses")
        if not uses or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a full commit SHA"
        assert re.search(re.escape(uses) + r" # v\d+(\.\d+)*\s*$", text, re.MULTILINE), f"{uses}: add `# vX.Y.Z`"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_do_not_persist_credentials(path):
    for step in steps_of(load(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("path", WORKFLOWS + ACTIONS, ids=lambda p: p.parent.name if p.name == "action.yml" else p.name)
def test_run_steps_expand_no_expressions_and_call_one_project_command(path):
    """Untrusted values (branch names, titles, inputs) reach commands only through env: and "$VAR"."""
    for step in steps_of(load(path)):
        if "run" not in step:
            continue
        assert "${{" not in step["run"], f"{path.name}: {step['run']!r} expands an expression in the shell"
        if step["run"] != "exit 1":  # the aggregate `pass` job's verdict
            assert PROJECT_COMMAND.match(step["run"].strip()), (
                f"{path.name}: {step['run']!r} is not one project command"
            )


def test_every_job_with_an_environment_shares_its_environments_groups_and_never_cancels_a_deploy():
    """Groups are named flowops-<environment>-<branch> in every job, so two runs never deploy one branch at once.
    Not one group per environment: GitHub cancels a waiting job when another joins its group (`queue: max` would
    keep them, but act 0.2.89 rejects it), which would drop other branches' deploys; the environment-wide
    exclusion is the lock flowops takes on the Prefect server."""
    jobs = load(REUSABLE)["jobs"]
    for name, job in jobs.items():
        environment = job.get("environment")
        if environment is None or name == "image":  # the image job changes no Prefect server
            continue
        # gc touches every branch of its environment: one group of its own (the server lock orders the rest)
        branch = "gc" if name == "gc" else "$" + "{{"
        environment = "$" + "{{ github.event.inputs.environment }}" if name == "manual" else environment
        concurrency = job.get("concurrency") or {}
        assert concurrency.get("group", "").startswith(f"flowops-{environment}-{branch}"), name
        assert concurrency.get("cancel-in-progress") is False, name
    assert {name for name, job in jobs.items() if job.get("environment")} == {
        "image", "production", "staging", "pull-request", "gc", "manual"
    }  # fmt: skip


def test_jobs_that_deploy_check_out_the_whole_history():
    """flowops refuses a commit older than the deployed one; it can tell only with the history at hand."""
    for name, job in load(REUSABLE)["jobs"].items():
        if job.get("environment") and name not in ("image", "gc"):
            (checkout,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")]
            assert checkout["with"]["fetch-depth"] == 0, name


def test_every_job_keeps_to_its_own_events_and_production_needs_its_environment():
    """Each job's own `if` names its events: production never deploys on a push to staging because the image job
    it needs happened to run (a job that only inherited its filter did so for an adopter)."""
    jobs = load(REUSABLE)["jobs"]
    for name, job in jobs.items():
        assert "github.event_name ==" in job.get("if", ""), f"{name} has no event filter of its own"
    production = jobs["production"]
    assert production["environment"] == "production"
    assert production["needs"] == "image"
    assert "inputs.production-branch" in production["if"]
    assert "head.repo.full_name == github.repository" in jobs["pull-request"]["if"]  # forks never deploy
    assert jobs["pull-request"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    commenting = [name for name, job in jobs.items() if "pull-requests" in (job.get("permissions") or {})]
    assert commenting == ["pull-request"]  # that job only


def test_the_callers_are_thin_and_call_the_reusable_workflow():
    """This repository adopts flowops as any other does: each caller is one job calling flowops.yml."""
    for name in CALLERS:
        path = ROOT / ".github" / "workflows" / name
        (job,) = load(path)["jobs"].values()
        assert job["uses"] == "./.github/workflows/flowops.yml"
        assert job["secrets"] == "inherit"
        assert set(job["with"]) <= set(load(REUSABLE)[True]["workflow_call"]["inputs"])
    lines = (ROOT / ".github" / "workflows" / "deploy.yml").read_text().splitlines()
    assert len([line for line in lines if line.strip() and not line.lstrip().startswith("#")]) <= 20


def test_ci_calls_the_reusable_checks_with_its_commands_and_postgresql():
    """Lint and test commands are the caller's inputs, never this repository's Makefile inside flowops-checks.yml;
    the PostgreSQL service exists only when asked for (an empty image starts none) and `pass` accepts a job left out
    by an empty command, not one that failed, nor a validate that did not succeed."""
    (job,) = load(ROOT / ".github" / "workflows" / "ci.yml")["jobs"].values()
    assert job["uses"] == "./.github/workflows/flowops-checks.yml"
    assert set(job["with"]) <= set(load(CHECKS)[True]["workflow_call"]["inputs"])
    assert {job["with"]["lint"], job["with"]["test"]} == {"make lint", "make test"}
    checks = load(CHECKS)
    assert "make " not in CHECKS.read_text()
    inputs = checks[True]["workflow_call"]["inputs"]
    assert inputs["postgres"]["default"] is False
    assert checks["jobs"]["test"]["services"]["postgres"]["image"] == (
        "${{ inputs.postgres && inputs.postgres-image || '' }}"
    )
    assert checks["jobs"]["lint"]["if"] == "inputs.lint != ''"
    assert checks["jobs"]["test"]["if"] == "inputs.test != ''"
    verdict = checks["jobs"]["pass"]["steps"][0]["if"]
    for failed in ("'failure'", "'cancelled'", "needs.validate.result != 'success'"):
        assert failed in verdict


def test_pull_requests_run_as_pull_request_never_pull_request_target():
    for path in WORKFLOWS:
        triggers = load(path)[True]  # YAML reads the key `on` as true
        assert "pull_request_target" not in triggers


def uses_steps():
    for path in WORKFLOWS + ACTIONS:
        for step in steps_of(load(path)):
            if step.get("uses") and not step["uses"].startswith("./"):
                yield pytest.param(
                    step, id=f"{path.parent.name if path.name == 'action.yml' else path.name}:{step['uses']}"
                )


@pytest.mark.parametrize("step", list(uses_steps()))
def test_every_pinned_action_is_a_verified_commit_and_gets_only_inputs_it_declares(step):
    action, _, sha = step["uses"].partition("@")
    verified = VERIFIED_ACTIONS / action / sha / "action.yml"
    assert verified.is_file(), f"{step['uses']} is not a verified commit of {action} (see {VERIFIED_ACTIONS}/README.md)"
    inputs = set(load(verified).get("inputs") or {})
    assert set(step.get("with") or {}) <= inputs, f"{action}: not inputs: {set(step['with']) - inputs}"


def test_every_job_sets_up_uv_and_runs_the_callers_install_and_no_workflow_uses_the_dollar_slash_form():
    """The reusable workflows run in other repositories: each job that checks out sets up uv and runs the `install`
    input itself. `$/` (zizmor's suggestion for a local action) is never used: GitHub Enterprise Server,
    Forgejo/Gitea and act do not parse it."""
    for path in (REUSABLE, CHECKS):
        for name, job in load(path)["jobs"].items():
            uses = [step.get("uses", "") for step in job.get("steps") or []]
            if not any(uses):
                continue
            assert any(u.startswith("astral-sh/setup-uv@") for u in uses), f"{path.name}: {name}"
            assert {"run": 'bash -c "$INSTALL"'}.items() <= next(
                s for s in job["steps"] if s.get("run", "").startswith("bash")
            ).items()
    for path in WORKFLOWS:
        assert "$/" not in path.read_text()


def test_the_reusable_workflows_pin_the_uv_version_pyproject_requires():
    import tomllib

    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["required-version"]
    for reusable in (REUSABLE, CHECKS):
        assert required == f"=={load(reusable)[True]['workflow_call']['inputs']['uv-version']['default']}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_secrets_reach_only_the_steps_that_use_them(path):
    """Never the workflow's or a job's env: the set-up of a branch's code (its Makefile) runs without them."""
    document = load(path)
    assert "secrets." not in str(document.get("env") or {})
    for name, job in document["jobs"].items():
        assert "secrets." not in str(job.get("env") or {}), f"{path.name}: job {name} puts secrets in its env"
        for step in job.get("steps") or []:
            if "secrets." in str(step.get("env") or {}):
                assert step.get("run", "").startswith(("uv run flowops", "$FLOWOPS")), f"{path.name}: {name}: {step}"
