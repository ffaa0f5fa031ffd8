"""The one base of every failure flowops reports: a message of one line, and the exit status it means."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowops.config.problems import Problem


class FlowopsError(Exception):
    """A failure the command reports as `error: <message>` and exits with `exit_code` (1: the operation failed or
    found problems)."""

    exit_code = 1


class UsageError(FlowopsError):
    """The command line itself is wrong: nothing was attempted."""

    exit_code = 2


class ValidationFailed(FlowopsError):
    """The files (or what the server says of them) have problems: nothing was changed."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class DeployFailed(FlowopsError):
    """`prefect deploy` failed; the server was put back as it was. `output` is Prefect's own output."""

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output
