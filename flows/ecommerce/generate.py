"""Synthetic month files with the real dataset's header, value formats and quirks.

Tests, demos and benchmarks use them instead of the Kaggle download. The shape follows the
published files: a catalogue of products (each with a 19-digit category id, a brand that is empty
for ~42% of products, a category code that is empty for ~98% of rows, a price), sessions that
belong to users, events sorted by time over the month, and the quirks a loader must accept:
empty user sessions, a few negative prices and exact duplicate rows. The same seed gives the
same bytes.
"""

from __future__ import annotations

import calendar
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from .schema import EVENT_TIME_FORMAT, EVENT_TYPES, HEADER

EVENT_TYPE_SHARES = (0.48, 0.28, 0.18, 0.06)
BRAND_EMPTY_SHARE = 0.42
CATEGORY_CODE_SHARE = 0.02
# 131 negative prices in ~20.7M real rows; at least one per generated file.
NEGATIVE_PRICE_SHARE = 131 / 20_700_000
EMPTY_SESSION_SHARE = 0.0002
DUPLICATE_ROW_SHARE = 0.005
BRANDS = [
    "runail",
    "irisk",
    "masura",
    "grattol",
    "ingarden",
    "estel",
    "kapous",
    "jessnail",
    "uno",
    "bpw.style",
    "freedecor",
    "concept",
    "strong",
    "domix",
    "lianail",
    "italwax",
    "haruyama",
    "shik",
    "cnd",
    "zinger",
    "kiss",
    "beautix",
    "milv",
]
CATEGORY_CODES = (
    "appliances.environment.vacuum",
    "furniture.bathroom.bath",
    "furniture.living_room.cabinet",
    "accessories.bag",
    "apparel.glove",
    "stationery.cartrige",
)


def month_file_name(month: str) -> str:
    """`2019-10` -> `2019-Oct.csv`, the name the dataset gives that month."""
    start = _month_start(month)
    return f"{start.year}-{calendar.month_abbr[start.month]}.csv"


def generate_month(month: str, rows: int, out_dir: Path, seed: int = 0) -> Path:
    """Write `rows` synthetic events of `month` (YYYY-MM) to `out_dir`; return the file's path."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / month_file_name(month)
    table = _events_table(month, rows, np.random.default_rng(seed))
    tmp = path.with_suffix(".csv.part")
    with pa.OSFile(str(tmp), "wb") as sink:
        sink.write((HEADER + "\n").encode())
        pv.write_csv(table, sink, pv.WriteOptions(include_header=False, quoting_style="none"))
    tmp.replace(path)
    return path


def _month_start(month: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"month must look like 2019-10, got {month!r}") from None


def _events_table(month: str, rows: int, rng: np.random.Generator) -> pa.Table:
    start = _month_start(month)
    month_seconds = calendar.monthrange(start.year, start.month)[1] * 86_400

    products = min(50_000, max(10, rows // 20))
    product_ids = rng.choice(np.arange(3_752, 5_932_596), products, replace=False)
    category_pool = 1_487_580_004_800_000_000 + rng.integers(0, 700_000_000_000_000_000, 500)
    product_category = rng.choice(category_pool, products)
    product_brand_index = rng.integers(0, len(BRANDS), products)
    product_has_brand = rng.random(products) >= BRAND_EMPTY_SHARE
    product_cents = np.clip(np.round(rng.lognormal(1.4, 1.0, products) * 100), 5, 32_778).astype(np.int64)

    # Popular products are picked more often, as in the real files.
    product = (products * rng.random(rows) ** 2).astype(np.int64)
    sessions = max(1, rows // 6)
    session_user = rng.integers(465_000_000, 622_000_000, sessions)
    session = rng.integers(0, sessions, rows)

    seconds = np.sort(rng.integers(0, month_seconds, rows)) + int(start.timestamp())
    event_type = rng.choice(len(EVENT_TYPES), rows, p=EVENT_TYPE_SHARES)
    cents = product_cents[product]
    cents[_pick(rng, rows, NEGATIVE_PRICE_SHARE)] *= -1
    has_session = np.ones(rows, dtype=bool)
    has_session[_pick(rng, rows, EMPTY_SESSION_SHARE)] = False
    has_code = rng.random(rows) < CATEGORY_CODE_SHARE

    order = np.arange(rows)
    duplicates = _pick(rng, rows, DUPLICATE_ROW_SHARE)
    duplicates = duplicates[duplicates > 0]
    order[duplicates] = duplicates - 1  # an exact copy of the row before it

    brand = pa.array(np.array(BRANDS, dtype=object)[product_brand_index[product]], pa.string())
    table = pa.table(
        {
            "event_time": pc.strftime(
                pa.array(seconds, pa.timestamp("s")), format=EVENT_TIME_FORMAT.replace(" UTC", "")
            ),
            "event_type": pa.array(np.array(EVENT_TYPES, dtype=object)[event_type], pa.string()),
            "product_id": pa.array(product_ids[product]),
            "category_id": pa.array(product_category[product]),
            "category_code": pa.array(
                np.array(CATEGORY_CODES, dtype=object)[rng.integers(0, len(CATEGORY_CODES), rows)],
                pa.string(),
                mask=~has_code,
            ),
            "brand": pc.if_else(pa.array(product_has_brand[product]), brand, pa.scalar(None, pa.string())),
            "price": _format_cents(cents),
            "user_id": pa.array(session_user[session]),
            "user_session": pa.array(_uuids(rng, sessions)[session], pa.string(), mask=~has_session),
        }
    )
    table = table.set_column(0, "event_time", pc.binary_join_element_wise(table["event_time"], " UTC", ""))
    return table.take(pa.array(order))


def _pick(rng: np.random.Generator, rows: int, share: float) -> np.ndarray:
    """Row positions for a quirk: about `share` of the rows, and at least one."""
    return rng.choice(rows, min(rows, max(1, round(rows * share))), replace=False)


def _format_cents(cents: np.ndarray) -> pa.Array:
    """Cents as the file writes prices: `5.24`, `-0.50`."""
    whole = pa.array(np.abs(cents) // 100).cast(pa.string())
    fraction = pc.utf8_lpad(pa.array(np.abs(cents) % 100).cast(pa.string()), 2, "0")
    sign = pc.if_else(pa.array(cents < 0), "-", "")
    return pc.binary_join_element_wise(sign, whole, ".", fraction, "")


def _uuids(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` random UUID-shaped strings, built without a Python loop per value."""
    hex_digits = np.frombuffer(rng.bytes(16 * count).hex().encode(), dtype="S1").reshape(count, 32)
    dash = np.full((count, 1), b"-", dtype="S1")
    parts = [hex_digits[:, :8], dash, hex_digits[:, 8:12], dash, hex_digits[:, 12:16], dash]
    parts += [hex_digits[:, 16:20], dash, hex_digits[:, 20:]]
    return np.ascontiguousarray(np.hstack(parts)).view("S36").ravel().astype(str).astype(object)
