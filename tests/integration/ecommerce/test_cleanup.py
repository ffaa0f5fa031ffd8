"""The cleanup flow's drop of a branch environment, against a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from flows.ecommerce.cleanup import RefusedCleanup, _drop_postgres_schema, drop_branch_data
from flows.ecommerce.environments import environment_marker, quote_literal

PROJECT = "acme/shop"


@pytest.fixture
def branch_environment(postgres_url, monkeypatch):
    """A schema marked as PROJECT's branch environment, with one table; dropped at the end whatever happened."""
    monkeypatch.setenv("FLOWOPS_PROJECT", PROJECT)
    monkeypatch.setenv("FLOWOPS_BRANCH", "feature/x")
    monkeypatch.setenv("FLOWOPS_BRANCH_DEPLOYMENT", "true")
    monkeypatch.setenv("ECOMMERCE_DATABASE_URL", postgres_url)
    schema = f"branch_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"create schema {schema}")
        connection.execute(f"comment on schema {schema} is {quote_literal(environment_marker())}")
        connection.execute(f"create table {schema}.ecommerce_events (id bigint)")
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"drop schema if exists {schema} cascade")


def schema_exists(url: str, schema: str) -> bool:
    with psycopg.connect(url) as connection:
        return connection.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone() is not None


def waiting_on_a_lock(url: str, application_name: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "select count(*) from pg_stat_activity where application_name = %s and wait_event_type = 'Lock'",
            [application_name],
        ).fetchone()[0]


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        time.sleep(0.05)


def test_two_drops_of_one_environment_at_once_both_succeed_and_the_schema_is_gone(postgres_url, branch_environment):
    """gc's retry can meet a late run of the same cleanup: both must end well, whichever drops the schema."""
    schema = branch_environment
    application_name = f"flowops_drop_{schema}"
    named_url = f"{postgres_url}?application_name={application_name}"
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def drop() -> None:
        try:
            outcomes.append(_drop_postgres_schema(named_url, schema))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    # A reader of the branch's table holds both drops at the point where each has decided the schema is there
    # (without one drop at a time, both go on to `drop schema`, and the second finds it gone).
    with psycopg.connect(postgres_url) as reader:
        reader.execute(f"select * from {schema}.ecommerce_events")
        drops = [threading.Thread(target=drop) for _ in range(2)]
        for thread in drops:
            thread.start()
        wait_for(lambda: waiting_on_a_lock(postgres_url, application_name) == 2, "both drops to wait on a lock")
        reader.rollback()
    for thread in drops:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(outcomes) == sorted(
        [f"schema {schema}: dropped, with its 1 table(s)", f"schema {schema}: not there, nothing to drop"]
    )
    assert not schema_exists(postgres_url, schema)


def test_a_schema_without_the_mark_or_of_another_project_is_refused_and_kept(postgres_url, branch_environment):
    schema = branch_environment
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"comment on schema {schema} is null")
    with pytest.raises(RefusedCleanup, match="no flowops mark"):
        drop_branch_data.fn(schema, None)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            f"comment on schema {schema} is {quote_literal(environment_marker().replace(PROJECT, 'x/y'))}"
        )
    with pytest.raises(RefusedCleanup, match="of project 'x/y'"):
        drop_branch_data.fn(schema, None)
    assert schema_exists(postgres_url, schema)
