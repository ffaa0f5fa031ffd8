"""The only place that runs `prefect deploy`: the real command, `prefect --no-prompt deploy --all --prefect-file F`.

It runs in this process, through Prefect's own CLI entry point, rather than in a child process: flowops has
already imported Prefect and the flows' modules to validate them, and a second interpreter would pay those
imports again (about 2 s here, the whole difference between flowops and a bare `prefect deploy`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DeployOutcome:
    exit_code: int
    output: str

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def prefect_deploy_all(prefect_file: Path, project_root: Path) -> DeployOutcome:
    """Run `prefect --no-prompt deploy --all --prefect-file prefect_file` from the project root.

    Entrypoints resolve against the working directory, so the command runs from the project root. Prefect's
    console output is captured and returned (the caller decides where it goes).
    """
    from prefect.cli import app

    argv = ["prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    output = io.StringIO()
    saved_argv, saved_cwd = sys.argv, Path.cwd()
    exit_code = 0
    try:
        sys.argv = argv
        os.chdir(project_root)
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            app()
    except SystemExit as exit:
        exit_code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except Exception as error:  # noqa: BLE001 - any failure inside Prefect's CLI is a failed deploy
        exit_code = 1
        output.write(f"{type(error).__name__}: {error}\n")
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    return DeployOutcome(exit_code, output.getvalue())


def inferred_version(project_root: Path, version_type: str | None = None) -> str | None:
    """The version `prefect deploy` gives a deployment whose file sets none: what Prefect's own inference reads from
    the CI's environment (GitHub's GITHUB_SHA, GitLab's, ...) or from git in the project root; None when it finds
    nothing (then Prefect leaves the version to the server)."""
    from prefect._internal.versioning import get_inferred_version_info
    from prefect.utilities.asyncutils import run_coro_as_sync

    saved_cwd = Path.cwd()
    try:
        os.chdir(project_root)  # as prefect_deploy_all runs: git answers for the project's repository
        info = run_coro_as_sync(get_inferred_version_info(version_type))
    finally:
        os.chdir(saved_cwd)
    version = getattr(info, "version", None)  # a VersionInfo, or None when nothing was found
    return str(version) if version else None
