"""The Data API's decision path without the framework around it.

``POST /v1/data/<entrypoint>`` is pure evaluation and the most frequent request a fleet of
OPA clients sends; Starlette's request object, routing and exception middleware cost
more than the evaluation itself. ``DataFastPath`` answers exactly that request in plain
ASGI, with the same authentication, size limit, errors and document as the routed
handler (``native.data``, ``native.decide``); every other request goes on to the app.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from aigre_policy.server.identity import Unauthenticated
from aigre_policy.server.native import decide
from aigre_policy.server.runtime import Runtime


class DataFastPath:
    def __init__(self, app: ASGIApp, runtime: Runtime):
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        served = self.runtime.served
        path: str = scope["path"]
        if not path.startswith("/v1/data/") or path[9:].strip("/") != served.entrypoint:
            await self.app(scope, receive, send)
            return
        status, body = await self._answer(scope, receive, served)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive, served: Any) -> tuple[int, bytes]:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            caller = self.runtime.authenticator.caller(headers)
        except Unauthenticated as exc:
            return _error(401, "unauthorized", str(exc))
        if not caller.may("evaluate"):
            refusal = f"`{caller.name}` may not use this API (scope `evaluate`)"
            return _error(403, "forbidden", refusal)
        limit = self.runtime.config.limits.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            event = await receive()
            if event["type"] == "http.disconnect":
                return _error(400, "invalid_parameter", "the client went away")
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _error(413, "request_too_large", f"the body is over {limit} bytes")
            chunks.append(chunk)
            more = event.get("more_body", False)
        raw = b"".join(chunks)
        if not raw.strip():
            return _error(400, "invalid_parameter", "the body is empty; a JSON object is expected")
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _error(400, "invalid_parameter", f"the body is not JSON: {exc}")
        given = request.get("input") if isinstance(request, dict) else None
        document = decide(served, given)
        if self.runtime.metrics is not None:
            self.runtime.metrics.evaluated(document)
        return 200, orjson.dumps({"result": document})


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"code": code, "message": message})
