"""The one base of every failure flowops reports: a message of one line, and the exit status it means."""

from __future__ import annotations


class FlowopsError(Exception):
    """A failure the command reports as `error: <message>` and exits with `exit_code` (1: the operation failed or
    found problems)."""

    exit_code = 1


class UsageError(FlowopsError):
    """The command line itself is wrong: nothing was attempted."""

    exit_code = 2
