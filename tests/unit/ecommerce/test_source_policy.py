"""Which sources the flow reads: run parameters are chosen by anyone who may start a run."""

from __future__ import annotations

import os

import pytest

from flows.ecommerce.sources import SourceRefusedError, check_source


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "2019-Oct.csv").write_text("event_time\n")
    monkeypatch.setenv("ECOMMERCE_DATA_DIR", str(folder))
    monkeypatch.delenv("ECOMMERCE_ALLOWED_URLS", raising=False)
    return folder


def refusal(source: str, any_local_path: bool = False) -> str | None:
    try:
        check_source(source, any_local_path)
    except SourceRefusedError as error:
        return str(error)
    return None


@pytest.mark.parametrize(
    "source",
    ["2019-Oct.csv", "https://example.com/events/2019-Oct.csv", "https://example.com/x.csv?sig=abc"],
)
def test_kaggle_names_and_https_urls_are_read(data_dir, source):
    assert refusal(source) is None


def test_local_paths_are_read_only_under_the_data_dir_however_they_are_spelled(data_dir, tmp_path):
    inside = data_dir / "2019-Oct.csv"
    outside = tmp_path / "secret.csv"
    outside.write_text("x\n")
    (data_dir / "link.csv").symlink_to(outside)
    assert refusal(str(inside)) is None
    assert refusal(inside.as_uri()) is None
    assert refusal(f"file://localhost{inside}") is None
    for source in (str(outside), outside.as_uri(), str(data_dir / ".." / "secret.csv"), str(data_dir / "link.csv"),
                   "/proc/self/environ", "file:///proc/self/environ"):  # fmt: skip
        assert refusal(source) == (
            f"{source}: refused, a local path outside $ECOMMERCE_DATA_DIR; allowed: Kaggle file names (2019-Oct.csv), "
            "https:// URLs, object-store URLs with an installed fsspec backend (s3://, s3a://, gs://, gcs://, az://, "
            "abfs://, oci://, oss://), local paths under $ECOMMERCE_DATA_DIR, URLs under $ECOMMERCE_ALLOWED_URLS"
        )
    assert refusal(str(outside), any_local_path=True) is None  # the ingest CLI: a person's own files


def test_a_second_data_dir_is_separated_by_the_path_separator(data_dir, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("ECOMMERCE_DATA_DIR", f"{data_dir}{os.pathsep}{other}")
    assert refusal(str(other / "2019-Nov.csv")) is None
    monkeypatch.delenv("ECOMMERCE_DATA_DIR")
    assert "refused, a local path, and $ECOMMERCE_DATA_DIR is not set" in refusal(str(data_dir / "2019-Oct.csv"))


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("memory://x.csv", "memory:// is not a kind this flow reads"),
        ("ftp://files.example.com/x.csv", "ftp:// is not a kind this flow reads"),
        ("http://169.254.169.254/latest/meta-data", "http:// is not a kind this flow reads"),
        ("file://otherhost/x.csv", "file:// is not a kind this flow reads"),
        ("zip://2019-Oct.csv::https://example.com/x.zip", "a chained fsspec URL"),
        ("https://example.com/a.csv::file:///etc/passwd", "a chained fsspec URL"),
        ("..", "not a Kaggle file name"),
        ("", "empty or holding control characters"),
        ("https://example.com/x.csv\nfile:///etc/passwd", "empty or holding control characters"),
        ("gs://bucket/x.csv", "the fsspec backend for gs:// is not installed (Please install gcsfs"),
    ],
)
def test_other_kinds_are_refused_naming_why(data_dir, source, reason):
    assert f"refused, {reason}" in refusal(source)


def test_plain_http_is_read_only_under_an_allowed_prefix_compared_part_by_part(data_dir, monkeypatch):
    monkeypatch.setenv("ECOMMERCE_ALLOWED_URLS", "http://127.0.0.1:8080/data/, http://mirror.internal")
    assert refusal("http://127.0.0.1:8080/data/2019-Oct.csv") is None
    assert refusal("http://127.0.0.1:8080/data") is None
    assert refusal("http://mirror.internal/any/where.csv") is None
    assert refusal("http://user:pass@127.0.0.1:8080/data/x.csv") is None  # credentials do not move the host
    for source in (
        "http://127.0.0.1:80800/data/x.csv",  # not a port
        "http://127.0.0.1:8081/data/x.csv",
        "http://127.0.0.1:8080/database.csv",  # a prefix of the folder's name is not the folder
        "http://127.0.0.1:8080/data/../admin",  # a client resolves `..` before sending
        "http://127.0.0.1:8080/data/%2e%2e/admin",
        "http://127.0.0.1:8080@evil.example/data/x.csv",
        "http://evil.example\\@127.0.0.1:8080/data/x.csv",
        "http://mirror.internal.evil.example/x.csv",
    ):
        assert "refused, http:// is not a kind" in (refusal(source) or "") or "backslash" in refusal(source), source


def test_a_refused_url_shows_no_credential(data_dir):
    message = refusal("ftp://reader:hunter2-canary@files.example.com/x.csv")
    assert "hunter2-canary" not in message
    assert message.startswith("ftp://reader:***@files.example.com/x.csv: refused")


@pytest.mark.parametrize(
    "source",
    [
        "https://127.0.0.1/2019-Oct.csv",
        "https://10.1.2.3/2019-Oct.csv",
        "https://192.168.0.10/x.csv",
        "https://169.254.169.254/latest/meta-data",  # a cloud's metadata service
        "https://100.64.0.1/x.csv",
        "https://0.0.0.0/x.csv",
    ],
)
def test_https_to_an_internal_address_is_refused_unless_the_operator_allows_it(data_dir, monkeypatch, source):
    host = source.split("/")[2]
    assert f"refused, https to an internal address ({host})" in refusal(source)
    monkeypatch.setenv("ECOMMERCE_ALLOWED_URLS", f"https://{host}/")
    assert refusal(source) is None
