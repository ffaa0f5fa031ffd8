"""Where event files come from: the Kaggle dataset, any fsspec URL, or a local path.

A bare file name such as `2019-Oct.csv` is that file of the Kaggle dataset; anything with a
scheme (`file://`, `http(s)://`, `s3://` when s3fs is installed) or a path is read through fsspec.
Remote files are downloaded once into a cache and verified (size, sha256) on reuse, so a retried
task does not download again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from .parse import sha256_of
from .redact import redact, secrets_of
from .schema import DATASET

CACHE_DIR_VARIABLE = "ECOMMERCE_CACHE_DIR"
_KAGGLE_ENVIRONMENT_LOCK = threading.Lock()
KAGGLE_SECRET_BLOCK = "kaggle-credentials"  # noqa: S105 - a block name, not a secret


class SourceError(RuntimeError):
    """A source cannot be fetched; the message names it and what is missing."""


class MissingCredentialsError(SourceError):
    """Kaggle credentials are missing or malformed: retrying will not help."""


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_VARIABLE):
        return Path(os.environ[CACHE_DIR_VARIABLE])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flowops" / "ecommerce"


def is_kaggle_file(source: str) -> bool:
    return "://" not in source and "/" not in source and "\\" not in source


def fetch(source: str, cache_dir: Path | None = None, kaggle_credentials: dict | None = None) -> Path:
    """A local path holding `source`'s bytes, downloading into the cache when needed. Errors never show a
    credential that the source URL carries (nor the exception they came from, which may)."""
    try:
        return _fetch(source, cache_dir or default_cache_dir(), kaggle_credentials)
    except SourceError as error:
        raise type(error)(redact(str(error), secrets_of(source)[1:])) from None


def _fetch(source: str, cache_dir: Path, kaggle_credentials: dict | None) -> Path:
    if is_kaggle_file(source):
        return _fetch_kaggle(source, cache_dir, kaggle_credentials)
    scheme = urlsplit(source).scheme
    if not scheme or len(scheme) == 1:  # a plain path (a Windows drive letter is not a scheme)
        return _existing(Path(source), source)
    if scheme == "file":
        return _existing(Path(urlsplit(source).path), source)
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
        filesystem, remote_path = fsspec.core.url_to_fs(source)
        expected_size = filesystem.info(remote_path).get("size")
        # One streaming GET for HTTP; other filesystems choose their own block size.
        options = {"block_size": 0} if scheme in ("http", "https") else {}
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
        raise SourceError(f"{source}: download failed: {error}") from error
    partial.replace(target)
    _record(target, source, digest.hexdigest())
    return target


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
