"""The `ecommerce-events` flow: load the cosmetics shop's event files into a database.

Every row of every file is streamed, checked and loaded; bad rows go to `<table>_rejects`; each file
loads in its own transaction, and loading it again never duplicates a row (see load.py), so task
retries are safe. Files load concurrently, at most `concurrency` at a time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

from .environments import check_schema_name
from .load import (
    DEFAULT_BLOCK_SIZE,
    FileChangedError,
    FileSummary,
    TableDescription,
    describe_table,
    failed,
    first_records,
    load_file,
    prepare_tables,
)
from .parse import HeaderError
from .redact import redact, secrets_of, shown_url
from .report import SUMMARY_ARTIFACT_KEY, summary_markdown, summary_measures
from .schema import MONTH_FILES
from .settings import MissingDatabaseError, resolve_database_url
from .sources import (
    KAGGLE_SECRET_BLOCK,
    MissingCredentialsError,
    SourceError,
    SourceRefusedError,
    check_source,
    fetch,
)

# Bad input fails the same way every time: not retried.
_BAD_INPUT = (HeaderError, MissingCredentialsError, FileChangedError, SourceRefusedError, MissingDatabaseError)
# Our own errors are built from redacted text and say what to fix; anything else (a driver's, fsspec's) may
# echo a password or a whole malformed URL, so it leaves as a redacted one-line RuntimeError.
_OWN_ERRORS = (*_BAD_INPUT, SourceError)


def _kaggle_credentials() -> dict | None:
    try:
        value = Secret.load(KAGGLE_SECRET_BLOCK).get()
    except ValueError:
        return None
    return value if isinstance(value, dict) else {"token": value}


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """A wrong header, missing credentials or a changed file fails the same way every time: do not retry."""
    return not isinstance(state.data, _BAD_INPUT)


def _redacted_failure(error: Exception, url: str | None) -> Exception:
    if isinstance(error, _OWN_ERRORS):
        return error
    return RuntimeError(redact(f"{type(error).__name__}: {error}", secrets_of(url)))


def _load_run_name(parameters: dict) -> str:
    return f"load-{redact(parameters['source'])}"


@task(cache_policy=NO_CACHE, log_prints=True)
def prepare_database(secret_block: str | None, table: str, schema: str | None = None) -> None:
    url = resolve_database_url(secret_block)
    print(f"Loading into {shown_url(url)}, table {f'{schema}.{table}' if schema else table}")
    try:
        prepare_tables(url, table, schema)
    except Exception as error:  # noqa: BLE001 - re-raised, redacted
        raise _redacted_failure(error, url) from None


@task(
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_retry_unless_bad_input,
    cache_policy=NO_CACHE,
    log_prints=True,
    task_run_name=_load_run_name,
)
def load_source(
    source: str,
    secret_block: str | None,
    table: str,
    chunk_size: int,
    replace: bool = False,
    schema: str | None = None,
    sample_rows: int | None = None,
) -> FileSummary:
    url = None
    try:
        path = fetch(source, kaggle_credentials=_kaggle_credentials())
        url = resolve_database_url(secret_block)
        with tempfile.TemporaryDirectory(prefix="ecommerce-sample-") as folder:
            if sample_rows is not None:
                path = first_records(path, sample_rows, Path(folder))
            summary = load_file(url, table, path, source, chunk_size, replace=replace, schema=schema)
    except Exception as error:  # noqa: BLE001 - re-raised, redacted
        raise _redacted_failure(error, url) from None
    print(
        f"{summary.source}: {summary.rows_loaded:,} rows loaded, {summary.rows_rejected:,} rejected"
        + (" (already loaded, unchanged)" if summary.already_loaded else f" in {summary.seconds:.1f} s")
    )
    return summary


@task(cache_policy=NO_CACHE)
def describe_loaded_table(secret_block: str | None, table: str, schema: str | None = None) -> TableDescription:
    url = resolve_database_url(secret_block)
    try:
        return describe_table(url, table, schema)
    except Exception as error:  # noqa: BLE001 - re-raised, redacted
        raise _redacted_failure(error, url) from None


@flow(name="ecommerce-events", log_prints=True)
def ingest_events(
    sources: list[str] = MONTH_FILES,
    table: str = "ecommerce_events",
    database_secret_block: str | None = None,
    chunk_size: int = DEFAULT_BLOCK_SIZE,
    concurrency: int = 2,
    replace: bool = False,
    database_schema: str | None = None,
    sample_rows: int | None = None,
) -> list[FileSummary]:
    """Load `sources` into `table`.

    sources: bare names (`2019-Oct.csv`) are files of the Kaggle dataset; https and object-store URLs, and
        local paths under $ECOMMERCE_DATA_DIR, go through fsspec (sources.py says what else is refused).
    database_secret_block: the Secret block holding the database URL; a run fails if it is missing. None (the
        command line): ECOMMERCE_DATABASE_URL, else an embedded SQLite file (settings.py).
    chunk_size: bytes of CSV parsed and sent at a time (8 MiB is about 70,000 rows).
    concurrency: how many files load at once, each in its own transaction.
    replace: load a file whose name is loaded already with other content, replacing its rows (else refused).
    database_schema: the data environment to load into (a branch deployment's own; made on its first load); None: the
        database's default (`public`).
    sample_rows: load only the first this many rows of each file (a pull request's sample run); None: all.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if sample_rows is not None and sample_rows < 1:
        raise ValueError(f"sample_rows must be at least 1, got {sample_rows}")
    if database_schema is not None:
        check_schema_name(database_schema)
    for index, source in enumerate(sources):  # every source, before anything is read or written
        try:
            check_source(source)
        except SourceRefusedError as error:
            raise SourceRefusedError(f"sources[{index}]: {error}") from None
    prepare_database(database_secret_block, table, database_schema)
    futures = []
    running = []
    for source in sources:
        if len(running) >= concurrency:
            running.remove(next(as_completed(running)))
        future = load_source.submit(
            source, database_secret_block, table, chunk_size, replace, database_schema, sample_rows
        )
        futures.append(future)
        running.append(future)

    summaries = []
    for source, future in zip(sources, futures, strict=False):
        future.wait()
        if future.state.is_completed():
            summaries.append(future.result())
        else:
            summaries.append(failed(source, future.state.result(raise_on_failure=False)))
    create_markdown_artifact(summary_markdown(summaries), key="ecommerce-events-load", description="Rows per file")
    # a table that cannot be described (its database down) leaves the summary without it: the loads' verdict stands
    described = describe_loaded_table(database_secret_block, table, database_schema, return_state=True)
    description = described.result() if described.is_completed() else None
    create_table_artifact(
        summary_measures(summaries, description), key=SUMMARY_ARTIFACT_KEY, description="What this run loaded"
    )
    failures = [summary.source for summary in summaries if summary.error]
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(summaries)} files failed: {', '.join(failures)}")
    return summaries
