"""The Kaggle source through the real kaggle client, against a local stand-in for Kaggle's API.

The kaggle package talks to http://localhost (port 80) when its command-line arguments hold `--local`
(`KaggleApi.args`, which its own CLI sets). The stand-in answers DownloadDataset as Kaggle does: a
redirect to the file, zipped as Kaggle serves large files.
"""

from __future__ import annotations

import base64
import email.utils
import errno
import http.server
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from flows.ecommerce.schema import DATASET
from flows.ecommerce.sources import SourceError, fetch

KAGGLE_LOCAL_PORT = 80


class _FakeKaggle(http.server.BaseHTTPRequestHandler):
    archives: dict[str, Path]
    requests: list[dict]
    username = "shop-analyst"
    key = "k-123"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.key}".encode()).decode()
        self.requests.append({"path": self.path, "body": body, "authorized": self.headers["Authorization"] == expected})
        if self.headers["Authorization"] != expected:
            return self._send(401, b'{"code": 401, "message": "Unauthenticated"}', "application/json")
        if body.get("fileName") not in self.archives:
            return self._send(404, b'{"code": 404, "message": "Not found"}', "application/json")
        self.send_response(302)
        self.send_header("Location", f"/files/{body['fileName']}.zip")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None

    def do_GET(self):
        name = self.path.removeprefix("/files/").removesuffix(".zip")
        archive = self.archives[name]
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(archive.stat().st_size))
        self.send_header("Last-Modified", email.utils.formatdate(archive.stat().st_mtime, usegmt=True))
        self.end_headers()
        self.wfile.write(archive.read_bytes())

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def bind_when_free(handler, timeout: float = 180) -> http.server.ThreadingHTTPServer:
    """The stand-in on port 80, waiting while another test holds it: the suite runs in two processes, and the CI
    workflow's own test run (under act, tests/workflows) may be using it at the same moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http.server.ThreadingHTTPServer(("127.0.0.1", KAGGLE_LOCAL_PORT), handler)
        except OSError as error:
            if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def fake_kaggle(sample_month, tmp_path, monkeypatch):
    archive = tmp_path / f"{sample_month.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(sample_month, sample_month.name)
    requests: list[dict] = []
    handler = type("Handler", (_FakeKaggle,), {"archives": {sample_month.name: archive}, "requests": requests})
    server = bind_when_free(handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "args", ["--local"])
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    yield requests
    server.shutdown()
    server.server_close()  # its listening socket too


def test_a_bare_file_name_is_downloaded_from_the_dataset_unzipped_and_cached(fake_kaggle, sample_month, tmp_path):
    credentials = {"username": _FakeKaggle.username, "key": _FakeKaggle.key}
    path = fetch(sample_month.name, cache_dir=tmp_path / "cache", kaggle_credentials=credentials)
    assert path.read_bytes() == sample_month.read_bytes()
    owner, dataset = DATASET.split("/")
    assert fake_kaggle == [
        {
            "path": "/api/v1/datasets.DatasetApiService/DownloadDataset",
            "body": {"ownerSlug": owner, "datasetSlug": dataset, "fileName": sample_month.name},
            "authorized": True,
        }
    ]
    again = fetch(sample_month.name, cache_dir=tmp_path / "cache", kaggle_credentials=credentials)
    assert again == path
    assert len(fake_kaggle) == 1  # the retry found the verified cache entry
    assert "KAGGLE_KEY" not in os.environ  # the block's key was only lent to the kaggle client


def test_credentials_from_the_environment_work_too(fake_kaggle, sample_month, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", _FakeKaggle.username)
    monkeypatch.setenv("KAGGLE_KEY", _FakeKaggle.key)
    assert fetch(sample_month.name, cache_dir=tmp_path).read_bytes() == sample_month.read_bytes()


def test_rejected_credentials_and_unknown_files_are_clear_errors(fake_kaggle, sample_month, tmp_path):
    wrong = {"username": "someone", "key": "wrong"}
    with pytest.raises(SourceError, match=rf"^{sample_month.name}: Kaggle download failed: .*Unauthenticated"):
        fetch(sample_month.name, cache_dir=tmp_path / "cache", kaggle_credentials=wrong)
    right = {"username": _FakeKaggle.username, "key": _FakeKaggle.key}
    with pytest.raises(SourceError, match=r"^2021-Jan\.csv: Kaggle download failed: .*Not found"):
        fetch("2021-Jan.csv", cache_dir=tmp_path / "cache", kaggle_credentials=right)
    assert not [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
