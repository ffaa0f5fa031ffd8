"""Prefect flows shipped by flowops. Flow code imports nothing from the tooling."""
