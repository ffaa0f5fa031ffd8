"""ci.yml under act, through flowops' reusable checks (flowops-checks.yml): lint, validate and the tests, and
`pass`, which branch protection requires."""

from __future__ import annotations

import re

from tests.helpers import edit_yaml, event

# The test job runs `make test` as committed; inside it, pytest takes this narrower selection from PYTEST_ADDOPTS
# (its own variable): the PostgreSQL-backed tests, not this suite again nor the end-to-end ones it already ran.
INNER_TESTS = "-m 'not (e2e or container or workflows or prefect)' tests/unit tests/integration"


def test_a_push_runs_lint_validate_and_tests_and_pass_succeeds(repository):
    sha = repository.commit("nothing new")
    repository.env["PYTEST_ADDOPTS"] = INNER_TESTS
    run = repository.act("ci.yml", "push", event("push_main", HEAD_SHA=sha))
    for job in ("lint", "flowops validate", "tests", "pass"):
        assert run.job(job) == "succeeded", f"{job}: {run.job(job)}\n{run.output[-3000:]}"
    assert run.returncode == 0
    assert " passed" in run.output  # pytest ran, against this machine's PostgreSQL (act runs no services)


def test_empty_commands_leave_their_jobs_out_and_pass_then_follows_validate_alone(repository):
    """With `lint` and `test` empty (an adopter without them), only validate runs: `pass` succeeds on it, and fails
    once a deployment file is broken."""
    ci = repository.path / ".github" / "workflows" / "ci.yml"
    text = re.sub(r"(lint|test): make \w+", r'\1: ""', ci.read_text()).replace("postgres: true", "postgres: false")
    assert text.count('""') == 2
    ci.write_text(text)  # as text: YAML would write `on:` back as `true:`
    sha = repository.commit("checks without lint and tests")
    run = repository.act("ci.yml", "push", event("push_main", HEAD_SHA=sha))
    assert run.job("flowops validate") == "succeeded", run.output[-3000:]
    assert (run.job("lint"), run.job("tests")) == ("not run", "not run")
    assert run.job("pass") == "succeeded"
    assert run.returncode == 0

    edit_yaml(repository.path / "deployments" / "staging" / "prefect.yaml",
              lambda content: content["deployments"][0].update(schedules=[{"cron": "every day"}]))  # fmt: skip
    sha = repository.commit("a cron that is not one")
    run = repository.act("ci.yml", "push", event("push_main", HEAD_SHA=sha))
    assert run.job("flowops validate") == "failed"
    assert "schedules" in run.output
    assert run.job("pass") == "failed"
    assert run.returncode != 0
