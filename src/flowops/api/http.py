"""The few calls of the Prefect API that flowops makes without importing Prefect (1.2 to 1.5 s of imports here): the
reads that answer "nothing changed" (deployments by tag, one Variable), the writes that move a branch's deployments
to a new commit (deploy/pin_moves.py) under the environment's lock, and the one that records a deploy.

Only a plain configuration takes this path: PREFECT_API_URL (and PREFECT_API_KEY) in the environment, nothing else
that Prefect's own client would apply (a profile's URL, TLS or auth settings, custom headers). Anything else gets
`None` from `plain_api()`, and the caller goes through client.py, Prefect's client, as every other command does.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from flowops.api.server import Lease, PrefectAPIError

PAGE_SIZE = 200
TIMEOUT_SECONDS = 20.0
RETRY_PAUSES_SECONDS = (0.5, 1.0, 2.0)
BUSY_STATUSES = (429, 502, 503, 504)  # the server, or a proxy before it, cannot take the call now: worth a retry
# What Prefect's client would apply beyond the URL and the key: with any of them set, the plain path stands aside.
CLIENT_SETTINGS = (
    "PREFECT_API_AUTH_STRING", "PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "PREFECT_API_SSL_CERT_FILE",
    "PREFECT_CLIENT_CUSTOM_HEADERS", "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH",
    "PREFECT_CLOUD_API_URL",
)  # fmt: skip


class ServerBusy(PrefectAPIError):
    """The server refused a call for now (one of BUSY_STATUSES): another try may be taken."""


@dataclass(frozen=True)
class PlainAPI:
    url: str
    key: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def _request(self, method: str, path: str, body: Any = None, absent: tuple[int, ...] = (404,)) -> Any:
        """One call's answer; None for a status in `absent` (by default 404: what was asked for is not there)."""
        return self._call(method, path, body, absent)[1]

    def _call(self, method: str, path: str, body: Any, absent: tuple[int, ...]) -> tuple[int, Any]:
        """One call, through the standard library (httpx's imports and SSL set-up cost more than the call here):
        its status and its answer. A status in `absent` is returned with no answer; any other error raises."""
        import urllib.error
        import urllib.request

        from flowops.gitrepo import without_userinfo

        headers = {"Content-Type": "application/json", **self._headers()}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)  # noqa: S310 - the configured API's http(s) URL
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - as above
                status, content = response.status, response.read()
        except urllib.error.HTTPError as error:
            if error.code in absent:
                return error.code, None
            detail = error.read()[:300].decode(errors="replace")
            refusal = ServerBusy if error.code in BUSY_STATUSES else PrefectAPIError
            raise refusal(f"{method} {path}: {error.code} {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            where = without_userinfo(self.url)  # a URL may carry a password: never shown
            raise PrefectAPIError(f"{method} {path}: cannot reach the Prefect API at {where!r}: {error}") from None
        return status, json.loads(content) if content else None

    def deployments_tagged(self, tags: list[str]) -> list[dict[str, Any]]:
        """Every deployment carrying all of `tags`, as the API returns them (a page per 200)."""
        found: list[dict[str, Any]] = []
        for offset in _offsets():
            body = {"deployments": {"tags": {"all_": tags}}, "limit": PAGE_SIZE, "offset": offset, "sort": "NAME_ASC"}
            page = self._request("POST", "/deployments/filter", body) or []
            found += page
            if len(page) < PAGE_SIZE:
                return found
        raise AssertionError("unreachable")

    def variable(self, name: str) -> Any:
        """The value of the Variable `name`, or None when there is none."""
        variable = self._request("GET", f"/variables/name/{name}")
        return variable["value"] if variable else None

    def set_variable(self, name: str, value: Any, tags: list[str]) -> None:
        if self._request("GET", f"/variables/name/{name}") is None:
            self._request("POST", "/variables/", {"name": name, "value": value, "tags": tags})
        else:
            self._request("PATCH", f"/variables/name/{name}", {"value": value, "tags": tags})

    def update_deployment(self, deployment_id: str, fields: dict[str, Any]) -> None:
        """Write these fields of the deployment. A write the server refuses for now (SQLite's answers 503 when
        writes queue up) is tried again after each of RETRY_PAUSES_SECONDS, and the last refusal raises; any other
        error (a deployment deleted meanwhile: 404) raises at once."""
        for pause in RETRY_PAUSES_SECONDS:
            try:
                self._request("PATCH", f"/deployments/{deployment_id}", fields, absent=())
                return
            except ServerBusy:
                time.sleep(pause)  # the server's own contention: nothing to wait on but time
        self._request("PATCH", f"/deployments/{deployment_id}", fields, absent=())

    # The environment's lock (deploy/lock.py), as client.py's PrefectAPI holds it: the same Variable, the same calls

    def take_lease(self, name: str, holder: str, seconds: float) -> Lease | None:
        body = {"name": name, "value": {"holder": holder, "seconds": seconds}, "tags": ["flowops-lock"]}
        created = self._request("POST", "/variables/", body, absent=(409,))  # 409: someone holds it
        return _lease(created) if created else None

    def read_lease(self, name: str) -> Lease | None:
        variable = self._request("GET", f"/variables/name/{name}")
        return _lease(variable) if variable else None

    def renew_lease(self, lease: Lease) -> bool:
        value = {"holder": lease.holder, "seconds": lease.seconds}
        status, _ = self._call("PATCH", f"/variables/{lease.id}", {"value": value}, absent=(404,))
        return status != 404  # gone: taken over after it expired

    def drop_lease(self, lease: Lease) -> None:
        self._request("DELETE", f"/variables/{lease.id}")


def plain_api(environment: Mapping[str, str] | None = None) -> PlainAPI | None:
    """The API to call without Prefect, when the environment configures it plainly; else None."""
    environment = os.environ if environment is None else environment
    url = (environment.get("PREFECT_API_URL") or "").rstrip("/")
    if not url or any(environment.get(name) for name in CLIENT_SETTINGS):
        return None
    if urlsplit(url).scheme not in ("http", "https") or "@" in urlsplit(url).netloc:
        return None  # another scheme, or credentials in the URL: Prefect's client knows what to do with them
    return PlainAPI(url, environment.get("PREFECT_API_KEY") or None)


def _lease(variable: dict[str, Any]) -> Lease:
    value = variable.get("value")
    value = value if isinstance(value, dict) else {}
    updated = variable.get("updated")
    return Lease(
        UUID(variable["id"]),
        variable["name"],
        str(value.get("holder", "unknown")),
        float(value.get("seconds", 0)),
        datetime.datetime.fromisoformat(updated).timestamp() if updated else 0.0,
    )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _offsets() -> Iterator[int]:
    offset = 0
    while True:
        yield offset
        offset += PAGE_SIZE
