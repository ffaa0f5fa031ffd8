"""The one redaction of the flow: whatever text leaves it (logs, errors, task run names, the ledger, artifacts,
the cache sidecar) goes through `redact` first.

    redact("postgresql://app:hunter2@db/x")                 -> "postgresql://app:***@db/x"
    redact("https://h/f.csv?X-Amz-Signature=abc&v=1")      -> "https://h/f.csv?X-Amz-Signature=***&v=1"
    redact("invalid token: 'hun%zz'", secrets=["hun%zz"])  -> "invalid token: '***'"

Patterns catch secrets in URLs; `secrets` catches the rest, such as the fragments a database driver echoes from a
malformed URL (pass `secrets_of(url)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"
# Names of query parameters that carry secrets.
SECRET_WORDS = (
    "password", "passwd", "pwd", "pass", "secret", "token", "key", "credential", "auth", "signature", "sig",
    "session", "dsn", "database_url", "private",
)  # fmt: skip
_SECRET_NAME = "|".join(sorted(SECRET_WORDS, key=len, reverse=True))
# scheme://user:password@ or scheme://token@ : everything between `//` and `@` but the user name
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@'\"]+)@")
_QUERY_SECRET = re.compile(rf"(?i)(?P<name>[?&;][\w.-]*(?:{_SECRET_NAME})[\w.-]*=)(?P<value>[^&#\s'\"]+)")
_SHORTEST_SECRET = 4  # shorter values (a port, "x") would mask ordinary text


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    text = _USERINFO.sub(_mask_userinfo, str(text))
    text = _QUERY_SECRET.sub(lambda match: match.group("name") + MASK, text)
    for secret in sorted({s for s in secrets if s and len(s) >= _SHORTEST_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _mask_userinfo(match: re.Match) -> str:
    scheme, userinfo = match.group("scheme"), match.group("userinfo")
    user, colon, _password = userinfo.partition(":")
    if colon:
        return f"{scheme}{user}:{MASK}@"
    # Over http(s) a lone userinfo is a token (https://ghp_x@github.com); elsewhere a user name (postgresql://app@db).
    return f"{scheme}{MASK}@" if scheme.lower().startswith("http") else match.group(0)


def secrets_of(url: str | None) -> list[str]:
    """What a driver may echo of `url`: the whole value, its password raw and percent-decoded, and any
    secret-looking query parameter. A value that does not even parse as a URL is itself the secret."""
    if not url:
        return []
    found = [url]
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return found
    if password:
        found += [password, unquote(password)]
    found += [match.group("value") for match in _QUERY_SECRET.finditer("?" + (parts.query or ""))]
    return found


def shown_url(url: str) -> str:
    """A database URL as logs may show it: without its password, and nothing of a value that is not a URL."""
    if "://" not in url:
        return "(a value that is not a URL)"
    return redact(url, secrets_of(url)[1:])
