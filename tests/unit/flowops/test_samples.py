"""How a pull request's sample runs read on it: each run's state, duration and link, its summary beside staging's
with every difference marked, and what failed said in one line."""

from __future__ import annotations

import uuid

from flowops.api.server import RunResult
from flowops.deploy.gitops import DataCleanup
from flowops.deploy.report import samples_markdown, samples_text
from flowops.deploy.samples import SampleReport, SampleRun, summary_of

UI = "http://prefect.example:4200"


def run(state_type: str, state_name: str, seconds: float | None = 4.25, message: str | None = None) -> RunResult:
    return RunResult(uuid.uuid4(), f"run-{state_name.lower()}", state_type, state_name, message, seconds)


def test_a_summary_is_read_from_the_artifacts_rows_and_anything_else_is_no_summary():
    rows = [{"measure": "rows loaded", "value": 10000}, {"measure": "column price", "value": "numeric"}]
    assert summary_of(rows) == {"rows loaded": "10,000", "column price": "numeric"}
    assert summary_of([{"measure": "ok", "value": True}]) == {"ok": "True"}  # a flag is not a count
    for other in (None, "a markdown artifact", {"measure": "x"}, [{"value": 1}], [["measure", "x"]]):
        assert summary_of(other) is None


def test_the_comment_shows_each_run_and_marks_every_difference_with_staging():
    ours, staging = run("COMPLETED", "Completed"), run("COMPLETED", "Completed", 61.0)
    sample = SampleRun(
        "flow/staging-feature-x", "flow/staging", "pool", ours,
        summary={"a.csv: rows loaded": "10,000", "column brand": "text", "column kind": "text", "same": "1"},
        baseline=staging,
        baseline_summary={"a.csv: rows loaded": "50,000", "column kind": "bigint", "same": "1", "column old": "x|y"},
    )  # fmt: skip
    reset = DataCleanup("branch_feature_x", "flow/drop-branch-data-feature-x", True, "run r Completed")
    markdown = samples_markdown(SampleReport([sample], reset, not_sampled=["flow/other-feature-x"]), UI)
    assert "Data environment `branch_feature_x` emptied first (run r Completed)." in markdown
    assert (
        f"| ✅ | `flow/staging-feature-x` | Completed | 4.2 s | [{ours.flow_run_name}]({UI}/runs/flow-run/{ours.flow_run_id}) |"
        in markdown
    )
    assert (
        f"beside `flow/staging`'s latest Completed run, [{staging.flow_run_name}]({UI}/runs/flow-run/{staging.flow_run_id})"
        in markdown
    )
    assert "| a.csv: rows loaded | 10,000 | 50,000 | **≠** |" in markdown
    assert "| column brand | text | - | **new** |" in markdown
    assert "| column kind | text | bigint | **≠** |" in markdown
    assert "| same | 1 | 1 |  |" in markdown
    assert "| column old | - | x\\|y | **gone** |" in markdown  # a value's `|` never breaks the table
    assert "4 difference(s)." in markdown
    assert "Changed, with no sample declared: `flow/other-feature-x`" in markdown
    assert SampleReport([sample], reset).succeeded


def test_a_failed_a_hung_and_an_unstarted_run_each_fail_the_report_and_say_why():
    failed = SampleRun("flow/a-x", "flow/a", "pool", run("FAILED", "Failed"), problem="ended Failed: ValueError: bad")
    hung = SampleRun(
        "flow/b-x", "flow/b", "pool", run("SCHEDULED", "Scheduled", None),
        problem="did not end within 3 s (still Scheduled: is a worker serving work pool 'pool'?); cancelled",
    )  # fmt: skip
    unstarted = SampleRun("flow/c-x", "flow/c", "pool", problem="running flow/c-x: 500 oops")
    report = SampleReport([failed, hung, unstarted])
    assert not report.succeeded
    markdown = samples_markdown(report, None)
    assert f"| ❌ | `flow/a-x` | Failed | 4.2 s | {failed.run.flow_run_name} |" in markdown  # no UI: the name alone
    assert "| ❌ | `flow/b-x` | Scheduled | - |" in markdown
    assert "| ❌ | `flow/c-x` | not started | - | - |" in markdown
    assert "- `flow/a-x`: ended Failed: ValueError: bad" in markdown
    assert "- `flow/c-x`: running flow/c-x: 500 oops" in markdown
    assert "sample run of flow/b-x: Scheduled (-): did not end within 3 s" in samples_text(report)
    not_reset = DataCleanup("branch_x", "flow/drop-x", False, "run r ended Failed")
    assert not SampleReport([], not_reset).succeeded
    assert "Data environment `branch_x` NOT emptied (run r ended Failed)." in samples_markdown(
        SampleReport([], not_reset), UI
    )


def test_what_a_pull_requests_code_chose_is_inert_text_in_the_comment():
    """A summary or an error message comes from the pull request's code: it cannot add markup, links, mentions
    or table rows to the comment."""
    hostile = "x|y\n| ✅ | `flow/forged` | Completed |\n<img src=https://evil.example/p> @everyone [click](https://evil.example) **bold**"
    sample = SampleRun(
        "flow/a-x", "flow/a", "pool", run("FAILED", "Failed"), problem=hostile, summary={hostile: hostile},
    )  # fmt: skip
    markdown = samples_markdown(SampleReport([sample]), UI)
    assert "\n| ✅ | `flow/forged`" not in markdown
    for forbidden in ("<img", "@everyone", "[click]", "**bold**", "`flow/forged`"):
        assert forbidden not in markdown, forbidden
    assert "&lt;img src=https://evil.example/p&gt; &#64;everyone" in markdown  # still readable as text


def test_a_password_in_the_prefect_url_never_reaches_the_pull_request():
    sample = SampleRun("flow/a-x", "flow/a", "pool", run("COMPLETED", "Completed"), summary={"rows": "1"})
    markdown = samples_markdown(SampleReport([sample]), "https://ci:hunter2@prefect.example/")
    assert "hunter2" not in markdown
    assert f"(https://prefect.example/runs/flow-run/{sample.run.flow_run_id})" in markdown
