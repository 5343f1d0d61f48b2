"""What the deployment protection route asks of GitHub's REST API, through one HTTP client.

``GitHubApi`` reads the reviews of a deployment's pull requests (``GET
/repos/{owner}/{repo}/pulls/{n}/reviews``), the pull requests of the deployed commit when
the delivery lists none (``GET /repos/{owner}/{repo}/commits/{sha}/pulls``), and posts the
answer to the callback URL. Its token is a static one from the config, or an App
installation token: a JWT signed with the App's private key (RS256, PyJWT) bought at
``POST /app/installations/{id}/access_tokens`` and kept until a minute before it expires.
The client is an ``httpx.Client``, injectable so tests reach a fake API on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from aigre_policy.adapters.github import Deployment
from aigre_policy.server.webhooks_config import GitHubWebhook

API_VERSION = "2022-11-28"
MAX_PAGES = 10  # 1,000 reviews of one pull request: past that, the rest are not read


class GitHubApiError(Exception):
    """GitHub did not answer as expected: the delivery is not judged (it stays pending)."""


class GitHubApi:
    def __init__(
        self,
        config: GitHubWebhook,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.base = config.api_url.rstrip("/")
        self.client = client or httpx.Client(timeout=config.timeout_seconds)
        self._clock = clock
        self._static = config.token.read("webhooks.github.token") if config.token else None
        self._app = config.app
        self._app_key = (
            config.app.private_key.read("webhooks.github.app.private_key") if config.app else None
        )
        self._cached: tuple[str, float] | None = None  # (token, when to buy a new one)
        self._lock = threading.Lock()

    # -- the token ------------------------------------------------------------------------

    def token(self) -> str:
        if self._static is not None:
            return self._static
        with self._lock:
            if self._cached is not None and self._clock() < self._cached[1]:
                return self._cached[0]
            self._cached = self._installation_token()
            return self._cached[0]

    def _installation_token(self) -> tuple[str, float]:
        import jwt  # PyJWT: a core dependency

        assert self._app is not None and self._app_key is not None
        now = int(self._clock())
        # GitHub accepts at most 10 minutes; issued a minute back for clock drift
        claims = {"iat": now - 60, "exp": now + 540, "iss": str(self._app.app_id)}
        try:
            signed = jwt.encode(claims, self._app_key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise GitHubApiError(f"the App's private key cannot sign: {exc}") from None
        url = f"{self.base}/app/installations/{self._app.installation_id}/access_tokens"
        reply = self._send("POST", url, signed)
        if reply.status_code != 201:
            raise GitHubApiError(f"no installation token: {url} answered {reply.status_code}")
        data = _json(reply, url)
        token, expires = data.get("token"), data.get("expires_at")
        if not isinstance(token, str) or not token:
            raise GitHubApiError(f"no installation token in the answer of {url}")
        try:
            until = datetime.fromisoformat(str(expires).replace("Z", "+00:00")).timestamp()
        except ValueError:
            until = now + 3000.0  # installation tokens last an hour
        return token, min(until - 60, now + 3540.0)

    # -- reading --------------------------------------------------------------------------

    def reviews(self, deployment: Deployment) -> dict[int, list[Any]]:
        """Each pull request's reviews, by number (every page, up to ``MAX_PAGES``)."""
        found: dict[int, list[Any]] = {}
        for pull in deployment.pull_requests:
            number = pull["number"]
            url = f"{self.base}/repos/{deployment.repository}/pulls/{number}/reviews"
            found[number] = self._pages(url)
        return found

    def pulls(self, deployment: Deployment) -> list[Any]:
        """The pull requests that made the deployed commit: open with it as their head, or
        merged as it. Others listing the commit (a branch built on it) approve nothing."""
        url = f"{self.base}/repos/{deployment.repository}/commits/{deployment.sha}/pulls"
        made = []
        for pull in self._pages(url):
            if not isinstance(pull, Mapping):
                continue
            head = pull.get("head")
            head_sha = head.get("sha") if isinstance(head, Mapping) else None
            merged_as = pull.get("merge_commit_sha") if pull.get("merged_at") else None
            if deployment.sha in (head_sha, merged_as):
                made.append(pull)
        return made

    def _pages(self, url: str) -> list[Any]:
        items: list[Any] = []
        next_url: str | None = f"{url}?per_page=100"
        for _ in range(MAX_PAGES):
            if next_url is None:
                break
            reply = self._send("GET", next_url, self.token())
            if reply.status_code != 200:
                raise GitHubApiError(f"{url} answered {reply.status_code}")
            page = _json(reply, url)
            if not isinstance(page, list):
                raise GitHubApiError(f"{url} did not answer a list")
            items.extend(page)
            following = reply.links.get("next", {}).get("url")
            # only pages of the same API: a Link header elsewhere would carry the token away
            next_url = following if following and following.startswith(self.base + "/") else None
        return items

    # -- answering ------------------------------------------------------------------------

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """The adapter's ``Post``: the callback URL it already checked is under ``api_url``."""
        reply = self.client.post(url, content=body, headers=dict(headers))
        return reply.status_code

    def _send(self, method: str, url: str, token: str) -> httpx.Response:
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
        }
        try:
            return self.client.request(method, url, headers=headers)
        except httpx.HTTPError as exc:
            raise GitHubApiError(f"{url}: {type(exc).__name__}") from None

    def close(self) -> None:
        self.client.close()


def _json(reply: httpx.Response, url: str) -> Any:
    try:
        return reply.json()
    except ValueError:
        raise GitHubApiError(f"{url} did not answer JSON") from None
