"""Where event files come from: the Kaggle dataset, an https or object-store URL, or an allowed local path.

A bare file name such as `2019-Oct.csv` is that file of the Kaggle dataset, or, where the operator set
$ECOMMERCE_MIRROR_URL (an internal mirror of the dataset), that file under the mirror; URLs are read through
fsspec.
Sources are run parameters, which anyone who may start a run chooses, so only these kinds are read
(`check_source`, before any read): Kaggle file names, https URLs, object-store URLs whose fsspec backend
is installed (`s3://` with s3fs, ...), local paths under $ECOMMERCE_DATA_DIR, and URLs under the prefixes
in $ECOMMERCE_ALLOWED_URLS (the operator's: an internal mirror, a test server). Never `file:///proc/...`,
`memory://`, `ftp://` or an internal `http://` service. An https URL must lead outside: a host that is, or
resolves to, a loopback, private, link-local or otherwise internal address is refused (checked as each
connection is made, redirects included), unless the URL is under $ECOMMERCE_ALLOWED_URLS.
Remote files are downloaded once into a cache and verified (size, sha256) on reuse, so a retried
task does not download again.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import posixpath
import re
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from .parse import sha256_of
from .redact import redact, secrets_of
from .schema import DATASET

CACHE_DIR_VARIABLE = "ECOMMERCE_CACHE_DIR"
_KAGGLE_ENVIRONMENT_LOCK = threading.Lock()
KAGGLE_SECRET_BLOCK = "kaggle-credentials"  # noqa: S105 - a block name, not a secret
DATA_DIR_VARIABLE = "ECOMMERCE_DATA_DIR"
ALLOWED_URLS_VARIABLE = "ECOMMERCE_ALLOWED_URLS"
MIRROR_VARIABLE = "ECOMMERCE_MIRROR_URL"  # the worker's setting, never a run parameter
# Object stores are read only through their own fsspec backend, installed on purpose (s3fs, gcsfs, adlfs, ...).
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "oci", "oss")
ALLOWED_KINDS = (
    "Kaggle file names (2019-Oct.csv), https:// URLs, object-store URLs with an installed fsspec backend "
    f"({', '.join(f'{name}://' for name in OBJECT_STORES)}), local paths under ${DATA_DIR_VARIABLE}, "
    f"URLs under ${ALLOWED_URLS_VARIABLE}"
)
_KAGGLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class SourceError(RuntimeError):
    """A source cannot be fetched; the message names it and what is missing."""


class MissingCredentialsError(SourceError):
    """Kaggle credentials are missing or malformed: retrying will not help."""


class SourceRefusedError(SourceError):
    """A source of a kind this flow does not read (see the module docstring): retrying will not help."""


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flowops" / "ecommerce"


def is_kaggle_file(source: str) -> bool:
    return "://" not in source and "/" not in source and "\\" not in source


def local_path(source: str) -> Path | None:
    """The file a plain path or a `file://` URL names; None for anything else."""
    if is_kaggle_file(source):
        return None
    parts = urlsplit(source)
    if not parts.scheme or len(parts.scheme) == 1:  # a plain path (a Windows drive letter is not a scheme)
        return Path(source)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(url2pathname(parts.path))
    return None


def allowed_data_dirs() -> list[Path]:
    return [Path(folder).resolve() for folder in os.environ.get(DATA_DIR_VARIABLE, "").split(os.pathsep) if folder]


def check_source(source: str, any_local_path: bool = False) -> None:
    """Refuse (SourceRefusedError, naming the allowed kinds) a source this flow must not read. `any_local_path`:
    the caller is a person on their own machine (the ingest CLI), whose paths are theirs to choose."""
    reason = _refusal(source, any_local_path)
    if reason:
        raise SourceRefusedError(f"{redact(source)}: refused, {reason}; allowed: {ALLOWED_KINDS}")


def _refusal(source: str, any_local_path: bool) -> str | None:
    if not source or any(ord(character) < 32 or ord(character) == 127 for character in source):
        return "empty or holding control characters"
    if "::" in source:  # fsspec would chain filesystems: `zip://x::file:///etc/...`
        return "a chained fsspec URL"
    if is_kaggle_file(source):
        return None if _KAGGLE_NAME.fullmatch(source) else "not a Kaggle file name"
    path = local_path(source)
    if path is not None:
        return None if any_local_path else _local_refusal(path)
    if "\\" in source:  # parsers disagree on where a host ends around a backslash
        return "a URL with a backslash"
    if _under_allowed_url(source):
        return None
    scheme = urlsplit(source).scheme
    if scheme == "https":
        host = urlsplit(source).hostname or ""
        return f"https to an internal address ({host})" if is_internal_address(host) else None
    if scheme in OBJECT_STORES:
        import fsspec

        try:
            fsspec.get_filesystem_class(scheme)
        except (ImportError, ValueError) as error:
            return f"the fsspec backend for {scheme}:// is not installed ({error})"
        return None
    return f"{scheme}:// is not a kind this flow reads"


def is_internal_address(host: str) -> bool:
    """Whether `host`, an IP address, is one no public file lives at: loopback, private, link-local, shared
    (100.64/10), reserved, multicast or unspecified; an IPv4 address inside IPv6 is judged as IPv4. Names: False
    (they are judged by what they resolve to, as the connection is made)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _local_refusal(path: Path) -> str | None:
    folders = allowed_data_dirs()
    if not folders:
        return f"a local path, and ${DATA_DIR_VARIABLE} is not set"
    resolved = path.resolve()  # `..` and symlinks followed: nothing outside the folders is reachable
    if any(resolved.is_relative_to(folder) for folder in folders):
        return None
    return f"a local path outside ${DATA_DIR_VARIABLE}"


def _under_allowed_url(source: str) -> bool:
    """True when `source` has the scheme, host and port of a prefix in $ECOMMERCE_ALLOWED_URLS and its path is
    at or under the prefix's path (segment by segment, after `..` is resolved as an HTTP client would)."""
    try:
        wanted = urlsplit(source)
        wanted_address = (wanted.scheme, wanted.hostname, wanted.port)
    except ValueError:  # a port that is not a number
        return False
    path = posixpath.normpath(unquote(wanted.path) or "/")
    for prefix in os.environ.get(ALLOWED_URLS_VARIABLE, "").replace(",", " ").split():
        allowed = urlsplit(prefix)
        try:
            if (allowed.scheme, allowed.hostname, allowed.port) != wanted_address or not allowed.hostname:
                continue
        except ValueError:
            continue
        folder = allowed.path.rstrip("/")
        if path == folder or path.startswith(folder + "/"):
            return True
    return False


def fetch(
    source: str, cache_dir: Path | None = None, kaggle_credentials: dict | None = None, any_local_path: bool = False
) -> Path:
    """A local path holding `source`'s bytes, downloading into the cache when needed; a source of a kind not
    allowed is refused before anything is read. Errors never show a credential that the source URL carries
    (nor the exception they came from, which may)."""
    try:
        check_source(source, any_local_path)
        return _fetch(source, cache_dir or default_cache_dir(), kaggle_credentials)
    except SourceError as error:
        raise type(error)(redact(str(error), secrets_of(source)[1:])) from None


def _fetch(source: str, cache_dir: Path, kaggle_credentials: dict | None) -> Path:
    if is_kaggle_file(source):
        mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
        if mirror:  # the operator's copy of the dataset: downloaded and cached like any URL
            return _fetch_url(f"{mirror.rstrip('/')}/{source}", cache_dir)
        return _fetch_kaggle(source, cache_dir, kaggle_credentials)
    path = local_path(source)
    if path is not None:
        return _existing(path, source)
    return _fetch_url(source, cache_dir)


def _existing(path: Path, source: str) -> Path:
    if not path.is_file():
        raise SourceError(f"{source}: no such file")
    return path


def _cache_entry(cache_dir: Path, source: str, name: str) -> Path:
    return cache_dir / hashlib.sha256(source.encode()).hexdigest()[:16] / name


def _verified(path: Path) -> bool:
    """True when `path` and its sidecar agree on size and sha256: a download that finished."""
    sidecar = path.with_name(path.name + ".json")
    if not (path.is_file() and sidecar.is_file()):
        return False
    recorded = json.loads(sidecar.read_text())
    if path.stat().st_size != recorded["size"]:
        return False
    with open(path, "rb") as stream:
        return sha256_of(stream) == recorded["sha256"]


def _record(path: Path, source: str, digest: str | None = None) -> None:
    """Write the sidecar that _verified checks; `digest` saves a pass when the caller hashed already."""
    if digest is None:
        with open(path, "rb") as stream:
            digest = sha256_of(stream)
    record = {"source": redact(source), "size": path.stat().st_size, "sha256": digest}
    path.with_name(path.name + ".json").write_text(json.dumps(record))


def _fetch_url(source: str, cache_dir: Path) -> Path:
    import fsspec

    scheme = urlsplit(source).scheme
    name = Path(urlsplit(source).path).name or "download.csv"
    target = _cache_entry(cache_dir, source, name)
    if _verified(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread: two tasks fetching the same URL must not write one file.
    partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        web = scheme in ("http", "https")
        storage_options: dict = {}
        if web:
            storage_options = {
                "client_kwargs": {"trace_configs": [_redirects_checked()]},
                "get_client": _guarded_client,
            }
        filesystem, remote_path = fsspec.core.url_to_fs(source, **storage_options)
        expected_size = filesystem.info(remote_path).get("size")
        # One streaming GET for HTTP; other filesystems choose their own block size.
        options = {"block_size": 0} if web else {}
        digest = hashlib.sha256()  # hashed on the way in: no second pass over the file
        with filesystem.open(remote_path, "rb", **options) as remote, open(partial, "wb") as local:
            while chunk := remote.read(1 << 22):
                digest.update(chunk)
                local.write(chunk)
        size = partial.stat().st_size
        if expected_size is not None and size != expected_size:
            raise SourceError(f"{source}: download truncated: {size} of {expected_size} bytes")
    except SourceError:
        partial.unlink(missing_ok=True)
        raise
    except (OSError, ValueError, ImportError) as error:
        partial.unlink(missing_ok=True)
        refused = _refusal_behind(error)
        if refused:
            raise refused from None
        raise SourceError(f"{source}: download failed: {error}") from error
    partial.replace(target)
    _record(target, source, digest.hexdigest())
    return target


def _redirects_checked():
    """An aiohttp trace that refuses a redirect to a source this flow would not read itself: an allowed https
    URL must not lead the download to an internal http service."""
    import aiohttp
    from yarl import URL

    async def check_redirect(session, context, redirect) -> None:
        location = redirect.response.headers.get("Location") or redirect.response.headers.get("URI") or ""
        check_source(str(redirect.response.url.join(URL(location))))

    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(check_redirect)
    return trace


async def _guarded_client(**kwargs):
    """fsspec's HTTP session, whose every connection is refused when the host resolves to an internal address
    (a name pointing at 127.0.0.1 or 10.x, at the first request or after a redirect), unless its URL's host and
    port are those of a prefix in $ECOMMERCE_ALLOWED_URLS."""
    import aiohttp

    class ExternalOnlyResolver(aiohttp.ThreadedResolver):
        async def resolve(self, host: str, port: int = 0, family: int = 0):  # type: ignore[override]
            addresses = await super().resolve(host, port, family)
            internal = [a["host"] for a in addresses if is_internal_address(a["host"])]
            if internal and not _host_allowed(host, port):
                raise SourceRefusedError(
                    f"https://{host}: refused, it resolves to an internal address ({internal[0]}); allowed:"
                    f" {ALLOWED_KINDS}"
                )
            return addresses

    connector = aiohttp.TCPConnector(resolver=ExternalOnlyResolver())
    return aiohttp.ClientSession(connector=connector, **kwargs)


def _host_allowed(host: str, port: int) -> bool:
    """Whether $ECOMMERCE_ALLOWED_URLS or $ECOMMERCE_MIRROR_URL (the operator's) names a URL on this host and port
    (whatever its scheme's default)."""
    prefixes = os.environ.get(ALLOWED_URLS_VARIABLE, "").replace(",", " ").split()
    for prefix in [*prefixes, os.environ.get(MIRROR_VARIABLE, "").strip()]:
        allowed = urlsplit(prefix)
        try:
            allowed_port = allowed.port or {"http": 80, "https": 443}.get(allowed.scheme)
        except ValueError:
            continue
        if allowed.hostname == host and allowed_port == port:
            return True
    return False


def _refusal_behind(error: BaseException) -> SourceRefusedError | None:
    """The refused redirect that fsspec reported as a missing file, if that is what `error` hides."""
    while error is not None:
        if isinstance(error, SourceRefusedError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _kaggle_environment(credentials: dict | None) -> dict[str, str]:
    """Kaggle's credential variables, from the Secret block's value or this process's environment."""
    if credentials:
        if credentials.get("token"):
            return {"KAGGLE_API_TOKEN": credentials["token"]}
        if credentials.get("username") and credentials.get("key"):
            return {"KAGGLE_USERNAME": credentials["username"], "KAGGLE_KEY": credentials["key"]}
        raise MissingCredentialsError(
            f"Secret block {KAGGLE_SECRET_BLOCK!r} must hold {{'token': ...}} or {{'username', 'key'}}"
        )
    names = ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR")
    found = {name: os.environ[name] for name in names if os.environ.get(name)}
    config_dir = Path(found.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    has_file = (config_dir / "kaggle.json").is_file() or (config_dir / "access_token").is_file()
    if "KAGGLE_API_TOKEN" in found or {"KAGGLE_USERNAME", "KAGGLE_KEY"} <= found.keys() or has_file:
        return found
    raise MissingCredentialsError(
        "Kaggle credentials missing: set KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY), "
        f"put kaggle.json in {config_dir}, or create the Secret block {KAGGLE_SECRET_BLOCK!r}"
    )


def _fetch_kaggle(name: str, cache_dir: Path, credentials: dict | None) -> Path:
    target = _cache_entry(cache_dir, f"kaggle:{DATASET}", name)
    if _verified(target):
        return target
    environment = _kaggle_environment(credentials)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _KAGGLE_ENVIRONMENT_LOCK:  # concurrent tasks share os.environ: lend it to one download at a time
        if not _verified(target):  # another task may have fetched it while this one waited
            _download_from_kaggle(name, target, environment)
            _record(target, f"kaggle:{DATASET}/{name}")
    return target


def _download_from_kaggle(name: str, target: Path, environment: dict[str, str]) -> None:
    saved = {variable: os.environ.get(variable) for variable in environment}
    os.environ.update(environment)  # the kaggle package reads its credentials from the environment only
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
        with tempfile.TemporaryDirectory(dir=target.parent) as download_dir:
            api.dataset_download_file(DATASET, name, path=download_dir, force=True, quiet=True)
            _move_download(Path(download_dir), name, target)
    except SystemExit:  # the kaggle package exits when authentication fails
        raise MissingCredentialsError(f"{name}: Kaggle rejected the credentials") from None
    except Exception as error:
        raise SourceError(f"{name}: Kaggle download failed: {error}") from error
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def _move_download(download_dir: Path, name: str, target: Path) -> None:
    """Kaggle serves large files zipped; unpack `name` from the archive if so."""
    plain, zipped = download_dir / name, download_dir / f"{name}.zip"
    if zipped.is_file():
        with zipfile.ZipFile(zipped) as archive, archive.open(name) as member, open(plain, "wb") as out:
            shutil.copyfileobj(member, out, 1 << 22)
    if not plain.is_file():
        raise SourceError(f"{name}: not found in the Kaggle dataset {DATASET}")
    plain.replace(target)
