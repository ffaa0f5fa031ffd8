"""The column table in schema.py is the one definition: the Arrow schema, the DDL and the COPY layout follow it."""

from __future__ import annotations

from flows.ecommerce import pgbinary
from flows.ecommerce.load import PostgresTarget, SqliteTarget
from flows.ecommerce.parse import LOADED_SCHEMA
from flows.ecommerce.schema import HEADER, LOADED_COLUMNS, SOURCE_COLUMNS, TABLE_COLUMNS, TEXT, table_columns_sql


def test_the_header_is_the_source_columns_and_category_code_is_read_but_not_loaded():
    assert HEADER.split(",") == SOURCE_COLUMNS
    assert "category_code" in SOURCE_COLUMNS
    assert "category_code" not in LOADED_COLUMNS
    assert LOADED_SCHEMA.names == LOADED_COLUMNS


def test_the_binary_copy_carries_every_table_column_once_and_its_record_matches_the_declared_sizes():
    assert sorted(pgbinary.COLUMNS) == sorted(column.name for column in TABLE_COLUMNS)
    fixed = [column for column in TABLE_COLUMNS if column.kind != TEXT]
    assert list(pgbinary.COLUMNS[: len(fixed)]) == [column.name for column in fixed]  # fixed-width fields first
    # the field count (2 bytes), then per fixed column a 4-byte length and its value
    assert pgbinary._FIXED.itemsize == 2 + sum(4 + pgbinary._SIZES[column.kind] for column in fixed)


def test_both_targets_create_the_events_table_from_the_column_table():
    postgres = table_columns_sql(PostgresTarget.TYPES)
    assert postgres.splitlines() == [
        "event_time timestamptz not null,",
        "event_type text not null,",
        "product_id bigint not null,",
        "category_id bigint not null,",
        "brand text,",
        "price numeric(10, 2) not null,",
        "user_id bigint not null,",
        "user_session text,",
        "file_id bigint not null",
    ]
    assert "event_time text not null" in table_columns_sql(SqliteTarget.TYPES)
