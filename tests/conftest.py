"""Fixtures shared by every test: a real PostgreSQL database and generated event files."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

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


SAMPLE_PROJECT = Path(__file__).parent / "fixtures" / "sample_project"


@pytest.fixture
def sample_project(tmp_path) -> Path:
    """A copy of tests/fixtures/sample_project (the `hello` flow and its deployment files) to change freely."""
    import shutil

    return Path(shutil.copytree(SAMPLE_PROJECT, tmp_path / "project"))


def edit_yaml(path: Path, change) -> None:
    """Load a YAML file, let `change(content)` modify it in place, write it back."""
    import yaml

    content = yaml.safe_load(path.read_text())
    change(content)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
