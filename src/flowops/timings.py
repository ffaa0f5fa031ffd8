"""Where a command's seconds go, by phase: `FLOWOPS_TIMINGS=1 flowops deploy ...` prints them on stderr when the
command ends (scripts/bench_deploy_paths.py --phases puts them in its table). Off, a phase costs one dict lookup."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_spent: dict[str, float] = {}


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        _spent[name] = _spent.get(name, 0.0) + time.perf_counter() - started


def record(name: str, seconds: float | None) -> None:
    if seconds is not None:
        _spent[name] = _spent.get(name, 0.0) + seconds


def started_seconds_ago() -> float | None:
    """How long this process has been running (Linux: from /proc), to count the interpreter's start."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


def report(total_since_start: float | None) -> None:
    """Print the phases (and the rest of the command, unaccounted) when FLOWOPS_TIMINGS is set."""
    if not os.environ.get("FLOWOPS_TIMINGS"):
        return
    parts = [f"{name} {seconds:.2f} s" for name, seconds in _spent.items()]
    if total_since_start is not None:
        rest = total_since_start - sum(_spent.values())
        parts.append(f"the rest {rest:.2f} s; total {total_since_start:.2f} s")
    sys.stderr.write("timings: " + ", ".join(parts) + "\n")
