"""ci.yml under act: lint, validate and the tests, and `pass`, which branch protection requires."""

from __future__ import annotations

from tests.helpers import edit_yaml, event

# The test job runs `make test` as committed; inside it, pytest takes this narrower selection from PYTEST_ADDOPTS
# (its own variable): the PostgreSQL-backed tests, not this suite again nor the end-to-end ones it already ran.
INNER_TESTS = "-m 'not (e2e or container or workflows or prefect)' tests/unit tests/integration"


def test_a_push_runs_lint_validate_and_tests_and_pass_succeeds(repository):
    sha = repository.commit("nothing new")
    repository.env["PYTEST_ADDOPTS"] = INNER_TESTS
    run = repository.act("ci.yml", "push", event("push_main", HEAD_SHA=sha))
    for job in ("lint (pre-commit)", "flowops validate", "tests (PostgreSQL)", "pass"):
        assert run.job(job) == "succeeded", f"{job}: {run.job(job)}\n{run.output[-3000:]}"
    assert run.returncode == 0
    assert " passed" in run.output  # pytest ran, against this machine's PostgreSQL (act runs no services)


def test_a_broken_deployment_file_fails_validate_and_so_pass(repository):
    edit_yaml(repository.path / "deployments" / "staging" / "prefect.yaml",
              lambda content: content["deployments"][0].update(schedules=[{"cron": "every day"}]))  # fmt: skip
    sha = repository.commit("a cron that is not one")
    run = repository.act("ci.yml", "push", event("push_main", HEAD_SHA=sha), job="validate")
    assert run.job("flowops validate") == "failed"
    assert "schedules" in run.output
    assert run.returncode != 0
