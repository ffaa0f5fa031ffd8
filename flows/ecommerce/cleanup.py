"""The cleanup of a branch environment: flowops' teardown and gc run it (flowops.yaml `branch_environments`)
before they delete a branch's deployments.

It drops exactly what a branch's loads made, and refuses anything else: it runs only as a branch deployment
($FLOWOPS_BRANCH_DEPLOYMENT), and drops a PostgreSQL schema only when the schema's comment marks it as this
project's branch environment (environments.py). A schema that does not exist is nothing to drop: running it
twice, even at once, is safe, so gc may retry one that failed.
"""

from __future__ import annotations

import os

from prefect import flow

from .environments import RESERVED_SCHEMAS, SchemaError, check_schema_name, marker_project, sqlite_schema_path
from .load import is_postgres, sqlite_path
from .redact import redact, secrets_of
from .settings import resolve_database_url


class RefusedCleanup(RuntimeError):
    pass


@flow(name="ecommerce-drop-branch-data", log_prints=True)
def drop_branch_data(database_schema: str, database_secret_block: str | None = None) -> str:
    """Drop the branch environment `database_schema` (its events, rejects and ledger) from the database the
    Secret block `database_secret_block` names."""
    schema = check_schema_name(database_schema)
    if schema in RESERVED_SCHEMAS:
        raise SchemaError(f"schema: {schema!r} is never a branch environment; nothing was dropped")
    if os.environ.get("FLOWOPS_BRANCH_DEPLOYMENT") != "true":
        raise RefusedCleanup("drop_branch_data runs only as a branch deployment's cleanup; nothing was dropped")
    url = resolve_database_url(database_secret_block)
    try:
        outcome = _drop_postgres_schema(url, schema) if is_postgres(url) else _drop_sqlite_schema(url, schema)
    except RefusedCleanup:
        raise
    except Exception as error:  # noqa: BLE001 - a driver's error may echo the URL: one redacted line
        raise RuntimeError(redact(f"{type(error).__name__}: {error}", secrets_of(url))) from None
    print(outcome)
    return outcome


def _drop_postgres_schema(url: str, schema: str) -> str:
    import psycopg

    project = os.environ.get("FLOWOPS_PROJECT", "")
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as connection:
        # One drop of a schema at a time (a retry by gc while a late run still goes, a run by hand): the second
        # waits here, until the first commits, and then finds the schema gone.
        connection.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"flowops drop {schema}"])
        row = connection.execute(
            "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = %s", [schema]
        ).fetchone()
        if row is None:
            return f"schema {schema}: not there, nothing to drop"
        owner = marker_project(row[0])
        if owner is None:
            raise RefusedCleanup(f"schema {schema} is not a branch environment (no flowops mark); nothing was dropped")
        if owner != project:
            raise RefusedCleanup(
                f"schema {schema} is a branch environment of project {owner!r}, not {project!r}; nothing was dropped"
            )
        tables = connection.execute("select count(*) from pg_tables where schemaname = %s", [schema]).fetchone()[0]
        connection.execute(f"drop schema {schema} cascade")
    return f"schema {schema}: dropped, with its {tables} table(s)"


def _drop_sqlite_schema(url: str, schema: str) -> str:
    path = sqlite_schema_path(sqlite_path(url), schema)
    if not path.exists():
        return f"schema {schema}: not there ({path.name}), nothing to drop"
    path.unlink()
    return f"schema {schema}: dropped ({path.name} removed)"
