"""AuthZEN 1.0: ``/access/v1/evaluation``, ``/evaluations``, ``/search/*``, discovery.

Each request goes through the pack's mapping (``authzen_mapping``) to a proposed action
and the subject's attested actor, then through the gate like any check (recorded in
the ledger and the log). ``decision`` is true only for ``allow``; a deny is HTTP 200 with
``decision: false``, ``context.reason_admin`` / ``reason_user`` from the fired rules.
``require_approval`` answers ``decision: false`` with ``context.access_request``: the
action's binding hash (the digest an approval binds to), the approver groups and where
to approve. Search tries the candidates the mapping's directories name with pure
evaluation (nothing recorded) and returns those the pack allows, in one page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from aigre_policy.gate.clock import iso
from aigre_policy.gate.intake import attested_fields
from aigre_policy.server.http import JSONResponse, Problem, caller_of, read_json, runtime_of
from aigre_policy.server.native import kept
from aigre_policy.server.runtime import Runtime, Served

logger = logging.getLogger("aigre_policy.server")

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
ENTITIES = ("subject", "action", "resource", "context")


class BadRequest(Exception):
    """An evaluation request AuthZEN does not allow; answered 400 (or per entry)."""


def _validated(request: Any, search: str | None = None) -> dict[str, Any]:
    """The request's entities, checked as AuthZEN requires (unknown fields are ignored)."""
    if not isinstance(request, Mapping):
        raise BadRequest("the request must be a JSON object")
    wanted = {"subject": ("type", "id"), "action": ("name",), "resource": ("type", "id")}
    if search is not None:  # the searched entity is named without its identifier
        wanted[search] = ("type",) if search != "action" else ()
    for name, keys in wanted.items():
        entity = request.get(name)
        if entity is None and search == name == "action":
            continue
        if not isinstance(entity, Mapping):
            raise BadRequest(f"`{name}` is missing or not an object")
        for key in keys:
            if not isinstance(entity.get(key), str):
                raise BadRequest(f"`{name}.{key}` is missing or not a string")
        props = entity.get("properties")
        if props is not None and not isinstance(props, Mapping):
            raise BadRequest(f"`{name}.properties` is not an object")
    context = request.get("context")
    if context is not None and not isinstance(context, Mapping):
        raise BadRequest("`context` is not an object")
    return {k: request[k] for k in ENTITIES if request.get(k) is not None}


def _mapping(served: Served) -> Any:
    if served.authzen is None:
        raise Problem(501, "not_implemented", "this pack has no AuthZEN mapping (authzen.yaml)")
    return served.authzen


def _reasons(verdict: Any) -> dict[str, Any]:
    fired = [r for r in verdict.fired]
    context: dict[str, Any] = {"decision_id": verdict.decision_id, "verdict": verdict.decision}
    if fired:
        context["reason_admin"] = {
            "en": "; ".join(f"{r['id']}: {r['message']}" for r in fired),
            "rules": [r["id"] for r in fired],
        }
        context["reason_user"] = {"en": fired[0]["message"]}
    elif verdict.default_applied:
        default = f"no rule decides; the pack's default is {verdict.decision}"
        context["reason_admin"] = {"en": default}
        if verdict.decision != "allow":
            context["reason_user"] = {"en": "not permitted"}
    if verdict.fail_closed:
        context["reason_admin"] = {
            "en": "failed closed: " + "; ".join(str(e.get("message")) for e in verdict.errors[:5])
        }
    if verdict.decision == "require_approval" and not verdict.fail_closed:
        context["access_request"] = {
            "status": "pending",
            "binding_hash": verdict.action_digest,
            "approvers": list(verdict.approvers),
            "decision_id": verdict.decision_id,
            "endpoint": "/v1/approvals",
        }
    return context


async def _decide(runtime: Runtime, served: Served, request: Any, caller: Any) -> dict[str, Any]:
    """One evaluation's answer; never raises: a bad entry or a fault is ``decision: false``."""
    try:
        entities = _validated(request)
        action, actor = _mapping(served).proposal(entities)
    except BadRequest as exc:
        return {"decision": False, "context": {"error": {"status": 400, "message": str(exc)}}}
    runtime.enter()
    try:
        verdict = await runtime.check(served, action, actor, "authzen", caller.name)
    except Exception as exc:  # never an allow
        logger.exception("AuthZEN evaluation failed in the server")
        runtime.observe_failure("authzen")
        message = f"{type(exc).__name__}: {exc}"
        return {"decision": False, "context": {"error": {"status": 500, "message": message}}}
    finally:
        runtime.leave()
    kept(runtime, verdict, caller, "authzen")  # the answer is the recorded decision
    return {"decision": verdict.decision == "allow", "context": _reasons(verdict)}


async def evaluation(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    caller = caller_of(request, "authzen")
    body = await read_json(request, runtime.config.limits.max_body_bytes)
    served = runtime.served
    _mapping(served)
    try:
        _validated(body)
    except BadRequest as exc:
        raise Problem(400, "invalid_request", str(exc)) from None
    return JSONResponse(await _decide(runtime, served, body, caller))


async def evaluations(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    caller = caller_of(request, "authzen")
    body = await read_json(request, runtime.config.limits.max_body_bytes)
    served = runtime.served
    _mapping(served)
    if not isinstance(body, Mapping):
        raise Problem(400, "invalid_request", "the request must be a JSON object")
    entries = body.get("evaluations")
    defaults = {k: body[k] for k in ENTITIES if k in body}
    if entries is None or entries == []:  # no batch: the single evaluation
        try:
            _validated(defaults)
        except BadRequest as exc:
            raise Problem(400, "invalid_request", str(exc)) from None
        return JSONResponse(await _decide(runtime, served, defaults, caller))
    if not isinstance(entries, list):
        raise Problem(400, "invalid_request", "`evaluations` is not an array")
    if len(entries) > runtime.config.limits.max_evaluations:
        limit = runtime.config.limits.max_evaluations
        raise Problem(413, "request_too_large", f"more than {limit} evaluations in one request")
    options = body.get("options")
    semantic = options.get("evaluations_semantic") if isinstance(options, Mapping) else None
    semantic = semantic or "execute_all"
    if semantic not in SEMANTICS:
        raise Problem(400, "invalid_request", f"unknown evaluations_semantic {semantic!r}")
    answers = []
    for entry in entries:
        merged = {**defaults, **entry} if isinstance(entry, Mapping) else entry
        answer = await _decide(runtime, served, merged, caller)
        answers.append(answer)
        if semantic == "deny_on_first_deny" and not answer["decision"]:
            break
        if semantic == "permit_on_first_permit" and answer["decision"]:
            break
    return JSONResponse({"evaluations": answers})


# -- search ----------------------------------------------------------------------------------


def _allowed(served: Served, mapping: Any, request: dict[str, Any]) -> bool:
    """Pure evaluation of one candidate (nothing recorded); only ``allow`` counts."""
    action, actor = mapping.proposal(request)
    pack = served.pack
    now = served.gate.clock()
    context: dict[str, Any] = {"now": iso(now)}
    if actor is not None and "actor" in attested_fields(pack):
        context["actor"] = actor
    return bool(pack.evaluate(action, context, {}).decision == "allow")


async def search(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    caller_of(request, "authzen")
    kind = request.path_params["kind"]
    if kind not in ("subject", "resource", "action"):
        raise Problem(404, "not_found", f"no search for `{kind}`: subject, resource or action")
    body = await read_json(request, runtime.config.limits.max_body_bytes)
    served = runtime.served
    mapping = _mapping(served)
    if served.pack.program.usages:
        raise Problem(400, "invalid_request", "search needs a pack without usage declarations")
    try:
        entities = _validated(body, search=kind)
    except BadRequest as exc:
        raise Problem(400, "invalid_request", str(exc)) from None
    results: list[dict[str, Any]] = []
    if kind == "subject":
        wanted = entities["subject"]["type"]
        for name in mapping.subjects.primary if mapping.subjects else ():
            asked = {**entities, "subject": {**entities["subject"], "id": name}}
            if _allowed(served, mapping, asked):
                results.append({"type": wanted, "id": name})
    elif kind == "resource":
        wanted = entities["resource"]["type"]
        directory = mapping.resources
        if directory is not None and directory.type in (None, wanted):
            for name in directory.primary:
                asked = {**entities, "resource": {**entities["resource"], "id": name}}
                if _allowed(served, mapping, asked):
                    results.append({"type": wanted, "id": name})
    else:
        for name in mapping.actions:
            if _allowed(served, mapping, {**entities, "action": {"name": name}}):
                results.append({"name": name})
    return JSONResponse({"results": results, "page": {"next_token": ""}})


async def configuration(request: Request) -> JSONResponse:
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "policy_decision_point": base,
            "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
            "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
            "search_subject_endpoint": f"{base}/access/v1/search/subject",
            "search_resource_endpoint": f"{base}/access/v1/search/resource",
            "search_action_endpoint": f"{base}/access/v1/search/action",
        }
    )


ROUTES = [
    Route("/access/v1/evaluation", evaluation, methods=["POST"]),
    Route("/access/v1/evaluations", evaluations, methods=["POST"]),
    Route("/access/v1/search/{kind:str}", search, methods=["POST"]),
    Route("/.well-known/authzen-configuration", configuration, methods=["GET"]),
]
