"""The events CSV as the Kaggle dataset publishes it, and the table it loads into."""

DATASET = "mkechinov/ecommerce-events-history-in-cosmetics-shop"
MONTH_FILES = ["2019-Oct.csv", "2019-Nov.csv", "2019-Dec.csv", "2020-Jan.csv", "2020-Feb.csv"]

SOURCE_COLUMNS = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
]
HEADER = ",".join(SOURCE_COLUMNS)
DROPPED_COLUMNS = {"category_code"}
LOADED_COLUMNS = [name for name in SOURCE_COLUMNS if name not in DROPPED_COLUMNS]

EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")
EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
INTEGER_COLUMNS = ("product_id", "category_id", "user_id")
# Columns that may be empty in valid data; an empty one loads as NULL.
NULLABLE_COLUMNS = ("category_code", "brand", "user_session")
# numeric(10, 2): at most 8 digits before the point and 2 after.
PRICE_MAX_INTEGER_DIGITS = 8
PRICE_MAX_FRACTION_DIGITS = 2
