"""Fixtures shared by every test: a real PostgreSQL database, generated event files and one Prefect server."""

from __future__ import annotations

import os
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.helpers import SAMPLE_PROJECT

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    import psycopg

    try:
        psycopg.connect(TEST_DATABASE_URL, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL at TEST_DATABASE_URL={TEST_DATABASE_URL} is not reachable: {error}")
    return TEST_DATABASE_URL


@pytest.fixture
def table_name(postgres_url: str):
    """A fresh table name; its events, rejects and ledger tables are dropped afterwards."""
    import psycopg

    name = f"events_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"drop table if exists {name}, {name}_rejects, {name}_files")


@pytest.fixture(scope="session")
def sample_month(tmp_path_factory) -> Path:
    """A 50,000-row generated October, shared read-only by the tests."""
    from flows.ecommerce.generate import generate_month

    return generate_month("2019-10", 50_000, tmp_path_factory.mktemp("sample"), seed=7)


@pytest.fixture(scope="session")
def prefect_server(postgres_url, tmp_path_factory):
    """`prefect server start` with its database in PostgreSQL, as production runs it, UI included (the browser test
    looks at it); one for the whole session."""
    import re

    import psycopg

    from flowops.local import PrefectServer

    database = f"flowops_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"create database {database}")
    server_url = re.sub(r"/[^/]*$", f"/{database}", postgres_url).replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        with PrefectServer(tmp_path_factory.mktemp("prefect-server"), database_url=server_url, ui=True) as server:
            yield server
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f"drop database if exists {database} with (force)")


def _container_stack_problem() -> str | None:
    stack, docker_host = os.environ.get("FLOWOPS_CONTAINER_STACK"), os.environ.get("DOCKER_HOST", "")
    if not stack or not docker_host.startswith("unix://"):
        return 'no container stack: run `bash scripts/container-stack.sh up` and `eval "$(bash scripts/container-stack.sh env)"`'
    if not Path(docker_host.removeprefix("unix://")).is_socket():
        return f"no Docker API socket at {docker_host}: run `bash scripts/container-stack.sh up`"
    try:
        urllib.request.urlopen("http://127.0.0.1:5000/v2/", timeout=3).close()
    except OSError:
        return "no registry on 127.0.0.1:5000: run `bash scripts/container-stack.sh up`"
    return None


@pytest.fixture
def container_stack():
    """The local container stack (scripts/container-stack.sh): required where FLOWOPS_REQUIRE_CONTAINER_TESTS is set,
    else its tests are skipped, saying how to start it."""
    problem = _container_stack_problem()
    if problem and os.environ.get("FLOWOPS_REQUIRE_CONTAINER_TESTS"):
        pytest.fail(f"container tests are required here (FLOWOPS_REQUIRE_CONTAINER_TESTS) but: {problem}")
    if problem:
        pytest.skip(problem)


@pytest.fixture
def sample_project(tmp_path) -> Path:
    """A copy of tests/fixtures/sample_project (the `hello` flow and its deployment files) to change freely."""
    import shutil

    return Path(shutil.copytree(SAMPLE_PROJECT, tmp_path / "project"))


# `make test` runs the suite in two processes (pytest-xdist, --dist loadgroup): most tests wait on servers, not
# on the CPU. Tests that share a machine-wide resource run in one process, one after the other: the container
# stack's network (the stack tests reset its port forwarding; the container test runs flows in containers), and
# act's workflow runs (several build the flows' image).
SERIAL_GROUPS = {"stack": "containers", "container": "containers", "workflows": "act"}


@pytest.hookimpl(trylast=True)  # after tests/workflows/conftest.py has marked its tests
def pytest_collection_modifyitems(items):
    for item in items:
        for marker, group in SERIAL_GROUPS.items():
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.xdist_group(group))
                break
