"""The native API (``POST /v1/check``) and OPA's Data API (``POST /v1/data/{path}``).

``/v1/check`` is the gate: the body is a proposed action (a claim), the actor is the
authenticated caller's, and the answer is the gate's verdict document with its
evidence, recorded in the ledger and the log. Any fault of the server around the gate
answers the pack's fail-closed verdict, never an allow.

``/v1/data/{path}`` is pure evaluation in OPA's shape, so OPA clients work unchanged:
``{"input": {"action", "context", "usage"}}`` answers ``{"result": <decision document>}``
at the pack's entrypoint (``aigre/<pkg>/decision``), the pack's data under its data
paths, and ``{}`` for an undefined path. Here the caller attests the whole input, as
with OPA, so it takes the ``evaluate`` scope; nothing is recorded.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from aigre_policy.server.http import JSONResponse, caller_of, read_json, runtime_of

logger = logging.getLogger("aigre_policy.server")

# the keys of the decision document the pack's Rego entrypoint answers
DECISION_KEYS = (
    "decision",
    "fail_closed",
    "default_applied",
    "fired",
    "warnings",
    "approvers",
    "escalate_to",
    "errors",
)


async def check(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    caller = caller_of(request, "check")
    action = await read_json(request, runtime.config.limits.max_body_bytes)
    served = runtime.served
    runtime.enter()
    try:
        verdict = await runtime.check(served, action, caller.actor, requested_by=caller.name)
    except Exception as exc:  # never an allow: the pack's fail-closed verdict, naming it
        logger.exception("check failed in the server")
        body = served.failed_closed({"action": action}, f"{type(exc).__name__}: {exc}")
        runtime.observe_failure()
    else:
        body = verdict.to_dict()
        kept(runtime, verdict, caller)
    finally:
        runtime.leave()
    return JSONResponse(body)


def kept(runtime: Any, verdict: Any, caller: Any, api: str = "check") -> None:
    """Count the recorded verdict and keep it for the inbox. A fault here is logged and
    changes nothing: the answer stays the decision the gate recorded (and spent)."""
    try:
        runtime.observe(verdict, api)
        runtime.pending_from(verdict, caller)
    except Exception:
        logger.exception(
            "the %s decision %s was recorded but not counted", api, verdict.decision_id
        )


async def data(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    caller_of(request, "evaluate")
    path = request.path_params.get("path", "").strip("/")
    served = runtime.served
    if path == served.entrypoint:
        body = await read_json(request, runtime.config.limits.max_body_bytes)
        given = body.get("input") if isinstance(body, dict) else None
        document = decide(served, given)
        if runtime.metrics is not None:
            runtime.metrics.evaluated(document)
        return JSONResponse({"result": document})
    found = _at(served.data, path)
    return JSONResponse({} if found is _UNDEFINED else {"result": found})


def decide(served: Any, given: Any) -> dict[str, Any]:
    """The entrypoint's decision document for one input, as the pack's Rego answers it.

    Read from the verdict's attributes: the full document would digest the input for
    ``input_digest``, a third of the cost of a decision, for a key OPA does not answer.
    """
    try:
        if isinstance(given, dict):
            verdict = served.pack.evaluate(
                given.get("action"), given.get("context"), given.get("usage")
            )
        else:  # no input, or not an object: the schema refuses it, the verdict fails closed
            verdict = served.pack.evaluate(given, None, None)
        return {
            "decision": verdict.decision,
            "fail_closed": verdict.fail_closed,
            "default_applied": verdict.default_applied,
            "fired": verdict.fired,
            "warnings": verdict.warnings,
            "approvers": [*verdict.approvers],
            "escalate_to": [*verdict.escalate_to],
            "errors": verdict.errors,
        }
    except Exception as exc:
        logger.exception("evaluation failed in the server")
        document = served.failed_closed(given, f"{type(exc).__name__}: {exc}")
        return {key: document[key] for key in DECISION_KEYS}


_UNDEFINED = object()


def _at(tree: Any, path: str) -> Any:
    node = tree
    for key in path.split("/") if path else []:
        if not isinstance(node, dict) or key not in node:
            return _UNDEFINED
        node = node[key]
    return node


ROUTES = [
    Route("/v1/check", check, methods=["POST"]),
    Route("/v1/data", data, methods=["POST", "GET"]),
    Route("/v1/data/{path:path}", data, methods=["POST", "GET"]),
]
