"""The flows' image tag is a hash of what the image is built from; the registry check speaks the v2 API."""

from __future__ import annotations

import base64
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flowops.render.image import ImageError, ImageRef, image_tag, registry_has

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def image_inputs(tmp_path) -> Path:
    for name in ("Dockerfile", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_tag_is_stable_and_names_what_it_is(image_inputs):
    tag = image_tag(image_inputs)
    assert tag.startswith("flows-")
    assert len(tag) == len("flows-") + 12
    assert image_tag(image_inputs) == tag


def test_a_base_image_other_than_the_dockerfiles_default_changes_the_tag(image_inputs):
    default = image_tag(image_inputs)
    mirrored = image_tag(image_inputs, base_image="localhost:5000/debian-base:bookworm")
    assert mirrored != default
    assert image_tag(image_inputs, base_image="registry.example/prefect:3.9.1") not in (default, mirrored)


def test_a_dockerfile_change_changes_the_tag(image_inputs):
    before = image_tag(image_inputs)
    with (image_inputs / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("LABEL changed=yes\n")
    assert image_tag(image_inputs) != before


def test_code_and_dev_dependencies_do_not_change_the_tag_but_the_flows_dependencies_do(image_inputs):
    before = image_tag(image_inputs)
    (image_inputs / "flows").mkdir()
    (image_inputs / "flows" / "new.py").write_text("print('code only')\n")
    assert image_tag(image_inputs) == before  # the code reaches workers by git_clone, not in the image

    pyproject = image_inputs / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pytest>=8",', '"pytest>=8.1",'))
    assert image_tag(image_inputs) == before  # a dev-only requirement: same flows set

    lock = image_inputs / "uv.lock"
    text = lock.read_text()
    digit = text.index("sha256:", text.index('name = "pyarrow"')) + len("sha256:")
    flipped = "1" if text[digit] == "0" else "0"
    lock.write_text(text[:digit] + flipped + text[digit + 1 :])  # another build of a pinned flows dependency
    assert image_tag(image_inputs) != before  # a different pin of a flows dependency


@pytest.mark.parametrize(
    ("name", "registry", "repository"),
    [
        ("ghcr.io/acme/flows", "ghcr.io", "acme/flows"),
        ("localhost:5000/flows", "localhost:5000", "flows"),
        ("flows", "registry-1.docker.io", "library/flows"),
        ("acme/flows", "registry-1.docker.io", "acme/flows"),
    ],
)
def test_an_image_name_splits_into_registry_and_repository(name, registry, repository):
    ref = ImageRef(name, "t")
    assert (ref.registry, ref.repository, str(ref)) == (registry, repository, f"{name}:t")


class _Registry(BaseHTTPRequestHandler):
    """A registry that wants a Bearer token (as ghcr.io does), got with basic auth from its /token realm."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        expected = "Basic " + base64.b64encode(b"bot:pw").decode()
        if self.path.startswith("/token?") and self.headers.get("Authorization") == expected:
            self._reply(200, b'{"token": "t0ken"}')
        else:
            self._reply(401, b"{}")

    realm = None  # where the challenge sends clients for a token; default: this registry itself

    def do_HEAD(self):
        if self.headers.get("Authorization") != "Bearer t0ken":
            realm = self.realm or f"http://{self.headers['Host']}/token"
            self._reply(401, b"", {"WWW-Authenticate": f'Bearer realm="{realm}",service="reg",scope="pull"'})
            return
        repository, tag = self.path.removeprefix("/v2/").rsplit("/manifests/", 1)
        self._reply(200 if (repository, tag) == ("acme/flows", "flows-present") else 404, b"")

    def _reply(self, status, body, headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@pytest.fixture
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"localhost:{server.server_port}"
    server.shutdown()
    server.server_close()  # its listening socket too


def test_the_registry_check_follows_the_token_challenge_and_tells_present_from_missing(registry):
    assert registry_has(ImageRef(f"{registry}/acme/flows", "flows-present"), "bot", "pw") is True
    assert registry_has(ImageRef(f"{registry}/acme/flows", "flows-missing"), "bot", "pw") is False


def test_rejected_registry_credentials_are_a_clear_error(registry):
    with pytest.raises(ImageError, match="token request failed with 401 \\(check the registry credentials\\)"):
        registry_has(ImageRef(f"{registry}/acme/flows", "flows-present"), "bot", "wrong")


class _BasicRegistry(_Registry):
    """A registry that wants Basic auth on every request (docker-registry with an htpasswd file)."""

    def do_HEAD(self):
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"bot:pw").decode():
            self._reply(401, b"", {"WWW-Authenticate": 'Basic realm="registry"'})
            return
        repository, tag = self.path.removeprefix("/v2/").rsplit("/manifests/", 1)
        self._reply(200 if (repository, tag) == ("acme/flows", "flows-present") else 404, b"")


def test_a_registry_that_wants_basic_auth_gets_it_and_a_missing_or_wrong_login_is_one_clear_error():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    registry = f"localhost:{server.server_port}"
    try:
        assert registry_has(ImageRef(f"{registry}/acme/flows", "flows-present"), "bot", "pw") is True
        assert registry_has(ImageRef(f"{registry}/acme/flows", "flows-missing"), "bot", "pw") is False
        with pytest.raises(ImageError, match=f"registry {registry} wants a login: set REGISTRY_USERNAME"):
            registry_has(ImageRef(f"{registry}/acme/flows", "flows-present"))
        with pytest.raises(ImageError, match=f"registry {registry} refused the login for .*: check the registry"):
            registry_has(ImageRef(f"{registry}/acme/flows", "flows-present"), "bot", "wrong")
    finally:
        server.shutdown()
        server.server_close()  # its listening socket too


@pytest.mark.parametrize(
    "realm", ["http://collector.example:8080/token", "https://evil.example/token", "http://127.0.0.2:1/token"]
)
def test_registry_credentials_are_never_sent_to_a_realm_on_another_site(registry, realm, monkeypatch):
    monkeypatch.setattr(_Registry, "realm", realm)
    with pytest.raises(ImageError, match=f"asks for its credentials at {realm}: .* they were not sent"):
        registry_has(ImageRef(f"{registry}/acme/flows", "flows-present"), "bot", "pw")


@pytest.mark.parametrize(
    ("realm", "registry", "allowed"),
    [
        ("https://ghcr.io/token", "ghcr.io", True),
        ("https://auth.docker.io/token", "registry-1.docker.io", True),
        ("http://auth.docker.io/token", "registry-1.docker.io", False),  # same site, but in clear text
        ("https://ghcr.io.evil.example/token", "ghcr.io", False),
        ("http://localhost:5000/token", "localhost:5000", True),  # the registry itself, as it is reached
    ],
)
def test_which_realms_may_receive_the_credentials(realm, registry, allowed):
    from flowops.render.image import _may_receive_credentials

    assert _may_receive_credentials(realm, registry) is allowed


@pytest.mark.parametrize(
    ("name", "login"),
    [("ghcr.io/acme/flows", "ghcr.io"), ("acme/flows", "index.docker.io"), ("localhost:5443/flows", "localhost:5443")],
)
def test_the_registry_a_login_is_saved_for_is_the_one_docker_login_names(name, login):
    assert ImageRef(name, "t").login_registry == login
