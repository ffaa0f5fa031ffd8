"""The `flowops` command: GitOps for Prefect deployments. Subcommands arrive with later issues."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flowops",
        description="GitOps CI/CD for Prefect 3 flows: validate, render, plan, deploy, prune, teardown, bootstrap.",
    )
    parser.add_argument("--version", action="version", version=f"flowops {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
