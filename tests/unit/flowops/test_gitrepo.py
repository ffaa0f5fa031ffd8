"""Listing a repository's branches for gc: real git, against repositories on disk and a local HTTP server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flowops.gitrepo import GitError, remote_branches
from flowops.local import git


def test_the_branches_of_a_repository_on_disk(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "--quiet", "--initial-branch", "main")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "--allow-empty", "-m", "one")
    git(work, "branch", "feature/a")
    git(work, "tag", "v1")  # tags are not branches
    assert remote_branches(tmp_path, str(work)) == {"main", "feature/a"}


def test_an_option_is_not_a_repository(tmp_path):
    with pytest.raises(GitError, match="not a repository: '--upload-pack=touch pwned'"):
        remote_branches(tmp_path, "--upload-pack=touch pwned")


def test_a_failure_names_the_repository_without_its_credentials_and_sends_no_token_over_http(tmp_path):
    seen: list[dict] = []

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(dict(self.headers))
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://reader:hunter2-canary@127.0.0.1:{server.server_port}/repo.git"
    try:
        with pytest.raises(GitError) as raised:
            remote_branches(tmp_path, url, token="ghp_canarytoken")
    finally:
        server.shutdown()
        server.server_close()  # its listening socket too
    assert str(raised.value).startswith(f"cannot list the branches of http://***@127.0.0.1:{server.server_port}/")
    assert "hunter2-canary" not in str(raised.value)
    assert seen  # git did ask the server
    assert all("ghp_canarytoken" not in str(headers) for headers in seen)
