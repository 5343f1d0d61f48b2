"""The ASGI application: the routes of every API family over one ``Runtime``.

``create_app(runtime)`` is what uvicorn serves and what tests drive. Errors keep one
shape (``{"code", "message"}``): a refused request is a 4xx, a fault outside a
decision a 500; a fault inside a decision is answered by the route itself, with the
pack's fail-closed verdict. ``X-Request-ID`` is echoed on every answer; a request
naming a host the server does not answer to is refused first (``hosts``). On shutdown
the checks in flight are drained before the gate (ledger, log) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aigre_policy.server import (
    approvals,
    authzen,
    health,
    inbox,
    metrics,
    native,
    reload,
    webhooks,
)
from aigre_policy.server.fast import DataFastPath
from aigre_policy.server.hosts import AllowedHosts, allowed_hosts
from aigre_policy.server.http import JSONResponse, Problem, problem_response
from aigre_policy.server.runtime import Runtime

logger = logging.getLogger("aigre_policy.server")

DRAIN_SECONDS = 30.0


class RequestId:
    """Echo ``X-Request-ID`` on the answer (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        if wanted is None or len(wanted) > 200:
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", wanted)]
            await send(message)

        await self.app(scope, receive, send_with_id)


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem_response(exc, headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    logger.error("internal error on %s: %r", request.url.path, exc)
    body = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
    return JSONResponse(body, status_code=500)


def create_app(
    runtime: Runtime, *, drain_seconds: float = DRAIN_SECONDS, bound_host: str = "127.0.0.1"
) -> Any:
    """The server as an ASGI app (wrapped to echo ``X-Request-ID``), answering only the
    ``Host`` headers allowed (``hosts``: the config's, else the defaults for
    ``bound_host``, the address the server listens on)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watching = None
        if runtime.config.reload:
            watching = asyncio.create_task(reload.watch(runtime, runtime.config.reload_seconds))
        yield
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        drained = await asyncio.to_thread(runtime.drain, drain_seconds)
        if not drained:
            logger.warning("%d checks still in flight at shutdown", runtime.inflight)
        runtime.close()

    routes = [
        *health.ROUTES,
        *native.ROUTES,
        *authzen.ROUTES,
        *approvals.ROUTES,
        *metrics.ROUTES,
        *webhooks.ROUTES,
        inbox.mount(runtime),
    ]
    if runtime.metrics is None:
        runtime.metrics = metrics.Metrics(runtime.config.log)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            Problem: _problem,
            HTTPException: _http_error,
            Exception: _internal,
        },
    )
    app.state.runtime = runtime
    app.state.webhooks = webhooks.Webhooks.of(runtime)
    served = RequestId(DataFastPath(app, runtime))
    return AllowedHosts(served, allowed_hosts(runtime.config.allowed_hosts, bound_host))
