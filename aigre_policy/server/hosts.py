"""The ``Host`` header check: a defence against DNS rebinding.

A page on an attacker's domain whose name the attacker points at 127.0.0.1 makes the
browser send requests to a server on loopback, where the server may answer with no
credentials; the request still names the attacker's domain in ``Host``. So a request
is served only when its ``Host`` is one this server answers to: the config's
``allowed_hosts``, or by default, for a server bound to loopback, the bound host,
``localhost``, ``127.0.0.1`` and ``::1``. A server bound elsewhere (which ``serve``
refuses without credentials) answers any host unless ``allowed_hosts`` names them.

Matching is Starlette's ``TrustedHostMiddleware`` (``example.com``, ``*.example.com``,
``*``); a refused request gets 400 with the server's problem document.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from aigre_policy.server.http import Problem, problem_response

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
_ACCEPTED = "aigre.host_allowed"
SEEN_HOSTS = 256


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(configured: Sequence[str] | None, bound_host: str) -> list[str]:
    """The host patterns served: the configured ones, else the default for ``bound_host``."""
    if configured is not None:
        return list(configured)
    if not is_loopback(bound_host):
        return ["*"]
    bound = bound_host.lower()
    names = [*LOOPBACK_NAMES, bound]
    if ":" in bound and not bound.startswith("["):  # an IPv6 literal, as Host writes it
        names.append(f"[{bound}]")
    return list(dict.fromkeys(names))


async def _accepted(scope: Scope, receive: Receive, send: Send) -> None:
    scope[_ACCEPTED] = True


async def _silent(message: object) -> None:
    """Starlette's own plain-text refusal is not sent: ours is a problem document."""


class AllowedHosts:
    """Serve a request only when its ``Host`` matches ``hosts`` (pure ASGI)."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]):
        self.app = app
        self.hosts = list(hosts)
        self.any = "*" in self.hosts
        self._match = TrustedHostMiddleware(_accepted, allowed_hosts=self.hosts, www_redirect=False)
        # each Host value's answer, kept for the few values clients send (a tenth of the
        # cost of an evaluation otherwise); bounded, so random values are only matched
        self._seen: dict[bytes | None, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        allowed = self._seen.get(host)
        if allowed is None:
            probe = {"type": scope["type"], "headers": scope["headers"]}
            await self._match(probe, receive, _silent)
            allowed = bool(probe.get(_ACCEPTED))
            if len(self._seen) < SEEN_HOSTS:
                self._seen[host] = allowed
        if allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        named = (host or b"").decode("latin-1")
        problem = Problem(
            400,
            "invalid_host",
            f"this server does not answer to the host {named[:100]!r}; "
            "add it to `allowed_hosts` in the server's config",
        )
        await problem_response(problem)(scope, receive, send)
