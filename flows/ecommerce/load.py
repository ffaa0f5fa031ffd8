"""Load event files into PostgreSQL or SQLite: all of a file or none of it, never twice.

Each file loads in one transaction of its own. A ledger table `<table>_files` records every loaded
file by name (`2019-Oct.csv` is the same month whether it came from Kaggle, a mirror or a local
folder) with its sha256; its rows carry the ledger id. Loading a file again with the same checksum
changes nothing. Another file under a loaded name is refused (FileChangedError), unless the load says
`replace`: then the earlier rows and rejects are replaced. Rows and ledger commit together, so a load
that dies half-way leaves none of that file's rows visible.

On PostgreSQL the rows stream through COPY while a second thread reads and checks the next block
(pyarrow releases the GIL), so the client's work hides behind the server's.

A load may name a `schema`: a data environment of its own (a branch deployment's, see environments.py). The
tables go there instead: a PostgreSQL schema, made on the first load and marked as a branch environment's; in
SQLite a database file beside the main one (`<main>.<schema>.sqlite`), attached under the schema's name.

This module needs no Prefect: the command line calls it directly, and the flow calls it in tasks.
"""

from __future__ import annotations

import hashlib
import io
import queue
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, ClassVar, Protocol
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.csv as pv

from . import pgbinary
from .environments import check_schema_name, environment_marker, quote_literal, sqlite_schema_path
from .parse import ParsedBlock, Reject, parse_block, read_blocks, sha256_of
from .redact import redact
from .schema import (
    BIGINT,
    FILE_ID,
    LOADED,
    PRICE,
    PRICE_MAX_FRACTION_DIGITS,
    PRICE_PRECISION,
    TABLE_COLUMNS,
    TEXT,
    TIMESTAMP,
    table_columns_sql,
)

DEFAULT_BLOCK_SIZE = 8 << 20
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,40}")
_CSV_OUT = pv.WriteOptions(include_header=False)
Progress = Callable[[int], None]  # called with the number of bytes just read


@dataclass
class FileSummary:
    source: str
    rows_loaded: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    already_loaded: bool = False
    error: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows_loaded / self.seconds if self.seconds > 0 else 0.0


class FileChangedError(ValueError):
    """Another file is already loaded under this name: replacing its rows takes an explicit `replace`."""


def failed(source: str, error: BaseException | str) -> FileSummary:
    """The summary of a file that did not load; the error message always names the source."""
    source = redact(source)
    message = redact(str(error) or type(error).__name__)
    return FileSummary(_name_or_source(source), error=message if source in message else f"{source}: {message}")


def _name_or_source(source: str) -> str:
    try:
        return file_key(source)
    except ValueError:
        return source


def file_key(source: str) -> str:
    """The name a file is known by in the ledger: the last part of its path or URL."""
    name = PurePosixPath(urlsplit(source).path if "://" in source else source.replace("\\", "/")).name
    if not name:
        raise ValueError(f"{source}: cannot tell the file's name")
    return name


def load_file(
    database_url: str,
    table: str,
    path: Path,
    source: str,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: Progress | None = None,
    replace: bool = False,
    schema: str | None = None,
) -> FileSummary:
    """Load the local file `path` (fetched from `source`) into `table`; see the module docstring."""
    source = redact(source)  # as the ledger, the rejects table and every message name it
    key = file_key(source)
    started = time.perf_counter()
    with _target(database_url, table, schema).transaction(key) as target:
        previous = target.ledger_entry(key)
        digest = None
        if previous:
            with open(path, "rb") as stream:
                digest = sha256_of(stream)
            if digest == previous.sha256:
                return FileSummary(key, previous.rows_loaded, previous.rows_rejected, already_loaded=True)
            if not replace:
                raise FileChangedError(
                    f"{source}: a different {key} is already loaded ({previous.rows_loaded:,} rows, sha256"
                    f" {(previous.sha256 or '')[:12]}, this one {digest[:12]}); nothing was changed: load it with"
                    " replace=True (--replace) to replace those rows"
                )
            target.forget_file(previous.id)
        file_id = previous.id if previous else target.new_ledger_entry(key)
        with open(path, "rb") as stream:
            reader = _HashingReader(stream, progress)
            blocks = (parse_block(*block) for block in read_blocks(reader, source, block_size))
            loaded, rejected = target.write_rows(file_id, source, blocks)
        size = path.stat().st_size
        target.finish_ledger_entry(file_id, source, digest or reader.hexdigest(), size, loaded, rejected)
    return FileSummary(key, loaded, rejected, seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class TableDescription:
    """What a load left in a table, for the run's summary: rows per event type, and each column's type."""

    rows_per_event_type: dict[str, int]
    column_types: dict[str, str]


def describe_table(database_url: str, table: str, schema: str | None = None) -> TableDescription:
    """The rows per `event_type` and the column types of `table` (in `schema`) as the database reports them."""
    with _target(database_url, table, schema).transaction(f"describe:{table}") as target:
        return target.describe()


def first_records(path: Path, rows: int, folder: Path) -> Path:
    """A copy of `path` in `folder` holding its header and first `rows` records (a quoted newline stays inside its
    record): the small sample a pull request's run loads instead of the whole file."""
    if rows < 1:
        raise ValueError(f"sample_rows must be at least 1, got {rows}")
    sample = folder / f"{path.stem}.first-{rows}{path.suffix}"
    with open(path, "rb") as source, open(sample, "wb") as out:
        out.write(source.readline())  # the header
        quotes = written = 0
        for line in source:
            out.write(line)
            quotes += line.count(b'"')
            if quotes % 2 == 0:  # the record ends here, outside quotes
                written += 1
                if written == rows:
                    break
    return sample


def prepare_tables(database_url: str, table: str, schema: str | None = None) -> None:
    """Create the events, rejects and ledger tables (in `schema`, made if need be) if they do not exist."""
    with _target(database_url, table, schema).transaction(f"prepare:{table}") as target:
        target.create_tables()


def sqlite_path(database_url: str) -> Path:
    if not database_url.startswith("sqlite:///"):
        scheme = database_url.split(":", 1)[0]
        raise ValueError(f"database URL must start with postgresql:// or sqlite:///, got {scheme}://...")
    return Path(database_url.removeprefix("sqlite:///"))


def is_postgres(database_url: str) -> bool:
    return database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def _target(database_url: str, table: str, schema: str | None = None) -> Target:
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"table: {table!r} must be lower-case letters, digits and _, at most 41 characters")
    if schema is not None:
        check_schema_name(schema)
    if is_postgres(database_url):
        return PostgresTarget(database_url.replace("postgresql+psycopg://", "postgresql://", 1), table, schema)
    return SqliteTarget(sqlite_path(database_url), table, schema)


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    sha256: str | None
    rows_loaded: int
    rows_rejected: int


class _HashingReader:
    """Hashes and reports what is read, so a first load reads the file only once."""

    def __init__(self, stream: BinaryIO, progress: Progress | None) -> None:
        self.stream = stream
        self.progress = progress
        self.digest = hashlib.sha256()

    def read(self, size: int) -> bytes:
        chunk = self.stream.read(size)
        self.digest.update(chunk)
        if self.progress and chunk:
            self.progress(len(chunk))
        return chunk

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def _in_background(blocks: Iterator[ParsedBlock], make: Callable[[ParsedBlock], bytes], depth: int = 3):
    """Yield (make(block), block) with `make` run in a thread up to `depth` blocks ahead."""
    results: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for block in blocks:
                if stop.is_set():
                    return
                results.put((make(block), block))
            results.put((done, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            results.put((error, None))

    worker = threading.Thread(target=produce, name="parse-blocks", daemon=True)
    worker.start()
    try:
        while True:
            item, block = results.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item, block
    finally:
        stop.set()
        while worker.is_alive():  # drain, so a producer blocked on a full queue can see `stop`
            try:
                results.get_nowait()
            except queue.Empty:
                worker.join(0.05)


class Target(Protocol):
    """Where files load (PostgreSQL or SQLite): one file per transaction, recorded in the ledger table."""

    def transaction(self, lock_name: str) -> AbstractContextManager[Target]: ...

    def create_tables(self) -> None: ...

    def describe(self) -> TableDescription: ...

    def ledger_entry(self, name: str) -> LedgerEntry | None: ...

    def new_ledger_entry(self, name: str) -> int: ...

    def forget_file(self, file_id: int) -> None: ...

    def write_rows(self, file_id: int, source: str, blocks: Iterator[ParsedBlock]) -> tuple[int, int]: ...

    def finish_ledger_entry(
        self, file_id: int, source: str, sha256: str, size: int, loaded: int, rejected: int
    ) -> None: ...


class _SqlTables:
    """The tables and the ledger SQL both targets share; each says its parameter marker and its types."""

    PARAMETER: ClassVar[str] = "?"
    TYPES: ClassVar[dict[str, str]] = {}  # schema kind -> SQL type
    ID_TYPE: ClassVar[str] = ""
    NOW: ClassVar[str] = ""

    def __init__(self, table: str, schema: str | None = None) -> None:
        self.table = f"{schema}.{table}" if schema else table  # both databases take schema.table
        self.schema = schema
        self.conn: Any = None  # the open transaction's connection

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.PARAMETER)

    def create_tables(self) -> None:
        time_type = self.TYPES[TIMESTAMP]
        for statement in (
            f"create table if not exists {self.table} ({table_columns_sql(self.TYPES)})",
            f"""create table if not exists {self.table}_rejects (
                file_id bigint not null,
                source text not null,
                line_number bigint not null,
                reason text not null,
                raw_line text not null
            )""",
            f"""create table if not exists {self.table}_files (
                id {self.ID_TYPE},
                name text not null unique,
                source text,
                sha256 text,
                size_bytes bigint,
                rows_loaded bigint,
                rows_rejected bigint,
                loaded_at {time_type}
            )""",
        ):
            self.conn.execute(statement)

    def rows_per_event_type(self) -> dict[str, int]:
        rows = self.conn.execute(f"select event_type, count(*) from {self.table} group by event_type").fetchall()
        return {str(event_type): int(count) for event_type, count in sorted(rows)}

    def ledger_entry(self, name: str) -> LedgerEntry | None:
        row = self.conn.execute(
            self._sql(f"select id, sha256, rows_loaded, rows_rejected from {self.table}_files where name = ?"), [name]
        ).fetchone()
        return LedgerEntry(*row) if row else None

    def forget_file(self, file_id: int) -> None:
        self.conn.execute(self._sql(f"delete from {self.table} where file_id = ?"), [file_id])
        self.conn.execute(self._sql(f"delete from {self.table}_rejects where file_id = ?"), [file_id])

    def finish_ledger_entry(
        self, file_id: int, source: str, sha256: str, size: int, loaded: int, rejected: int
    ) -> None:
        self.conn.execute(
            self._sql(
                f"update {self.table}_files set source = ?, sha256 = ?, size_bytes = ?, rows_loaded = ?,"
                f" rows_rejected = ?, loaded_at = {self.NOW} where id = ?"
            ),
            [source, sha256, size, loaded, rejected, file_id],
        )


class PostgresTarget(_SqlTables):
    """Rows go through COPY while a background thread parses the next blocks."""

    PARAMETER = "%s"
    TYPES: ClassVar[dict[str, str]] = {
        TIMESTAMP: "timestamptz",
        TEXT: "text",
        BIGINT: "bigint",
        PRICE: f"numeric({PRICE_PRECISION}, {PRICE_MAX_FRACTION_DIGITS})",
    }
    ID_TYPE = "bigint generated by default as identity primary key"
    NOW = "now()"

    def __init__(self, database_url: str, table: str, schema: str | None = None) -> None:
        super().__init__(table, schema)
        self.url = database_url

    def create_tables(self) -> None:
        if (
            self.schema
            and self.conn.execute("select 1 from pg_namespace where nspname = %s", [self.schema]).fetchone() is None
        ):
            self.conn.execute(f"create schema {self.schema}")
            # what a branch environment's cleanup checks before it drops anything (environments.py)
            self.conn.execute(f"comment on schema {self.schema} is {quote_literal(environment_marker())}")
        super().create_tables()

    @contextmanager
    def transaction(self, lock_name: str) -> Iterator[PostgresTarget]:
        import psycopg

        with psycopg.connect(self.url, application_name="flowops-ecommerce") as self.conn:
            # Two loads of the same file (or two set-ups) wait for each other instead of racing.
            self.conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"{self.table}:{lock_name}"])
            yield self

    def describe(self) -> TableDescription:
        columns = self.conn.execute(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = coalesce(%s, current_schema()) and table_name = %s order by ordinal_position",
            [self.schema, self.table.rpartition(".")[2]],
        ).fetchall()
        return TableDescription(self.rows_per_event_type(), {str(name): str(kind) for name, kind in columns})

    def new_ledger_entry(self, name: str) -> int:
        insert = f"insert into {self.table}_files (name) values (%s) returning id"
        return int(self.conn.execute(insert, [name]).fetchone()[0])

    def write_rows(self, file_id: int, source: str, blocks: Iterator[ParsedBlock]) -> tuple[int, int]:
        loaded = 0
        with tempfile.TemporaryFile() as spool, self.conn.cursor() as cursor:
            rejects = _RejectSpool(spool)
            with cursor.copy(f"copy {self.table} ({', '.join(pgbinary.COLUMNS)}) from stdin (format binary)") as copy:
                copy.write(pgbinary.SIGNATURE)
                for data, parsed in _in_background(blocks, lambda parsed: pgbinary.encode_rows(parsed.rows, file_id)):
                    copy.write(data)
                    loaded += parsed.rows.num_rows
                    rejects.add(parsed.rejects)
                copy.write(pgbinary.TRAILER)
            reject_columns = "file_id, source, line_number, reason, raw_line"
            with cursor.copy(f"copy {self.table}_rejects ({reject_columns}) from stdin (format csv)") as copy:
                for data in rejects.as_csv(file_id, source):
                    copy.write(data)
        return loaded, rejects.count


class _RejectSpool:
    """Rejects wait on disk until the rows' COPY ends, so a file of garbage keeps memory flat."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.count = 0

    def add(self, rejects: list[Reject]) -> None:
        if rejects:
            columns = {
                "line_number": [r.line_number for r in rejects],
                "reason": [r.reason for r in rejects],
                "raw_line": [r.raw_line for r in rejects],
            }
            pv.write_csv(pa.table(columns), self.file, _CSV_OUT)
            self.count += len(rejects)

    def as_csv(self, file_id: int, source: str) -> Iterator[bytes]:
        prefix = io.BytesIO()
        pv.write_csv(pa.table({"file_id": [file_id], "source": [source]}), prefix, _CSV_OUT)
        line_prefix = prefix.getvalue().rstrip(b"\n") + b","
        self.file.seek(0)
        for line in self.file:  # write_csv quotes values, and PostgreSQL's CSV reader takes newlines in quotes
            yield line_prefix + line


class SqliteTarget(_SqlTables):
    """The embedded fallback: the same tables and guarantees, for demos and laptops."""

    # ISO 8601 text is SQLite's timestamp; prices stay exact as text.
    TYPES: ClassVar[dict[str, str]] = {TIMESTAMP: "text", TEXT: "text", BIGINT: "bigint", PRICE: "text"}
    ID_TYPE = "integer primary key"
    NOW = "datetime('now')"

    def __init__(self, path: Path, table: str, schema: str | None = None) -> None:
        super().__init__(table, schema)
        self.path = path

    @contextmanager
    def transaction(self, lock_name: str) -> Iterator[SqliteTarget]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=600, isolation_level=None)
        if self.schema:  # outside any transaction, as SQLite requires
            where = str(sqlite_schema_path(self.path, self.schema))
            self.conn.execute(f"attach database ? as {self.schema}", [where])
        try:
            self.conn.execute("begin immediate")  # one writer at a time; the others wait
            yield self
            self.conn.execute("commit")
        except BaseException:
            self.conn.execute("rollback")
            raise
        finally:
            self.conn.close()

    def describe(self) -> TableDescription:
        where = f"{self.schema}." if self.schema else ""
        name = self.table.rpartition(".")[2]
        columns = self.conn.execute(f"pragma {where}table_info({name})").fetchall()  # (cid, name, type, ...)
        return TableDescription(self.rows_per_event_type(), {str(c[1]): str(c[2]) for c in columns})

    def new_ledger_entry(self, name: str) -> int:
        return int(self.conn.execute(f"insert into {self.table}_files (name) values (?)", [name]).lastrowid)

    def write_rows(self, file_id: int, source: str, blocks: Iterator[ParsedBlock]) -> tuple[int, int]:
        loaded = rejected = 0
        columns = [column.name for column in TABLE_COLUMNS]
        insert_row = f"insert into {self.table} ({', '.join(columns)}) values ({', '.join('?' * len(columns))})"
        for parsed in blocks:
            values = parsed.rows.to_pydict()
            for column in LOADED:
                if column.kind == TIMESTAMP:
                    values[column.name] = [time.isoformat(sep=" ") for time in values[column.name]]
                elif column.kind == PRICE:
                    values[column.name] = [str(price) for price in values[column.name]]
            values[FILE_ID.name] = [file_id] * parsed.rows.num_rows
            self.conn.executemany(insert_row, zip(*(values[name] for name in columns), strict=True))
            self.conn.executemany(
                f"insert into {self.table}_rejects values (?, ?, ?, ?, ?)",
                [(file_id, source, r.line_number, r.reason, r.raw_line) for r in parsed.rejects],
            )
            loaded += parsed.rows.num_rows
            rejected += len(parsed.rejects)
        return loaded, rejected
