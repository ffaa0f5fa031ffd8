"""The flowops command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from flowops import __version__
from flowops.cli import main


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"flowops {__version__}"


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    assert "usage: flowops" in capsys.readouterr().out


def test_run_parameters_are_json_when_they_parse_and_strings_otherwise():
    from flowops.cli import parse_pairs

    pairs = ["count=2", 'sources=["a.csv"]', "block=null", "name=hello world", "t=2019-Oct.csv"]
    assert parse_pairs(["BASE_IMAGE=2", "X=[1]"], "--build-arg", json_values=False) == {"BASE_IMAGE": "2", "X": "[1]"}
    assert parse_pairs(pairs, "--param") == {
        "count": 2,
        "sources": ["a.csv"],
        "block": None,
        "name": "hello world",
        "t": "2019-Oct.csv",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "no-slash"],
        ["run", "hello/x", "--param", "novalue"],
        ["render", "--branch", ""],
        ["bootstrap", "--work-pool", "p"],
    ],
)
def test_usage_errors_exit_with_status_2(argv, capsys, sample_project):
    assert main(["-C", str(sample_project), *argv]) == 2
    assert capsys.readouterr().err.startswith(f"flowops {argv[0]}: ")


def test_a_bad_key_value_names_the_option_it_was_given_to(capsys, sample_project):
    argv = ["-C", str(sample_project), "bootstrap", "--work-pool", "p", "--type", "process", "--default", "novalue"]
    assert main(argv) == 2
    assert "flowops bootstrap: --default 'novalue': expected KEY=VALUE" in capsys.readouterr().err


def test_a_missing_required_option_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy"])
    assert exit_info.value.code == 2


def test_validate_exits_0_on_valid_files_and_1_with_one_line_per_problem(sample_project, capsys):
    from tests.helpers import edit_yaml

    assert main(["-C", str(sample_project), "validate"]) == 0
    assert capsys.readouterr().out.startswith("ok: deployments/main/prefect.yaml, deployments/staging/prefect.yaml")
    edit_yaml(sample_project / "deployments/main/prefect.yaml", lambda c: c["deployments"][0].pop("work_pool"))
    assert main(["-C", str(sample_project), "validate", "--json"]) == 1
    out, err = capsys.readouterr()
    import json

    report = json.loads(out)
    assert report["ok"] is False
    assert report["problems"] == [
        "deployments/main/prefect.yaml: production: work_pool.name: missing: workers pick up runs by work pool"
    ]
    assert err.strip() == f"error: {report['problems'][0]}"


def test_render_writes_the_file_deploy_would_hand_to_prefect(sample_project, tmp_path):
    import subprocess

    import yaml

    subprocess.run(["git", "init", "-q", str(sample_project)], check=True)
    subprocess.run(["git", "-C", str(sample_project), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(sample_project), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        check=True,
    )
    out = tmp_path / "rendered.yaml"
    assert (
        main(
            [
                "-C",
                str(sample_project),
                "render",
                "--branch",
                "feature/a",
                "--repository",
                "file:///o.git",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    rendered = yaml.safe_load(out.read_text())
    head = subprocess.run(
        ["git", "-C", str(sample_project), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert rendered["pull"][0]["prefect.deployments.steps.git_clone"]["commit_sha"] == head


@pytest.mark.parametrize(
    ("argv", "api_url"),
    [
        (["deploy", "--branch", "main", "--repository", "file:///nowhere.git"], None),
        (["deploy", "--branch", "main", "--repository", "file:///nowhere.git"], ""),
        (["plan", "--branch", "feature/x", "--repository", "file:///nowhere.git"], ""),
        (["teardown", "--branch", "feature/x"], ""),
        (["gc", "--repository", "file:///nowhere.git"], ""),
        (["bootstrap"], ""),
        (["run", "hello/production"], ""),
        (["github-event"], ""),
    ],
)
def test_without_an_api_url_commands_that_act_on_a_server_refuse_instead_of_using_a_throwaway_one(
    argv, api_url, sample_project, tmp_path
):
    """Prefect would start an ephemeral local server and the command would "succeed" against it."""
    import os
    import subprocess
    import sys

    from flowops.local import git

    git(sample_project, "init", "--quiet")
    git(sample_project, "add", "--all")
    git(sample_project, "commit", "--quiet", "--message", "initial")
    payload = tmp_path / "event.json"
    payload.write_text('{"ref": "refs/heads/main", "after": "' + "a" * 40 + '", "deleted": false}')
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "GITHUB_"))}
    environment.update(PREFECT_HOME=str(tmp_path / "prefect-home"), GITHUB_EVENT_NAME="push")
    environment.update(GITHUB_EVENT_PATH=str(payload), ECOMMERCE_DATABASE_URL="sqlite:///x.sqlite")
    if api_url is not None:
        environment["PREFECT_API_URL"] = api_url
    command = [sys.executable, "-m", "flowops", "-C", str(sample_project), *argv]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PREFECT_API_URL is not set" in result.stderr
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()  # no ephemeral server's database


@pytest.mark.parametrize(
    ("parameter", "problem"),
    [
        ('sources=["http://reader:canary-pw@mirror.example/2019-Oct.csv"]', "sources[0]: a URL with credentials in it"),
        ('sources=["https://ghp_canarytoken@mirror.example/x.csv"]', "sources[0]: a URL with credentials in it"),
        ('sources=["https://b.s3.example/x.csv?X-Amz-Signature=canary-sig"]', "sources[0]: a URL with credentials"),
        ("api_token=canary-value", "api_token: looks like a secret"),
    ],
)
def test_a_run_parameter_with_credentials_is_refused_before_anything_is_sent(parameter, problem, capsys):
    """Prefect stores a run's parameters in plain text and shows them in its UI: refused before the API is asked
    (no PREFECT_API_URL is needed to see it), and the value is not echoed."""
    assert main(["run", "ecommerce-events/production", "--param", parameter]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"flowops run: parameter {problem}")
    assert "nothing was started" in error
    assert "canary" not in error


def test_ordinary_run_parameters_pass_the_credentials_check():
    from flowops.checks.validate import run_parameter_problems

    parameters = {
        "sources": ["2019-Oct.csv", "https://mirror.example/2019-Nov.csv?v=2", "s3://bucket/2019-Dec.csv"],
        "database_secret_block": "ecommerce-database-url",
        "table": "ecommerce_events",
        "concurrency": 2,
    }
    assert run_parameter_problems(parameters) == []


def test_a_dispatched_bootstrap_takes_from_the_passed_secrets_only_what_flowops_yaml_declares(sample_project):
    import json

    from flowops.cli import _with_passed_secrets
    from flowops.config.project import load_project
    from flowops.errors import UsageError

    project = load_project(sample_project)  # its environments' blocks are saved from $ECOMMERCE_DATABASE_URL
    passed = {"ECOMMERCE_DATABASE_URL": "postgresql://u:p@db/x", "github_token": "ghs_x", "OTHER_SECRET": "s"}
    environ = _with_passed_secrets(project, {"PATH": "/bin", "FLOWOPS_SECRETS": json.dumps(passed)})
    assert environ == {"PATH": "/bin", "ECOMMERCE_DATABASE_URL": "postgresql://u:p@db/x"}
    mine = {"ECOMMERCE_DATABASE_URL": "sqlite:///mine.db", "FLOWOPS_SECRETS": json.dumps(passed)}
    assert _with_passed_secrets(project, mine) == {"ECOMMERCE_DATABASE_URL": "sqlite:///mine.db"}  # set wins
    with pytest.raises(UsageError, match="FLOWOPS_SECRETS is not JSON"):
        _with_passed_secrets(project, {"FLOWOPS_SECRETS": "{not json"})


def test_image_ensure_if_declared_succeeds_saying_so_where_flowops_yaml_declares_no_image(sample_project, capsys):
    """CI's image job runs in every repository: one without an image builds nothing and does not fail."""
    assert main(["-C", str(sample_project), "image", "ensure", "--if-declared"]) == 0
    assert capsys.readouterr().out == "flowops.yaml declares no image: nothing to build\n"
    assert main(["-C", str(sample_project), "image", "ensure"]) == 1
    assert "error: flowops.yaml declares no image" in capsys.readouterr().err


def test_flowops_timings_prints_where_the_seconds_went_only_when_asked(sample_project):
    """FLOWOPS_TIMINGS=1: one stderr line of phases, the process's start among them, and the total."""
    command = [sys.executable, "-m", "flowops", "-C", str(sample_project), "validate"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert quiet.returncode == 0, quiet.stderr
    assert "timings:" not in quiet.stderr
    timed = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "FLOWOPS_TIMINGS": "1"}
    )
    (line,) = [line for line in timed.stderr.splitlines() if line.startswith("timings: ")]
    start = re.search(r"start \(the interpreter, flowops' imports\) (\d+\.\d\d) s", line)
    total = re.search(r"total (\d+\.\d\d) s", line)
    assert start
    assert total
    assert 0 < float(start.group(1)) <= float(total.group(1))
