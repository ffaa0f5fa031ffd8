"""The flowops.yaml reference and JSON Schema are generated from the model that reads the file: the committed
copies are what the model says now, every key is described, and the schema accepts what flowops accepts."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from flowops.config.project import FlowopsConfig, ProjectError, load_project
from flowops.reference import EXAMPLE, REFERENCE_DOC, SCHEMA_FILE, json_schema, json_schema_text, reference_markdown
from tests.helpers import ROOT


def test_the_committed_reference_and_schema_are_what_the_model_says_now():
    regenerate = "regenerate: uv run flowops schema --markdown > docs/reference/flowops-yaml.md;"
    regenerate += " uv run flowops schema > src/flowops/flowops.schema.json"
    assert (ROOT / REFERENCE_DOC).read_text() == reference_markdown(), regenerate
    assert SCHEMA_FILE.read_text() == json_schema_text(), regenerate


def test_every_key_is_in_the_reference_with_a_description():
    markdown = reference_markdown()

    def keys(model: type, prefix: str = "") -> list[str]:
        found = []
        for name, field in model.model_fields.items():
            assert field.description, f"{prefix}{name} has no description"
            found.append(f"{prefix}{name}")
        return found

    from flowops.config.project import BranchEnvironments, Cleanup, Environment, Image, SampleRuns, WorkPool

    expected = keys(FlowopsConfig) + keys(Environment, "environments.<name>.") + keys(WorkPool, "work_pools.<name>.")
    expected += keys(Image, "image.") + keys(BranchEnvironments, "branch_environments.")
    expected += keys(Cleanup, "branch_environments.cleanup.") + keys(SampleRuns, "branch_environments.sample_runs.")
    for key in expected:
        assert f"| `{key}` |" in markdown, key


def test_the_schema_accepts_the_example_and_this_repositorys_file_and_refuses_what_flowops_refuses(tmp_path):
    validator = jsonschema.Draft202012Validator(json_schema())
    example = yaml.safe_load(EXAMPLE)
    FlowopsConfig.model_validate(example)  # flowops reads the example
    assert list(validator.iter_errors(example)) == []
    assert list(validator.iter_errors(yaml.safe_load((ROOT / "deployments" / "flowops.yaml").read_text()))) == []
    for broken in ({**example, "projekt": "typo"}, {**example, "work_pools": {"p": {}}}, {"project": "acme/x"}):
        assert list(validator.iter_errors(broken)), broken


def test_a_flowops_yaml_error_points_at_the_reference(sample_project):
    config = Path(sample_project) / "deployments" / "flowops.yaml"
    config.write_text(config.read_text() + "projekt: typo\n")
    with pytest.raises(ProjectError) as error:
        load_project(sample_project)
    assert str(error.value) == (
        "deployments/flowops.yaml: projekt: Extra inputs are not permitted (every key: `flowops schema --markdown`)"
    )
