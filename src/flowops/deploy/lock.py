"""One change at a time per environment, with a lock kept on the Prefect server itself (no new infrastructure).

The lock is a Prefect Variable, `flowops-lock-<project>-<environment>-<hash>`: creating it is atomic (names are
unique), so whoever creates it holds it. Its value says who holds it and for how long; the holder writes it
again every third of that time, and deletes it (by id) when done. A holder that is killed stops renewing, so its
lease expires and the next one deletes it and takes the lock. Deploy, rollback, teardown and gc take it.

    with environment_lock("acme/flows", "staging", "deploy feature/x @ 0123abcd"):
        ...  # plan, prefect deploy, undo or prune: nobody else changes this environment meanwhile
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

from flowops.api.server import Lease, LeaseAPI, PrefectAPIError
from flowops.errors import FlowopsError
from flowops.render.branches import branch_slug

DEFAULT_LEASE_SECONDS = 120.0  # a killed holder blocks the environment this long at most
DEFAULT_WAIT_SECONDS = 900.0  # a deploy waits this long for another to finish
POLL_SECONDS = 1.0


class LockBusy(FlowopsError):
    """Someone else held the environment's lock for longer than we could wait."""


def lock_name(project: str, environment: str) -> str:
    # Variable names allow letters, digits, - and _ only; the slug hashes anything else, so names never collide.
    return f"flowops-lock-{branch_slug(f'{project}/{environment}')}"


def holder_description(purpose: str) -> str:
    """Who is asking, in words a person waiting can act on: the CI run's URL, or user@host and pid."""
    run = os.environ.get("GITHUB_RUN_ID")
    if run and os.environ.get("GITHUB_REPOSITORY"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        where = f"{server}/{os.environ['GITHUB_REPOSITORY']}/actions/runs/{run}"
    else:
        where = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
    return f"{purpose} ({where})"


def _seconds(variable: str, default: float) -> float:
    raw = os.environ.get(variable)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise LockBusy(f"${variable} must be a number of seconds, not {raw!r}") from None


@contextlib.contextmanager
def environment_lock(
    server: LeaseAPI, project: str, environment: str, purpose: str, on_wait: Callable[[str], None] | None = None
) -> Iterator[Lease]:
    """Hold the environment's lock for the `with` block. Waits for the holder ($FLOWOPS_LOCK_WAIT seconds,
    saying who it is), takes over a lease that expired ($FLOWOPS_LOCK_LEASE seconds after its last renewal)."""
    name = lock_name(project, environment)
    lease_seconds = _seconds("FLOWOPS_LOCK_LEASE", DEFAULT_LEASE_SECONDS)
    deadline = time.monotonic() + _seconds("FLOWOPS_LOCK_WAIT", DEFAULT_WAIT_SECONDS)
    lease = _acquire(server, name, holder_description(purpose), lease_seconds, deadline, on_wait or _to_stderr)
    stop = threading.Event()
    renewer = threading.Thread(target=_keep_renewing, args=(server, lease, stop), daemon=True, name=f"renew {name}")
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join()
        _release(server, lease, on_wait or _to_stderr)


def _release(server: LeaseAPI, lease: Lease, say: Callable[[str], None]) -> None:
    """Delete the lease. Failing to only delays the next caller until it expires: say so, and let the work's own
    outcome (success, or its error) stand."""
    try:
        server.drop_lease(lease)
    except PrefectAPIError as error:
        say(f"warning: {error}; the lock is free again when its lease expires ({lease.seconds:.0f} s)")


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")  # not stdout: it may be --json


def _acquire(
    server: LeaseAPI,
    name: str,
    holder: str,
    lease_seconds: float,
    deadline: float,
    on_wait: Callable[[str], None],
) -> Lease:
    told = None
    while True:
        lease = server.take_lease(name, holder, lease_seconds)
        if lease is not None:
            return lease
        current = server.read_lease(name)
        if current is None:
            continue  # released between our two calls: try again at once
        if time.time() > current.renewed + current.seconds:
            on_wait(f"lock {name}: the lease of {current.holder} expired; taking it over")
            server.drop_lease(current)
            continue
        if time.monotonic() > deadline:
            raise LockBusy(
                f"{name} is held by {current.holder} (lease renewed {time.time() - current.renewed:.0f} s ago);"
                " gave up waiting (FLOWOPS_LOCK_WAIT); nothing was changed"
            )
        if told != current.id:
            on_wait(f"waiting for lock {name}, held by {current.holder}")
            told = current.id
        time.sleep(POLL_SECONDS)


def _keep_renewing(server: LeaseAPI, lease: Lease, stop: threading.Event) -> None:
    while not stop.wait(lease.seconds / 3):
        try:
            if not server.renew_lease(lease):
                # Taken over after it expired (this process stalled longer than the lease): nothing to renew.
                _to_stderr(f"warning: lost the lock {lease.name}: its lease expired and another caller took it")
                return
        except PrefectAPIError:
            continue  # the server may be back before the lease runs out
