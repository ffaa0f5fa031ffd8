"""The events CSV as the Kaggle dataset publishes it, and the table it loads into: one column table from which
the parser's Arrow schema (parse.py), the tables' DDL (load.py) and the binary COPY layout (pgbinary.py) derive."""

from __future__ import annotations

from dataclasses import dataclass

DATASET = "mkechinov/ecommerce-events-history-in-cosmetics-shop"
MONTH_FILES = ["2019-Oct.csv", "2019-Nov.csv", "2019-Dec.csv", "2020-Jan.csv", "2020-Feb.csv"]

# What a column holds; each target maps these to its own types.
TIMESTAMP, TEXT, BIGINT, PRICE = "timestamp", "text", "bigint", "price"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = False  # may be empty in valid data; an empty one loads as NULL
    loaded: bool = True  # False: read from the CSV, not loaded


COLUMNS = (
    Column("event_time", TIMESTAMP),
    Column("event_type", TEXT),
    Column("product_id", BIGINT),
    Column("category_id", BIGINT),
    Column("category_code", TEXT, nullable=True, loaded=False),
    Column("brand", TEXT, nullable=True),
    Column("price", PRICE),
    Column("user_id", BIGINT),
    Column("user_session", TEXT, nullable=True),
)
# Each loaded row also carries the ledger id of the file it came from (load.py).
FILE_ID = Column("file_id", BIGINT)

SOURCE_COLUMNS = [column.name for column in COLUMNS]
HEADER = ",".join(SOURCE_COLUMNS)
LOADED = [column for column in COLUMNS if column.loaded]
LOADED_COLUMNS = [column.name for column in LOADED]
DROPPED_COLUMNS = {column.name for column in COLUMNS if not column.loaded}
INTEGER_COLUMNS = tuple(column.name for column in COLUMNS if column.kind == BIGINT)
NULLABLE_COLUMNS = tuple(column.name for column in COLUMNS if column.nullable)
TABLE_COLUMNS = [*LOADED, FILE_ID]

EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")
EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
# numeric(10, 2): at most 8 digits before the point and 2 after.
PRICE_MAX_INTEGER_DIGITS = 8
PRICE_MAX_FRACTION_DIGITS = 2
PRICE_PRECISION = PRICE_MAX_INTEGER_DIGITS + PRICE_MAX_FRACTION_DIGITS


def table_columns_sql(types: dict[str, str]) -> str:
    """The events table's column definitions, with `types` mapping each kind to the target's SQL type."""
    return ",\n".join(
        f"{column.name} {types[column.kind]}{'' if column.nullable else ' not null'}" for column in TABLE_COLUMNS
    )
