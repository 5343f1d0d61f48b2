"""Approvals over HTTP: ``GET /v1/approvals?state=pending`` and ``POST /v1/approvals``.

``POST`` takes ``{"decision_id", "group", "note"?}``; the approver is the authenticated
caller, never the body. The gate's rules apply (``Gate.approve``): the approver must be
in the group per the server's directory, the group must be one a fired rule names, and
nobody approves an action they proposed (the attested actor or whom it acts for, or
the actor the proposal claims). The store is ``approvals_store``'s: the ledger's held
decisions, shared by every replica on it (``SharedApprovals``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from aigre_policy.gate.errors import ApprovalRejected, GateError
from aigre_policy.gate.ledger import LedgerError
from aigre_policy.server.http import JSONResponse, Problem, caller_of, read_json, runtime_of
from aigre_policy.server.identity import Caller
from aigre_policy.server.runtime import Runtime


async def list_approvals(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    caller_of(request, "read")
    state = request.query_params.get("state", "pending")
    if state not in ("pending", "approved", "rejected", "all"):
        raise Problem(400, "invalid_parameter", "state is pending, approved, rejected or all")
    items = await read(runtime, runtime.pending.listed, None if state == "all" else state)
    return JSONResponse({"approvals": [p.summary() for p in items]})


async def read(runtime: Runtime, reader: Any, *args: Any) -> Any:
    """A read of the store, off the event loop (it may be the ledger); a ledger that
    cannot be read answers 503."""
    try:
        return await asyncio.to_thread(reader, *args)
    except (LedgerError, GateError) as exc:
        raise Problem(503, "unavailable", f"the approvals cannot be read: {exc}") from None


async def approve(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    caller = caller_of(request, "approve")
    if caller.actor is None:
        raise Problem(401, "unauthorized", "an approval needs an authenticated approver")
    body = await read_json(request, runtime.config.limits.max_body_bytes)
    if not isinstance(body, dict):
        raise Problem(400, "invalid_parameter", "the body must be a JSON object")
    decision_id, group, note = body.get("decision_id"), body.get("group"), body.get("note", "")
    if not isinstance(decision_id, str) or not isinstance(group, str):
        raise Problem(400, "invalid_parameter", "`decision_id` and `group` must be strings")
    if not isinstance(note, str):
        raise Problem(400, "invalid_parameter", "`note` must be a string")
    approval = await record(runtime, caller, "approve", decision_id, group, note)
    entry = await read(runtime, runtime.pending.get, decision_id)
    state = entry.state if entry is not None else "approved"
    return JSONResponse({"approval": approval, "state": state}, status_code=201)


async def record(
    runtime: Runtime, caller: Caller, verb: str, decision_id: str, group: str, note: str
) -> dict[str, Any]:
    """``caller``'s approval (``verb`` ``approve``) or rejection (``reject``) of a pending
    decision, through the store and the gate; ``Problem`` (401, 404, 403, 503) when it
    cannot be. The JSON API and the browser inbox both record through here."""
    if caller.actor is None:
        raise Problem(401, "unauthorized", "an approval needs an authenticated approver")
    if runtime.claimed is not None:  # the approver's verified groups, never a proposal's
        runtime.claimed.remember(caller.actor)
    store = runtime.pending
    decide = store.approve if verb == "approve" else store.reject
    by = str(caller.actor["id"])
    try:
        return await asyncio.to_thread(decide, runtime.served.gate, decision_id, by, group, note)
    except KeyError:
        raise Problem(404, "not_found", f"no pending approval for decision {decision_id}") from None
    except ApprovalRejected as exc:
        raise Problem(403, "approval_rejected", str(exc)) from None
    except (GateError, LedgerError) as exc:
        raise Problem(503, "unavailable", f"the {verb} could not be recorded: {exc}") from None


ROUTES = [
    Route("/v1/approvals", list_approvals, methods=["GET"]),
    Route("/v1/approvals", approve, methods=["POST"]),
]
