"""The end-to-end stack: a real Prefect server backed by PostgreSQL, real git origins on disk, real workers.

One server serves the whole session; each test makes its own repository, origin, work pool and (for the
sample project) its own flow name, so tests never see each other's deployments.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.helpers import ROOT, SAMPLE_PROJECT, Repo, make_repo

pytestmark = pytest.mark.e2e


@pytest.fixture
def hello_repo(tmp_path, prefect_server) -> Repo:
    """The sample project with a flow name of its own (`hello-<hex>`), committed, with an origin."""
    repo = make_repo({".": SAMPLE_PROJECT}, tmp_path, prefect_server, {})
    flow_file = repo.path / "flows" / "hello.py"
    repo.flow_name = f"hello-{uuid.uuid4().hex[:8]}"
    flow_file.write_text(flow_file.read_text().replace('name="hello"', f'name="{repo.flow_name}"'))
    repo.commit("a flow name of its own", push=["main", "staging"])
    return repo


@pytest.fixture
def ecommerce_repo(tmp_path, prefect_server, postgres_url, sample_month) -> Repo:
    """This repository's flows and deployment files, committed, with an origin; runs load into PostgreSQL and
    read local files under the sample's folder and the test's own (the worker's $ECOMMERCE_DATA_DIR). Tests share
    the server: each has Secret blocks of its own (`ecommerce-staging-database-url-<hex>`: one test's bootstrap
    never points another's runs at its database); `own_project` gives one a project of its own too."""
    sources = {"flows": ROOT / "flows", "deployments": ROOT / "deployments"}
    data_dirs = os.pathsep.join([str(sample_month.parent), str(tmp_path)])
    suffix = uuid.uuid4().hex[:8]
    make = make_repo(
        sources, tmp_path, prefect_server, {"ECOMMERCE_DATABASE_URL": postgres_url, "ECOMMERCE_DATA_DIR": data_dirs}
    )
    # The workflows tests deploy this repository too, as flowops-dev/flowops: a project and flow names of the e2e
    # tests' own keep the two apart (a workflows test's gc or set-up never deletes an e2e test's deployments).
    for name, flow in (("flow.py", "ecommerce-events"), ("cleanup.py", "ecommerce-drop-branch-data")):
        path = make.path / "flows" / "ecommerce" / name
        path.write_text(path.read_text().replace(f'@flow(name="{flow}"', f'@flow(name="{flow}-e2e"'))
    for path in (make.path / "deployments").glob("**/*.yaml"):
        text = path.read_text().replace("project: flowops-dev/flowops\n", "project: flowops-dev/flowops-e2e\n")
        text = text.replace("project:flowops-dev/flowops", "project:flowops-dev/flowops-e2e")  # the automations' tag
        for environment in ("production", "staging"):
            block = f"ecommerce-{environment}-database-url"
            text = text.replace(block, f"{block}-{suffix}")
        path.write_text(text)
    make.commit("Secret blocks of this test's own", push=["main", "staging"])
    make.blocks = {env: f"ecommerce-{env}-database-url-{suffix}" for env in ("production", "staging")}
    make.project = "flowops-dev/flowops-e2e"
    make.flow_name = "ecommerce-events-e2e"
    return make


def own_project(repo: Repo) -> str:
    """Give `repo` a project of its own, committed on main: its gc and teardown never see another test's branch
    deployments. (Its production deployment would then clash with other tests' `ecommerce-events-e2e/production`,
    which belongs to another project: a test with a project of its own deploys branches only.)"""
    own = f"{repo.project}-{uuid.uuid4().hex[:8]}"
    for path in (repo.path / "deployments").glob("**/*.yaml"):
        text = path.read_text().replace(f"project: {repo.project}\n", f"project: {own}\n")
        path.write_text(text.replace(f"project:{repo.project}", f"project:{own}"))  # the automations' tag
    repo.project = own
    repo.commit("a project of this test's own", push=["main", "staging"])
    return repo.project
