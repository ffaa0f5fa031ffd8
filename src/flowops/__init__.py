"""flowops: GitOps CI/CD for Prefect 3 data flows."""

__version__ = "0.1.0"
