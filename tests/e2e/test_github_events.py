"""Each GitHub event, as a workflow job meets it: the GITHUB_* variables and the event payload file GitHub sets,
then the job's one command, `flowops github-event`, against a real Prefect server and a git origin on disk."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from flowops.local import git
from flowops.render.branches import branch_slug
from tests.helpers import api, deployments, deployments_as_deployed, edit_yaml

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "github_events"


def github_event(repo, event: str, fixture: str, sha: str = "", flow: str = "", check: bool = True):
    """Run the workflow step `uv run flowops github-event` for `fixture`, as GitHub would set it up."""
    text = (EVENTS / f"{fixture}.json").read_text().replace("HEAD_SHA", sha).replace("FLOW/", f"{flow}/")
    payload = repo.path.parent / f"{fixture}.json"
    payload.write_text(text)
    summary = repo.path.parent / "step-summary.md"
    summary.write_text("")
    event_payload = json.loads(text)
    if event == "pull_request":
        ref_name = f"{event_payload['number']}/merge"
    else:
        ref_name = str(event_payload.get("ref", "refs/heads/main")).removeprefix("refs/heads/")
    environment = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(payload),
        "GITHUB_REF_NAME": ref_name,
        "GITHUB_SERVER_URL": repo.origin.parent.as_uri(),  # workers clone GITHUB_SERVER_URL/GITHUB_REPOSITORY.git
        "GITHUB_REPOSITORY": repo.origin.name.removesuffix(".git"),
        "GITHUB_SHA": sha or git(repo.path, "rev-parse", "HEAD"),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    saved = dict(repo.env)
    repo.env.update(environment)
    try:
        result = repo.flowops("github-event", check=check)
    finally:
        repo.env.clear()
        repo.env.update(saved)
    return result, summary.read_text()


def github_event_unchecked(repo, event: str, fixture: str, sha: str = ""):
    """The same step, whatever its exit status."""
    return github_event(repo, event, fixture, sha, check=False)[0]


def names(repo) -> set[str]:
    return {name.split("/", 1)[1] for name in deployments(repo.api_url, repo.flow_name)}


def production_on_a_process_pool(repo) -> str:
    """This test environment runs every deployment on a process pool of its own: data in the files, not code."""
    pool = f"hello-events-{uuid.uuid4().hex[:8]}"
    edit_yaml(repo.path / "deployments" / "flowops.yaml", lambda c: c.update(work_pools={pool: {"type": "process"}}))
    for environment in ("main", "staging"):
        edit_yaml(
            repo.path / "deployments" / environment / "prefect.yaml",
            lambda c: c["deployments"][0]["work_pool"].update(name=pool),
        )
    return pool


def test_every_event_a_team_uses_does_what_it_should_on_the_server(hello_repo):
    pool = production_on_a_process_pool(hello_repo)
    main_sha = hello_repo.commit("production on a process pool here", push=["main", "staging"])
    slug = branch_slug("feature/Foo_Bar")

    result, _ = github_event(hello_repo, "push", "push_main", main_sha)
    assert result.stdout.startswith("push: deploy main (push to main)")
    production = deployments(hello_repo.api_url, hello_repo.flow_name)[f"{hello_repo.flow_name}/production"]
    assert f"commit:{main_sha[:8]}" in production["tags"]
    assert (
        production["pull_steps"][0]["prefect.deployments.steps.git_clone"]["repository"] == hello_repo.origin.as_uri()
    )

    github_event(hello_repo, "push", "push_staging", main_sha)
    github_event(hello_repo, "push", "push_feature", main_sha)  # feature pushes deploy through their PR
    assert names(hello_repo) == {"production", "staging"}

    git(hello_repo.path, "checkout", "--quiet", "-b", "feature/Foo_Bar")
    (hello_repo.path / "flows" / "extra.py").write_text("X = 1\n")
    first = hello_repo.commit("feature work", push=["feature/Foo_Bar"])
    result, summary = github_event(hello_repo, "pull_request", "pull_request_opened", first)
    assert "pull request #7: no comment (GITHUB_TOKEN is not set" in result.stdout  # a skipped comment says why
    branch_deployment = f"{hello_repo.flow_name}/staging-{slug}"
    clone = deployments(hello_repo.api_url)[branch_deployment]["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    assert clone["commit_sha"] == first
    assert f"| + | `{branch_deployment}` | create |" in summary  # the plan, in the step summary

    (hello_repo.path / "flows" / "extra.py").write_text("X = 2\n")
    second = hello_repo.commit("more work", push=["feature/Foo_Bar"])
    github_event(hello_repo, "pull_request", "pull_request_synchronize", second)
    clone = deployments(hello_repo.api_url)[branch_deployment]["pull_steps"][0]["prefect.deployments.steps.git_clone"]
    assert clone["commit_sha"] == second

    before = deployments_as_deployed(hello_repo.api_url, hello_repo.flow_name)
    result, _ = github_event(hello_repo, "pull_request", "pull_request_fork", second)
    assert "comes from a fork" in result.stdout
    github_event(hello_repo, "pull_request", "pull_request_labeled", second)
    assert deployments_as_deployed(hello_repo.api_url, hello_repo.flow_name) == before

    github_event(hello_repo, "pull_request", "pull_request_closed", second)
    assert names(hello_repo) == {"production", "staging"}
    github_event(hello_repo, "pull_request", "pull_request_reopened", second)
    assert f"staging-{slug}" in names(hello_repo)
    github_event(hello_repo, "delete", "delete_branch")
    assert names(hello_repo) == {"production", "staging"}
    github_event(hello_repo, "delete", "delete_main")  # a protected branch: its environment stays
    assert names(hello_repo) == {"production", "staging"}

    git(hello_repo.path, "checkout", "--quiet", "-b", "feature/by-hand", "main")
    github_event(hello_repo, "workflow_dispatch", "dispatch_deploy")
    by_hand = f"staging-{branch_slug('feature/by-hand')}"
    assert names(hello_repo) == {"production", "staging", by_hand}
    result, summary = github_event(hello_repo, "workflow_dispatch", "dispatch_plan")
    assert f"Plan for branch 'feature/by-hand' @ {main_sha[:8]}: nothing to change" in result.stdout
    github_event(hello_repo, "workflow_dispatch", "dispatch_teardown")
    assert names(hello_repo) == {"production", "staging"}

    hello_repo.env["ECOMMERCE_DATABASE_URL"] = "sqlite:///never-printed.sqlite"
    result, _ = github_event(hello_repo, "workflow_dispatch", "dispatch_bootstrap")
    del hello_repo.env["ECOMMERCE_DATABASE_URL"]
    assert f"work pool '{pool}' (process): exists" in result.stdout
    assert "block 'hello-staging-db': " in result.stdout  # the dispatch's environment's block, and no other
    assert "never-printed" not in result.stdout + result.stderr

    with hello_repo.worker(pool):
        result, _ = github_event(hello_repo, "workflow_dispatch", "dispatch_run", flow=hello_repo.flow_name)
    assert result.stdout.rstrip().endswith(": Completed"), result.stdout


def test_a_push_to_main_that_changes_no_deployment_moves_production_without_prefect(hello_repo):
    """Merging a pull request that touches no flow (documentation, say) moves production to the merge commit by
    the pin-move path, as `flowops deploy` does; the job run again answers "nothing changed"; code goes the whole
    way. Whether Prefect was imported is read from Python's own import log (PYTHONPROFILEIMPORTTIME)."""
    production_on_a_process_pool(hello_repo)
    first = hello_repo.commit("production on a process pool here", push=["main"])
    result, _ = github_event(hello_repo, "push", "push_main", first)
    assert "+ create" in result.stdout

    def production_commit() -> tuple[str, str, str]:
        production = deployments(hello_repo.api_url, hello_repo.flow_name)[f"{hello_repo.flow_name}/production"]
        clone = production["pull_steps"][0]["prefect.deployments.steps.git_clone"]
        tag = next(tag for tag in production["tags"] if tag.startswith("commit:"))
        return clone["commit_sha"], tag.removeprefix("commit:"), production["version"]

    def push_main(sha: str) -> tuple[str, str, bool]:
        hello_repo.env["PYTHONPROFILEIMPORTTIME"] = "1"
        try:
            result, summary = github_event(hello_repo, "push", "push_main", sha)
        finally:
            del hello_repo.env["PYTHONPROFILEIMPORTTIME"]
        imported = any(line.split("|")[-1].strip() == "prefect" for line in result.stderr.splitlines())
        return result.stdout, summary, imported

    (hello_repo.path / "NOTES.md").write_text("documentation only\n")
    docs = hello_repo.commit("documentation only", push=["main"])
    stdout, summary, imported = push_main(docs)
    assert "1 deployment(s) moved" in stdout, stdout
    assert "1 deployment(s) moved" in summary
    assert not imported
    assert production_commit() == (docs, docs[:8], docs[:8])

    stdout, _, imported = push_main(docs)  # the job re-run
    assert "nothing changed" in stdout, stdout
    assert not imported
    assert production_commit() == (docs, docs[:8], docs[:8])

    flow_file = hello_repo.path / "flows" / "hello.py"
    flow_file.write_text(flow_file.read_text() + "\n# a change to the code\n")
    code = hello_repo.commit("code", push=["main"])
    stdout, _, imported = push_main(code)
    assert "deployment(s) moved" not in stdout, stdout
    assert imported
    assert production_commit() == (code, code[:8], code[:8])


def test_a_dispatched_run_that_fails_fails_the_job(hello_repo):
    production_on_a_process_pool(hello_repo)
    sha = hello_repo.commit("process pool", push=["main"])
    github_event(hello_repo, "push", "push_main", sha)
    payload = json.loads((EVENTS / "dispatch_run.json").read_text())
    payload["inputs"]["parameters"] = json.dumps({"count": "not a number"})
    bad = hello_repo.path.parent / "dispatch_bad_run.json"
    bad.write_text(json.dumps(payload).replace("FLOW/", f"{hello_repo.flow_name}/"))
    hello_repo.env.update(GITHUB_EVENT_NAME="workflow_dispatch", GITHUB_EVENT_PATH=str(bad))
    result = hello_repo.flowops("github-event", check=False)
    assert result.returncode == 1
    assert "error:" in result.stderr


def test_a_pull_request_whose_files_are_refused_says_so_on_the_pull_request(hello_repo):
    from flowops.github.pull_request_comment import MARKER
    from tests.helpers import GitHubAPI

    production_on_a_process_pool(hello_repo)
    hello_repo.commit("process pool", push=["main"])
    git(hello_repo.path, "checkout", "--quiet", "-b", "feature/Foo_Bar")
    edit_yaml(
        hello_repo.path / "deployments" / "staging" / "prefect.yaml",
        lambda c: c["deployments"][0].update(schedules=[{"cron": "every day"}]),
    )
    sha = hello_repo.commit("a cron that is not one", push=["feature/Foo_Bar"])
    token = f"ghs_{uuid.uuid4().hex}"
    github = GitHubAPI(hello_repo.origin.name.removesuffix(".git"), token)  # as GITHUB_REPOSITORY is set here
    hello_repo.env.update(GITHUB_TOKEN=token, GITHUB_API_URL=github.url)
    try:
        result = github_event_unchecked(hello_repo, "pull_request", "pull_request_opened", sha)
    finally:
        github.close()
    assert result.returncode == 1
    assert [method for method, _ in github.calls] == ["GET", "POST"]  # no plan to show: the refusal, once
    (comment,) = github.comments
    assert comment["body"].startswith(f"{MARKER}\n### flowops deploy refused: feature/Foo_Bar @ {sha[:8]}")
    assert "schedules" in comment["body"]
    assert comment["body"].rstrip().endswith("Nothing was changed.")
    assert github.problems == []
    assert names(hello_repo) == set()


SUMMARY_FLOW = """
from prefect.artifacts import create_table_artifact


@flow(name="FLOW_NAME", log_prints=True)
def hello(name: str = "world", count: int = 1) -> str:
    if name == "broken":
        raise ValueError("a transform that breaks on the sample")
    create_table_artifact([{"measure": "greeting", "value": f"hello {name}"}, {"measure": "count", "value": count}], key="flowops-summary")
    return name
"""


def test_a_pull_requests_sample_runs_show_their_outcome_and_a_failed_or_hung_one_fails_the_job(hello_repo):
    """Any flow takes part: the sample project's, with a summary artifact of its own. A sample run that completes
    passes the job; one that fails, or that no worker picks up before the timeout (then cancelled), fails it."""
    pool = production_on_a_process_pool(hello_repo)
    samples = {"deployments": {"staging": {"count": 3}}, "reset": False, "timeout": 120}
    edit_yaml(
        hello_repo.path / "deployments" / "flowops.yaml",
        lambda c: c.update(branch_environments={"sample_runs": samples}),
    )
    flow_file = hello_repo.path / "flows" / "hello.py"
    original = flow_file.read_text()
    head, _, _ = original.partition('@flow(name="')
    flow_file.write_text(head + SUMMARY_FLOW.replace("FLOW_NAME", hello_repo.flow_name))
    main_sha = hello_repo.commit("sample runs, and a flow with a summary", push=["main", "staging"])
    github_event(hello_repo, "push", "push_staging", main_sha)
    branch_deployment = f"{hello_repo.flow_name}/staging-{branch_slug('feature/Foo_Bar')}"

    git(hello_repo.path, "checkout", "--quiet", "-b", "feature/Foo_Bar")
    (hello_repo.path / "flows" / "extra.py").write_text("X = 1\n")
    first = hello_repo.commit("feature work", push=["feature/Foo_Bar"])
    with hello_repo.worker(pool):
        result, summary = github_event(hello_repo, "pull_request", "pull_request_opened", first)
    assert f"sample run of {branch_deployment}: Completed" in result.stdout
    assert f"| ✅ | `{branch_deployment}` | Completed |" in summary
    assert f"no Completed run of `{hello_repo.flow_name}/staging` with a summary yet" in summary
    assert "| greeting | hello staging | - | **new** |" in summary  # the deployment's name, the sample's count
    assert "| count | 3 | - | **new** |" in summary

    flow_file.write_text(flow_file.read_text().replace('name == "broken"', "count == 3"))
    broken = hello_repo.commit("a transform that breaks", push=["feature/Foo_Bar"])
    with hello_repo.worker(pool):
        result, summary = github_event(hello_repo, "pull_request", "pull_request_synchronize", broken, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: a sample run of the pull request did not succeed" in result.stderr
    assert f"| ❌ | `{branch_deployment}` | Failed |" in summary
    assert "a transform that breaks on the sample" in summary

    # No worker serves the pool: the run is given up on at the (policy's) timeout, and cancelled.
    git(hello_repo.path, "checkout", "--quiet", "main")
    edit_yaml(
        hello_repo.path / "deployments" / "flowops.yaml",
        lambda c: c["branch_environments"]["sample_runs"].update(timeout=3),
    )
    hello_repo.commit("a short timeout", push=["main"])
    git(hello_repo.path, "checkout", "--quiet", "feature/Foo_Bar")
    git(hello_repo.path, "merge", "--quiet", "main")
    flow_file.write_text(flow_file.read_text().replace("count == 3", 'name == "broken"'))
    fixed = hello_repo.commit("fixed, but nobody runs it", push=["feature/Foo_Bar"])
    result, summary = github_event(hello_repo, "pull_request", "pull_request_synchronize", fixed, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"did not end within 3 s (still Scheduled: is a worker serving work pool {pool!r}?); cancelled" in summary
    flows = {"flows": {"name": {"any_": [hello_repo.flow_name]}}}
    runs = api(hello_repo.api_url, "flow_runs/filter", {**flows, "sort": "EXPECTED_START_TIME_DESC", "limit": 10})
    assert [run["state_type"] for run in runs if run["parameters"].get("count") == 3] == [
        "CANCELLED",
        "FAILED",
        "COMPLETED",
    ]  # the one the job gave up on never runs later

    # The same commit again: nothing changed, so nothing runs (only the plan's changed deployments are sampled).
    result, summary = github_event(hello_repo, "pull_request", "pull_request_synchronize", fixed, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Sample runs" not in summary
