"""Fetching sources over HTTP from a local server, with the download cache."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from flows.ecommerce.sources import MissingCredentialsError, SourceError, fetch


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
def http_server(sample_month):
    downloads: list[str] = []
    handler = type("Handler", (_CountingHandler,), {"downloads": downloads})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(sample_month.parent))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", downloads, handler
    server.shutdown()


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


def test_local_paths_and_file_urls_are_read_in_place(sample_month, tmp_path):
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
