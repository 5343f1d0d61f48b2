"""Bodies in, JSON out: the size limit, JSON parsing, the error shape, the caller.

Errors answer ``{"code": ..., "message": ...}`` (OPA's error shape) with a 4xx status;
a body over the limit is refused before it is read whole.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from aigre_policy.server.identity import Caller, Unauthenticated
from aigre_policy.server.runtime import Runtime


class Problem(Exception):
    """A request the server refuses: answered with ``status`` and a JSON error."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class JSONResponse(Response):
    """A JSON answer encoded with orjson (the hot path's encoder)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"code": problem.code, "message": problem.message}
    return JSONResponse(body, status_code=problem.status, headers=headers)


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON data; ``Problem`` (413, 400, 415) when it cannot be."""
    body = await read_body(request, limit)
    if not body.strip():
        raise Problem(400, "invalid_parameter", "the body is empty; a JSON object is expected")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "invalid_parameter", f"the body is not JSON: {exc}") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (``Problem`` 413) past ``limit`` bytes before it is whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Problem(400, "invalid_parameter", "Content-Length is not a number") from None
        if size > limit:
            raise Problem(413, "request_too_large", f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise Problem(413, "request_too_large", f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def caller_of(request: Request, scope: str) -> Caller:
    """The authenticated caller, allowed ``scope``; ``Problem`` 401 or 403 otherwise."""
    runtime = runtime_of(request)
    if cross_site(request.headers):
        # a page elsewhere can send a "simple" POST (text/plain, no preflight) to a server
        # on the visitor's machine; on an anonymous server it would record and spend
        raise Problem(403, "forbidden", "refused: a browser sent this from another site")
    try:
        caller = runtime.authenticator.caller(request.headers)
    except Unauthenticated as exc:
        raise Problem(401, "unauthorized", str(exc)) from None
    if not caller.may(scope):
        raise Problem(403, "forbidden", f"`{caller.name}` may not use this API (scope `{scope}`)")
    return caller


def cross_site(headers: Any) -> bool:
    """True when a browser says another site sent this request (curl and SDKs say nothing)."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != headers.get("host")
