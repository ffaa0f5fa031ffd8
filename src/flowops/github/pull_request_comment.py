"""One comment on a pull request that shows its branch deployments: the plan, then the deploy's result.

It is found again by a marker at its start, so every push updates the same comment instead of adding one.
GitHub's REST API (issue comments: every pull request is an issue):

    GET   {api}/repos/{owner}/{repo}/issues/{number}/comments?per_page=100&page=N   find the marked comment
    POST  {api}/repos/{owner}/{repo}/issues/{number}/comments                     {"body": ...} the first time
    PATCH {api}/repos/{owner}/{repo}/issues/comments/{id}                          {"body": ...} afterwards

The token is the job's GITHUB_TOKEN (`pull-requests: write`); the API is GITHUB_API_URL, so GitHub Enterprise
Server works the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from flowops.errors import FlowopsError

MARKER = "<!-- flowops:branch-deployments -->"
API_VERSION = "2022-11-28"
PAGE_SIZE = 100


class CommentError(FlowopsError):
    pass


class PullRequestComment:
    def __init__(self, api_url: str, repository: str, number: int, token: str) -> None:
        self._issue = f"{api_url.rstrip('/')}/repos/{repository}/issues"
        self._number = number
        self._headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
        }
        self._comment_id: int | None = None

    @classmethod
    def from_environment(cls, number: int, environ: Mapping[str, str] = os.environ) -> PullRequestComment | None:
        """The comment for pull request `number` in GitHub Actions; None without GITHUB_TOKEN (nothing to post)."""
        token = environ.get("GITHUB_TOKEN")
        if not token:
            return None
        api_url = environ.get("GITHUB_API_URL") or "https://api.github.com"
        repository = environ.get("GITHUB_REPOSITORY")
        if not repository:
            raise CommentError("GITHUB_REPOSITORY is not set: cannot comment on the pull request")
        return cls(api_url, repository, number, token)

    def show(self, markdown: str) -> None:
        """Make the comment say `markdown`: update ours when there is one, else create it."""
        body = f"{MARKER}\n{markdown}"
        with httpx.Client(headers=self._headers, timeout=30) as client:
            try:
                if self._comment_id is None:
                    self._comment_id = self._find(client)
                if self._comment_id is None:
                    response = client.post(f"{self._issue}/{self._number}/comments", json={"body": body})
                    _check(response, "create")
                    self._comment_id = response.json()["id"]
                else:
                    _check(client.patch(f"{self._issue}/comments/{self._comment_id}", json={"body": body}), "update")
            except httpx.HTTPError as error:
                raise CommentError(f"cannot reach GitHub's API: {error}") from None

    def _find(self, client: httpx.Client) -> int | None:
        """Our earlier comment: marked, and written by a bot (the job's token), never a person's quoting it."""
        page = 1
        while True:
            url = f"{self._issue}/{self._number}/comments"
            response = client.get(url, params={"per_page": PAGE_SIZE, "page": page})
            _check(response, "list")
            comments = response.json()
            for comment in comments:
                if (comment.get("body") or "").startswith(MARKER) and (comment.get("user") or {}).get("type") == "Bot":
                    return int(comment["id"])
            if len(comments) < PAGE_SIZE:
                return None
            page += 1


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        status = f"{response.status_code} {response.reason_phrase}"
        raise CommentError(f"GitHub refused to {what} the pull request comment: {status}")
