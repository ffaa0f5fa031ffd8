"""A busy Prefect server (SQLite's answers 503 when writes queue up): moving deployments to a commit writes a
refused one once more, and fails only when a write is refused twice; the plain API's writes (without Prefect) are
tried up to four times, and a deployment that is not there fails at once; bootstrap tries a refused work pool creation
again until the pool is there. Against HTTP stand-ins that refuse as told and record every write."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from flowops.api.client import connect
from flowops.api.http import PlainAPI, ServerBusy
from flowops.api.server import PrefectAPIError


class BusyServer(ThreadingHTTPServer):
    """Answers PATCH /api/deployments/<id>: 503 for the first `refusals[id]` writes of that id, then 204; 404 for
    an id in `missing` (a deployment deleted meanwhile). Every PATCH is counted in `tries`."""

    def __init__(self, refusals: dict[str, int], missing: frozenset[str] = frozenset()):
        super().__init__(("127.0.0.1", 0), Handler)
        self.refusals = refusals
        self.missing = missing
        self.written: list[tuple[str, dict]] = []
        self.tries = 0
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: BusyServer

    def do_PATCH(self):
        deployment_id = self.path.rsplit("/", 1)[-1]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.tries += 1
            if deployment_id in self.server.missing:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            refuse = self.server.refusals.get(deployment_id, 0) > 0
            self.server.refusals[deployment_id] = self.server.refusals.get(deployment_id, 0) - 1
            if not refuse:
                self.server.written.append((deployment_id, body))
        self.send_response(503 if refuse else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # Prefect's client asks the server's version first
        import prefect

        found = self.path.endswith("/admin/version")
        body = json.dumps(prefect.__version__).encode() if found else b""
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def busy():
    def serve(refusals: dict[str, int], missing: frozenset[str] = frozenset()) -> BusyServer:
        server = BusyServer(refusals, missing)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    servers: list[BusyServer] = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def move(monkeypatch):
    def move_on(server: BusyServer, updates: dict) -> None:
        url = f"http://127.0.0.1:{server.server_address[1]}/api"
        # the client's own retries: none, to count the refusals (set in the environment, flowops keeps it)
        monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "0")
        with temporary_settings({PREFECT_API_URL: url, PREFECT_CLIENT_MAX_RETRIES: 0}), connect() as api:
            api.move_to_commit(updates)

    return move_on


def test_writes_a_busy_server_refused_are_written_again(busy, move):
    ids = [uuid.uuid4() for _ in range(12)]
    refused = {str(ids[0]): 1, str(ids[5]): 1, str(ids[11]): 1}
    server = busy(dict(refused))
    move(server, {deployment_id: {"version": "abc12345"} for deployment_id in ids})
    assert sorted(deployment_id for deployment_id, _ in server.written) == sorted(str(i) for i in ids)
    assert all(body == {"version": "abc12345"} for _, body in server.written)


def test_a_write_refused_twice_fails_the_move(busy, move):
    deployment_id = uuid.uuid4()
    server = busy({str(deployment_id): 2})
    with pytest.raises(PrefectAPIError, match="moving deployments to the commit: 503"):
        move(server, {deployment_id: {"version": "abc12345"}})
    assert server.written == []


def plain_on(server: BusyServer) -> PlainAPI:
    return PlainAPI(f"http://127.0.0.1:{server.server_address[1]}/api")


def test_the_plain_api_writes_again_what_a_busy_server_refused(busy, monkeypatch):
    monkeypatch.setattr("flowops.api.http.RETRY_PAUSES_SECONDS", (0.01, 0.01, 0.01))
    deployment_id = str(uuid.uuid4())
    server = busy({deployment_id: 3})
    plain_on(server).update_deployment(deployment_id, {"version": "abc12345"})
    assert (server.tries, server.written) == (4, [(deployment_id, {"version": "abc12345"})])

    refused_for_good = str(uuid.uuid4())
    server = busy({refused_for_good: 4})
    with pytest.raises(ServerBusy, match=f"PATCH /deployments/{refused_for_good}: 503"):
        plain_on(server).update_deployment(refused_for_good, {"version": "abc12345"})
    assert (server.tries, server.written) == (4, [])


def test_the_plain_api_does_not_write_again_what_is_not_there(busy):
    """A deployment deleted meanwhile fails the move at its first answer (it waited 3.5 s for three retries)."""
    gone = str(uuid.uuid4())
    server = busy({}, missing=frozenset({gone}))
    with pytest.raises(PrefectAPIError, match=f"PATCH /deployments/{gone}: 404") as raised:
        plain_on(server).update_deployment(gone, {"version": "abc12345"})
    assert not isinstance(raised.value, ServerBusy)
    assert server.tries == 1


class PoolServer(ThreadingHTTPServer):
    """Work pool `local` as a worker starting on it races bootstrap: POST /api/work_pools/ answers 500 for the first
    `refusals` tries; the pool appears (as made by the worker) after `appears_after` refusals, or never."""

    def __init__(self, refusals: int, appears_after: int | None):
        super().__init__(("127.0.0.1", 0), PoolHandler)
        self.refusals = refusals
        self.appears_after = appears_after
        self.tries = 0
        self.created_by_us = False


class PoolHandler(Handler):
    server: PoolServer

    def _pool(self) -> str:
        return json.dumps({"id": str(uuid.UUID(int=1)), "name": "local", "type": "process", "base_job_template": {}})

    def _answer(self, status: int, body: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.tries += 1
        if self.server.tries <= self.server.refusals:
            self._answer(500, '{"exception_message": "canceling statement due to statement timeout"}')
        else:
            self.server.created_by_us = True
            self._answer(201, self._pool())

    def do_GET(self):
        if not self.path.endswith("/work_pools/local"):
            return super().do_GET()
        appears_after = self.server.appears_after
        made_by_worker = appears_after is not None and self.server.tries >= appears_after
        if made_by_worker or self.server.created_by_us:
            self._answer(200, self._pool())
        else:
            self._answer(404, '{"detail": "Work pool not found."}')


@pytest.mark.parametrize(
    ("refusals", "appears_after", "created"),
    [(2, None, True), (1, 1, False)],
    ids=["refused-then-created", "refused-while-a-worker-made-it"],
)
def test_bootstrap_tries_a_refused_pool_creation_again(monkeypatch, refusals, appears_after, created):
    server = PoolServer(refusals, appears_after)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "0")
    try:
        with temporary_settings({PREFECT_API_URL: url, PREFECT_CLIENT_MAX_RETRIES: 0}), connect() as api:
            assert api.ensure_work_pool("local", "process") is created
    finally:
        server.shutdown()
        server.server_close()
    assert server.tries == refusals + (1 if created else 0)
