"""Validation reports every problem of the deployment files, one line each naming file, deployment and field."""

from __future__ import annotations

import itertools
import typing

import pytest
import yaml

from flowops.checks.validate import validate_project
from flowops.config.project import ProjectError, load_project
from tests.helpers import edit_yaml

STAGING = "deployments/staging/prefect.yaml"
MAIN = "deployments/main/prefect.yaml"


def problems_after(project_root, change, file=STAGING, branch=None, monkeypatch=None):
    edit_yaml(project_root / file, change)
    return [str(problem) for problem in validate_project(load_project(project_root), branch)]


def deployment(content):
    return content["deployments"][0]


def clone(content):
    return content["pull"][0]["prefect.deployments.steps.git_clone"]


def test_the_committed_deployment_files_of_this_repository_are_valid():
    assert validate_project(load_project(".")) == []


def test_the_sample_project_is_valid(sample_project):
    assert validate_project(load_project(sample_project)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: deployment(c).update(entrypoint="flows/missing.py:hello"),
            "staging: entrypoint: flows/missing.py does not exist",
        ),
        (
            lambda c: deployment(c).update(entrypoint="flows/hello.py:nope"),
            "entrypoint: flows/hello.py defines no function 'nope'",
        ),
        (
            lambda c: deployment(c).update(entrypoint="flows/hello.py:not_a_flow"),
            "not_a_flow is not decorated with @flow",
        ),
        (
            lambda c: deployment(c).update(entrypoint="flows/hello.py"),
            "is not of the form path/to/file.py:flow_function",
        ),
        (
            lambda c: deployment(c)["parameters"].update(colour="red"),
            "staging: parameters.colour: not a parameter of flow 'hello'",
        ),
        (
            lambda c: deployment(c)["parameters"].update(count="two"),
            "staging: parameters.count: 'two' is not of type 'integer'",
        ),
        (lambda c: deployment(c)["schedules"][0].update(cron="61 * * * *"), "staging: schedules[0]: "),
        (lambda c: deployment(c)["schedules"][0].update(timezone="Mars/Olympus"), "staging: schedules[0]: "),
        (lambda c: deployment(c)["schedules"][0].update(active="yes"), "schedules[0].active: expected true or false"),
        (lambda c: deployment(c).pop("work_pool"), "staging: work_pool.name: missing"),
        (
            lambda c: deployment(c)["work_pool"].update(name="undeclared"),
            "'undeclared' is not declared in flowops.yaml",
        ),
        (
            lambda c: clone(c).update(commit_sha="abc"),
            "pull (top level).git_clone: needs exactly one of branch or commit_sha (both deploy fine, then every run crashes)",
        ),
        (lambda c: clone(c).pop("branch"), "pull (top level).git_clone: needs exactly one of branch or commit_sha"),
        (lambda c: c.pop("pull"), "no pull steps: workers would run code from the deploying machine's disk"),
        (
            lambda c: deployment(c).update(pull=[{"prefect.deployments.steps.run_shell_script": {"script": "true"}}]),
            "staging: pull: no prefect.deployments.steps.git_clone step",
        ),
        (
            lambda c: deployment(c).update(description="{{ $FLOWOPS_TEST_SURELY_UNSET }}"),
            "staging: description: $FLOWOPS_TEST_SURELY_UNSET is not set",
        ),
        (
            lambda c: deployment(c)["parameters"].update(name="{{ prefect.blocks.secret.db }}"),
            "staging: parameters.name: a block reference here is resolved at deploy time and stored in plain text",
        ),
        (
            lambda c: deployment(c)["work_pool"].update(
                job_variables={"env": {"DB": "{{ prefect.blocks.secret.db }}"}}
            ),
            "work_pool.job_variables.env.DB: a block reference here is resolved at deploy time",
        ),
        (
            lambda c: deployment(c)["work_pool"].update(
                job_variables={"env": {"DATABASE_URL": "postgresql://app:hunter2@db/app"}}
            ),
            "work_pool.job_variables.env.DATABASE_URL: postgresql://***@db/app: a URL with credentials in it",
        ),
        (
            lambda c: deployment(c)["parameters"].update(name="{{ $PREFECT_API_KEY }}"),
            "staging: parameters.name: $PREFECT_API_KEY looks like a secret: Prefect resolves",
        ),
        (
            lambda c: deployment(c).update(description="deployed with {{ $DEPLOY_TOKEN }}"),
            "staging: description: $DEPLOY_TOKEN looks like a secret",
        ),
        (
            lambda c: clone(c).update(access_token="{{ $GITHUB_TOKEN }}"),
            "pull (top level)[0].prefect.deployments.steps.git_clone.access_token: $GITHUB_TOKEN looks like a secret",
        ),
        (
            lambda c: clone(c).update(repository="https://ghp_" + "t" * 36 + "@github.com/acme/hello.git"),
            "git_clone.repository: https://***@github.com/acme/hello.git: a URL with credentials in it",
        ),
        (
            lambda c: deployment(c)["work_pool"].update(job_variables={"env": {"API_TOKEN": "s3cr3t-value-123"}}),
            "work_pool.job_variables.env.API_TOKEN: looks like a secret in plain text",
        ),
        (
            lambda c: deployment(c)["parameters"].update(name="ghp_" + "a" * 36),
            "staging: parameters.name: looks like a secret in plain text",
        ),
        (
            lambda c: deployment(c)["work_pool"].update(
                job_variables={"registry_credentials": "{{ prefect.blocks.docker-registry-credentials.acme }}"}
            ),
            "work_pool.job_variables.registry_credentials: `prefect deploy` would store the registry's password",
        ),
        (
            lambda c: deployment(c)["work_pool"].update(
                job_variables={"registry_credentials": {"username": "acme", "password": "hunter2-hunter2"}}
            ),
            "work_pool.job_variables.registry_credentials: `prefect deploy` would store the registry's password",
        ),
        (
            lambda c: deployment(c)["parameters"].update(name={"$ref": {"block_document_id": "0f0e"}}),
            "parameters.name.$ref.block_document_id: a block reference here is resolved at deploy time",
        ),
        (lambda c: deployment(c).update(tags=["branch:main"]), "staging: tags: 'branch:main' is set by flowops"),
        (
            lambda c: deployment(c).update(schedulez=[]),
            "staging: schedulez: unknown field (Prefect ignores it silently)",
        ),
        (lambda c: c.update(deploymentz=[]), "deployments/staging/prefect.yaml: deploymentz: unknown top-level field"),
        (
            lambda c: c["deployments"].append(dict(deployment(c))),
            "staging: name: used by more than one deployment in this file",
        ),
        (lambda c: c.update(deployments=[]), "deployments: expected a non-empty list"),
        (lambda c: deployment(c).pop("name"), "deployments[0]: name: missing"),
    ],
)
def test_each_problem_is_reported_on_one_line_naming_file_deployment_and_field(sample_project, change, expected):
    problems = problems_after(sample_project, change)
    assert any(problem.startswith(STAGING) and expected in problem for problem in problems), problems
    assert all("\n" not in problem for problem in problems)


def test_every_problem_is_reported_not_only_the_first(sample_project):
    def break_three_things(content):
        deployment(content)["parameters"]["count"] = "two"
        deployment(content)["schedules"][0]["cron"] = "not cron"
        clone(content)["commit_sha"] = "abc"

    assert len(problems_after(sample_project, break_three_things)) == 3


def test_a_set_variable_and_a_secret_blocks_name_are_fine(sample_project, monkeypatch):
    monkeypatch.setenv("FLOWOPS_TEST_DESCRIPTION", "set")

    def change(content):
        deployment(content)["description"] = "{{ $FLOWOPS_TEST_DESCRIPTION }}"
        deployment(content)["work_pool"]["job_variables"] = {"env": {"DATABASE_SECRET_BLOCK": "hello-database-url"}}

    assert problems_after(sample_project, change) == []


def test_the_same_flow_and_deployment_name_in_two_files_is_reported(sample_project):
    problems = problems_after(sample_project, lambda c: deployment(c).update(name="production"))
    assert f"{STAGING}: production: name: hello/production is also deployed by {MAIN}" in problems


def test_validating_one_branch_checks_only_the_file_it_deploys(sample_project):
    edit_yaml(sample_project / MAIN, lambda c: deployment(c)["parameters"].update(count="two"))
    assert validate_project(load_project(sample_project), "feature/x") == []
    assert len(validate_project(load_project(sample_project), "main")) == 1


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "project: acme/hello\nenvironments: {}\nbranch_deployments_from: staging\n",
            "branch_deployments_from: 'staging' is not an environment",
        ),
        (
            "project: acme/hello\nenvironments: {a: {branch: main, file: x}}\nbranch_deployments_from: a\nextra: 1\n",
            "extra: Extra inputs are not permitted",
        ),
        ("environments: [", "not valid YAML"),
        ("environments: {a: {branch: main, file: x}}\nbranch_deployments_from: a\n", "project: Field required"),
        (
            "project: 'acme/hello world'\nenvironments: {a: {branch: main, file: x}}\nbranch_deployments_from: a\n",
            "project: String should match pattern",
        ),
        (
            (
                "project: acme/hello\nenvironments: {a: {branch: main, file: x}}\nbranch_deployments_from: a\n"
                "image: {name: ghcr.io/acme/flows, registry_credentials: Acme Registry}\n"
            ),
            "image.registry_credentials: String should match pattern",
        ),
        (
            (
                "project: acme/hello\nbranch_deployments_from: a\n"
                "environments: {a: {branch: main, file: x, secrets: {leak: PREFECT_API_KEY}}}\n"
            ),
            "environments.a.secrets.leak: PREFECT_API_KEY is Prefect's or GitHub Actions' own",
        ),
        (
            (
                "project: acme/hello\nenvironments: {a: {branch: main, file: x}}\nbranch_deployments_from: a\n"
                "secrets: {db: DATABASE_URL}\n"
            ),
            "top level.: secrets: declare each Secret block under the environment it belongs to",
        ),
        (
            (
                "project: acme/hello\nbranch_deployments_from: a\nenvironments:\n"
                "  a: {branch: main, file: x, secrets: {db: A_URL}}\n  b: {branch: b, file: y, secrets: {db: B_URL}}\n"
            ),
            "environments: Secret block 'db' is declared by 'a' and 'b': each environment needs blocks of its own",
        ),
        (
            (
                "project: acme/hello\nenvironments: {a: {branch: main, file: x}}\nbranch_deployments_from: a\n"
                "branch_environments: {prefix: Public-}\n"
            ),
            "branch_environments.prefix: String should match pattern",
        ),
    ],
)
def test_a_broken_flowops_yaml_is_one_clear_error(sample_project, config, expected):
    (sample_project / "deployments" / "flowops.yaml").write_text(config)
    with pytest.raises(ProjectError, match=expected) as error:
        load_project(sample_project)
    assert str(error.value).startswith("deployments/flowops.yaml: ")


def test_a_prefect_yaml_no_environment_names_is_reported(sample_project):
    stray = sample_project / "deployments" / "old" / "prefect.yaml"
    stray.parent.mkdir()
    stray.write_text((sample_project / STAGING).read_text())
    problems = [str(problem) for problem in validate_project(load_project(sample_project))]
    assert problems == [
        "deployments/old/prefect.yaml: no environment in flowops.yaml names this file: no branch deploys it"
    ]


def test_the_fields_validate_knows_are_prefects_own_so_an_upgrade_that_changes_them_fails_here():
    """prefect.yaml's schema as `prefect deploy` reads it (a private module: this test is the drift alarm)."""
    from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel, RawScheduleConfig, WorkPoolConfig

    from flowops.checks.validate import DEPLOYMENT_FIELDS, SCHEDULE_FIELDS, TOP_LEVEL_FIELDS, WORK_POOL_FIELDS

    def keys(model, by_name_too=False):
        return {field.alias or name for name, field in model.model_fields.items()} | (
            set(model.model_fields) if by_name_too else set()
        )

    assert keys(DeploymentConfig) == DEPLOYMENT_FIELDS
    assert keys(WorkPoolConfig) == WORK_POOL_FIELDS
    assert keys(RawScheduleConfig) == SCHEDULE_FIELDS
    assert keys(PrefectYamlModel, by_name_too=True) == TOP_LEVEL_FIELDS  # prefect-version or prefect_version


RESCHEDULE = {
    "name": "reschedule",
    "trigger": {"type": "event", "posture": "Reactive", "expect": ["prefect.flow-run.Crashed"]},
    "actions": [{"type": "do-nothing"}],
}


@pytest.mark.parametrize(
    ("automations", "expected"),
    [
        ([RESCHEDULE], []),
        ("not a list", ["deployments/automations.yaml: automations: expected a list of automations"]),
        ([{"trigger": RESCHEDULE["trigger"]}], ["deployments/automations.yaml: automations[0]: name: missing"]),
        ([RESCHEDULE, RESCHEDULE], ["deployments/automations.yaml: reschedule: name: used by more than one"]),
        ([{**RESCHEDULE, "schedule": "daily"}], ["deployments/automations.yaml: reschedule: schedule: unknown field"]),
        ([{**RESCHEDULE, "tags": "ops"}], ["deployments/automations.yaml: reschedule: tags: expected a list of tags"]),
        (
            [{**RESCHEDULE, "tags": ["project:someone/else"]}],
            ["deployments/automations.yaml: reschedule: tags: 'project:someone/else': flowops sets this tag itself"],
        ),
        (
            [
                {
                    **RESCHEDULE,
                    "trigger": {
                        **RESCHEDULE["trigger"],
                        "match_related": [
                            {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.project:acme/hello"},
                            {"prefect.resource.role": "tag", "prefect.resource.id": ["prefect.tag.project:them/else"]},
                        ],
                    },
                }
            ],
            ["deployments/automations.yaml: reschedule: trigger.match_related[1].prefect.resource.id[0]: names"],
        ),
        (
            [{**RESCHEDULE, "actions": [{"type": "launch-rockets"}]}],
            [
                "deployments/automations.yaml: reschedule: actions[0].type: 'launch-rockets' is not an action type Prefect"
            ],
        ),
    ],
)
def test_the_automations_file_is_checked_with_prefects_model(sample_project, automations, expected):
    (sample_project / "deployments" / "automations.yaml").write_text(yaml.safe_dump({"automations": automations}))
    config = sample_project / "deployments" / "flowops.yaml"
    config.write_text(config.read_text() + "automations: automations.yaml\n")
    problems = [str(problem) for problem in validate_project(load_project(sample_project))]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem


def test_a_missing_automations_file_is_one_problem(sample_project):
    config = sample_project / "deployments" / "flowops.yaml"
    config.write_text(config.read_text() + "automations: automations.yaml\n")
    assert [str(p) for p in validate_project(load_project(sample_project))] == [
        "deployments/automations.yaml: not found (flowops.yaml's `automations` names it)"
    ]


def test_an_automation_reads_the_same_whatever_the_order_of_its_trigger_sets():
    """Prefect holds `expect`, `after` and `for_each` as sets, so the server hands them back in any order."""
    from flowops.render.automations import canonical_spec

    events = [f"prefect.flow-run.{state}" for state in ("Running", "Completed", "Failed", "Cancelled", "Crashed")]
    trigger = {"type": "event", "posture": "Proactive", "after": events[:2], "expect": events, "within": 60}
    specs = [
        canonical_spec(
            {
                **RESCHEDULE,
                "trigger": {**trigger, "expect": list(order), "after": [e for e in order if e in events[:2]]},
            }
        )
        for order in itertools.permutations(events)
    ]
    assert all(spec == specs[0] for spec in specs)
    assert specs[0]["trigger"]["expect"] == sorted(events)


def test_every_set_field_of_prefects_triggers_is_put_in_order():
    """The drift alarm for a Prefect upgrade that makes another trigger field a set."""
    from prefect.events.schemas import automations

    from flowops.render.automations import SET_TRIGGER_FIELDS

    union = typing.get_args(automations.TriggerTypes)[0]
    triggers = [typing.get_args(tagged)[0] for tagged in typing.get_args(union)]
    assert automations.MetricTrigger in triggers
    set_fields = {
        name
        for model in triggers
        for name, field in model.model_fields.items()
        if typing.get_origin(field.annotation) is set
    }
    assert set_fields == set(SET_TRIGGER_FIELDS)


def test_an_entrypoint_outside_the_repository_is_refused_and_never_imported(sample_project, tmp_path):
    outside = tmp_path / "outside.py"
    marker = tmp_path / "imported"
    outside.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nfrom prefect import flow\n\n\n"
        "@flow\ndef evil():\n    pass\n"
    )
    (sample_project / "flows" / "link.py").symlink_to(outside)
    for entrypoint in ("../outside.py:evil", "flows/link.py:evil"):
        edit_yaml(
            sample_project / "deployments" / "staging" / "prefect.yaml",
            lambda c, e=entrypoint: c["deployments"][0].update(entrypoint=e),
        )
        problems = [str(p) for p in validate_project(load_project(sample_project), "staging")]
        relative = entrypoint.split(":")[0]
        assert (
            f"deployments/staging/prefect.yaml: staging: entrypoint: {relative} is outside the repository"
            " (nothing outside it is read or imported)"
        ) in problems
    assert not marker.exists()


@pytest.mark.parametrize("file", ["../../elsewhere.yaml", "/etc/passwd"])
def test_an_environment_file_outside_the_repository_is_one_clear_error(sample_project, file):
    edit_yaml(sample_project / "deployments" / "flowops.yaml", lambda c: c["environments"]["staging"].update(file=file))
    with pytest.raises(ProjectError, match=r"outside the repository .*: a deployment file must be one of its own"):
        load_project(sample_project).files()


def test_a_deployment_name_prefect_refuses_is_reported(sample_project):
    edit_yaml(
        sample_project / "deployments" / "staging" / "prefect.yaml",
        lambda c: c["deployments"][0].update(name="a/b"),
    )
    problems = [str(p) for p in validate_project(load_project(sample_project))]
    assert (
        "deployments/staging/prefect.yaml: a/b: name: '/' is not allowed in a deployment's name (Prefect refuses it)"
        in problems
    )


def test_an_alias_bomb_is_refused_before_anything_expands_it(sample_project):
    laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        laughs.append(f"{level}: &{level} [{', '.join(['*' + previous] * 9)}]")
    path = sample_project / "deployments" / "staging" / "prefect.yaml"
    path.write_text(path.read_text() + "\n".join(["x-bomb:", *(f"  {line}" for line in laughs)]) + "\n")
    with pytest.raises(ProjectError, match=r"prefect.yaml: its aliases expand to more than 200,000 values"):
        load_project(sample_project).files()


def test_a_flow_decorated_as_prefect_flow_is_named_as_prefect_deploy_names_it(sample_project):
    from flowops.config.entrypoints import inspect_entrypoint

    (sample_project / "flows" / "spelt.py").write_text(
        'import prefect\n\n\n@prefect.flow(name="spelt-out")\ndef spelt(count: int = 1):\n    return count\n'
    )
    assert inspect_entrypoint(sample_project, "flows/spelt.py:spelt").flow_name == "spelt-out"
