"""Fetching sources over HTTP from a local server, with the download cache."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from typing import ClassVar

import pytest

from flows.ecommerce.sources import MissingCredentialsError, SourceError, SourceRefusedError, fetch


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    downloads: list[str]
    lie_about_length = False

    def log_message(self, *args) -> None:
        pass

    def do_GET(self):
        self.downloads.append(self.path)  # fsspec may read in ranged requests: count every GET
        return super().do_GET()

    def send_header(self, keyword, value):
        if keyword == "Content-Length" and self.lie_about_length and self.command == "HEAD":
            value = str(int(value) + 100)
        super().send_header(keyword, value)


@pytest.fixture
def http_server(sample_month, monkeypatch):
    downloads: list[str] = []
    handler = type("Handler", (_CountingHandler,), {"downloads": downloads})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(sample_month.parent))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("ECOMMERCE_ALLOWED_URLS", base)  # plain http is read only where the operator allows it
    yield base, downloads, handler
    server.shutdown()
    server.server_close()  # its listening socket too


def test_an_http_file_is_downloaded_once_and_verified(http_server, sample_month, tmp_path):
    base, downloads, _ = http_server
    url = f"{base}/{sample_month.name}"
    first = fetch(url, cache_dir=tmp_path)
    assert first.read_bytes() == sample_month.read_bytes()
    requests_for_first = len(downloads)
    second = fetch(url, cache_dir=tmp_path)
    assert second == first
    assert requests_for_first >= 1
    assert len(downloads) == requests_for_first


def test_a_dataset_file_name_is_read_from_the_operators_mirror_instead_of_kaggle(
    http_server, sample_month, tmp_path, monkeypatch
):
    base, downloads, _ = http_server
    monkeypatch.delenv("ECOMMERCE_ALLOWED_URLS")  # the mirror is the operator's: no allow-list needed
    # by a name that resolves to an internal address, as a mirror inside the network is (compose's `mirror`)
    base = base.replace("127.0.0.1", "localhost")
    monkeypatch.setenv("ECOMMERCE_MIRROR_URL", f"{base}/")
    fetched = fetch(sample_month.name, cache_dir=tmp_path)  # no Kaggle credentials anywhere
    assert fetched.read_bytes() == sample_month.read_bytes()
    assert downloads
    assert set(downloads) == {f"/{sample_month.name}"}
    with pytest.raises(SourceError, match=f"{base}/2020-Feb.csv: download failed"):
        fetch("2020-Feb.csv", cache_dir=tmp_path)


def test_a_corrupted_cache_entry_is_downloaded_again(http_server, sample_month, tmp_path):
    base, downloads, _ = http_server
    url = f"{base}/{sample_month.name}"
    cached = fetch(url, cache_dir=tmp_path)
    requests_for_first = len(downloads)
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")
    assert fetch(url, cache_dir=tmp_path).read_bytes() == sample_month.read_bytes()
    assert len(downloads) > requests_for_first


def test_a_truncated_download_is_an_error_and_is_not_cached(http_server, sample_month, tmp_path):
    base, _, handler = http_server
    handler.lie_about_length = True
    with pytest.raises(SourceError, match="download truncated"):
        fetch(f"{base}/{sample_month.name}", cache_dir=tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_missing_http_file_names_the_url(http_server, tmp_path):
    base, _, _ = http_server
    with pytest.raises(SourceError, match=f"^{base}/2020-Feb.csv: download failed"):
        fetch(f"{base}/2020-Feb.csv", cache_dir=tmp_path)


def test_local_paths_and_file_urls_are_read_in_place(sample_month, tmp_path, monkeypatch):
    monkeypatch.setenv("ECOMMERCE_DATA_DIR", f"{sample_month.parent}{os.pathsep}{tmp_path}")
    assert fetch(str(sample_month), cache_dir=tmp_path) == sample_month
    assert fetch(sample_month.as_uri(), cache_dir=tmp_path) == sample_month
    with pytest.raises(SourceError, match="no such file"):
        fetch(str(tmp_path / "missing.csv"), cache_dir=tmp_path)


def test_a_kaggle_file_without_credentials_says_what_is_missing(tmp_path, monkeypatch):
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    with pytest.raises(MissingCredentialsError, match=r"KAGGLE_API_TOKEN .*Secret block 'kaggle-credentials'"):
        fetch("2019-Oct.csv", cache_dir=tmp_path)


def test_a_person_at_the_ingest_cli_may_read_any_local_path_and_a_flow_only_under_its_data_dir(
    sample_month, tmp_path, monkeypatch
):
    monkeypatch.delenv("ECOMMERCE_DATA_DIR", raising=False)
    with pytest.raises(SourceRefusedError, match=r"refused, a local path, and \$ECOMMERCE_DATA_DIR is not set"):
        fetch(str(sample_month), cache_dir=tmp_path)
    assert fetch(str(sample_month), cache_dir=tmp_path, any_local_path=True) == sample_month
    with pytest.raises(SourceRefusedError, match="refused, ftp:// is not a kind this flow reads"):
        fetch("ftp://127.0.0.1/2019-Oct.csv", cache_dir=tmp_path, any_local_path=True)  # URLs: the same policy


def test_an_object_store_url_is_read_through_its_installed_fsspec_backend(sample_month, tmp_path):
    """No S3 here: fsspec's in-memory filesystem, registered under `s3`, stands in for s3fs (same interface)."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem
    from fsspec.registry import _registry

    with pytest.raises(SourceRefusedError, match=r"the fsspec backend for s3:// is not installed \(Install s3fs"):
        fetch("s3://bucket/2019-Oct.csv", cache_dir=tmp_path)

    class StandInS3(MemoryFileSystem):
        protocol = ("s3",)
        store: ClassVar[dict] = {}  # its own files, apart from memory://
        pseudo_dirs: ClassVar[list] = [""]

        @classmethod
        def _strip_protocol(cls, path):
            return super()._strip_protocol(path.removeprefix("s3://"))

    fsspec.register_implementation("s3", StandInS3, clobber=True)
    try:
        StandInS3().pipe("/bucket/2019-Oct.csv", sample_month.read_bytes())
        path = fetch("s3://bucket/2019-Oct.csv", cache_dir=tmp_path)
        assert path.read_bytes() == sample_month.read_bytes()
        assert path.is_relative_to(tmp_path)  # downloaded into the cache
    finally:
        _registry.pop("s3", None)


def test_a_redirect_is_followed_only_to_a_source_the_flow_would_read_itself(sample_month, tmp_path, monkeypatch):
    """The allowed prefix is /files/; /elsewhere/ on the same server stands for an internal service."""

    class Redirecting(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self):
            self.redirect_or(super().do_HEAD)

        def do_GET(self):
            self.redirect_or(super().do_GET)

        def redirect_or(self, serve):
            if self.path.startswith("/files/moved/"):
                self.send_response(302)
                self.send_header("Location", "/files/" + self.path.rsplit("/", 1)[1])
                self.end_headers()
            elif self.path.startswith("/files/escape/"):
                self.send_response(302)
                self.send_header("Location", "/elsewhere/" + self.path.rsplit("/", 1)[1])
                self.end_headers()
            else:
                self.path = self.path.removeprefix("/files").removeprefix("/elsewhere")
                serve()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Redirecting, directory=str(sample_month.parent))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("ECOMMERCE_ALLOWED_URLS", f"{base}/files/")
    try:
        moved = fetch(f"{base}/files/moved/{sample_month.name}", cache_dir=tmp_path / "moved")
        assert moved.read_bytes() == sample_month.read_bytes()
        with pytest.raises(SourceRefusedError, match=f"^{base}/elsewhere/{sample_month.name}: refused, http://"):
            fetch(f"{base}/files/escape/{sample_month.name}", cache_dir=tmp_path / "escape")
        assert not [path for path in (tmp_path / "escape").rglob("*") if path.is_file()]
    finally:
        server.shutdown()
        server.server_close()  # its listening socket too
        server.server_close()


def test_https_to_a_name_that_resolves_to_loopback_is_refused_as_the_connection_is_made(tmp_path, monkeypatch):
    """`localhost` passes the check of the URL's text; the connection's own resolution refuses it, before any
    byte is sent. Under $ECOMMERCE_ALLOWED_URLS the connection is tried (and fails: nothing listens there)."""
    monkeypatch.delenv("ECOMMERCE_ALLOWED_URLS", raising=False)
    with pytest.raises(SourceRefusedError, match=r"https://localhost: refused, it resolves to an internal address"):
        fetch("https://localhost:9/2019-Oct.csv", cache_dir=tmp_path)
    monkeypatch.setenv("ECOMMERCE_ALLOWED_URLS", "https://localhost:9/")
    with pytest.raises(SourceError) as error:
        fetch("https://localhost:9/2019-Oct.csv", cache_dir=tmp_path)
    assert not isinstance(error.value, SourceRefusedError)
    assert "download failed" in str(error.value)
