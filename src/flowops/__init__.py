"""flowops: GitOps CI/CD for Prefect 3 data flows."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flowops-prefect")  # set from git when it was built (pyproject.toml)
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"
