"""The e-commerce events ETL: the cosmetics shop's event CSVs into PostgreSQL (or SQLite)."""
