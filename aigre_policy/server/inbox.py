"""The approvals inbox in the browser: ``/inbox``, rendered on the server, no script.

Approvers sign in once with what the API takes (an API key or a JWT). The session lives
in a signed cookie (Starlette's ``SessionMiddleware``: HttpOnly, SameSite=Strict, Secure,
path ``/inbox``) holding, for a key, its SHA-256 (looked up again on every request, so a
key taken out of the config stops working) or, for a token, the actor it attested, until
the token's ``exp``. Every POST carries the session's CSRF token, compared server-side;
a request another origin sent is refused before the token is read.

Approve and reject go through ``approvals.record``, as ``POST /v1/approvals`` does (the
store, then ``Gate.approve`` / ``Gate.reject``): the approver is the signed-in caller,
and the form names the action digest it showed, so nobody approves an action other than
the one on their screen. Everything a proposer wrote is escaped by Jinja2's autoescape,
and the pages' Content-Security-Policy runs no script at all.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from aigre_policy.gate.approvals import excluded
from aigre_policy.server.approvals import read, record
from aigre_policy.server.http import Problem, read_body, runtime_of
from aigre_policy.server.identity import Caller, Unauthenticated, key_digest
from aigre_policy.server.runtime import Runtime

PREFIX = "/inbox"
COOKIE = "aigre_inbox"
MAX_FORM_BYTES = 64 * 1024
MAX_CREDENTIAL = 16 * 1024
MAX_NOTE = 2000
SHOWN = 100  # pending decisions on one page, oldest first
HEADERS = {
    # no script runs here, whatever a proposer managed to put in a page
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make the browser send `Origin: null`
    "Cache-Control": "no-store",
}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("aigre_policy.server", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _page(
    request: Request, name: str, status: int = 200, *, forms: bool = True, **context: Any
) -> HTMLResponse:
    """A page; ``forms`` when it holds forms, whose CSRF token may start a session. A page
    without (a refusal) leaves the session alone: a forged request answered with a fresh
    cookie would sign its victim out."""
    context.setdefault("caller", None)
    context.setdefault("error", None)
    context["csrf"] = _csrf(request) if forms else request.session.get("csrf", "")
    context["prefix"] = PREFIX
    html = _templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(PREFIX + path, status_code=303, headers=HEADERS)


def _notice(request: Request, status: int, message: str) -> Response:
    return _page(request, "notice.html", status, forms=False, message=message)


# -- the session -------------------------------------------------------------------------


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _signed_in(request: Request) -> Caller | None:
    """The caller this session signed in as, while the session and its credential last."""
    session = request.session
    until, who = session.get("until"), session.get("who")
    if not isinstance(until, int | float) or until <= time.time() or not isinstance(who, dict):
        return None
    runtime = runtime_of(request)
    if isinstance(who.get("key"), str):
        return runtime.authenticator.by_key_digest(who["key"])
    token = who.get("token")
    if isinstance(token, dict):
        return Caller(token["name"], token["actor"], frozenset(token["scopes"]), until)
    return None


def _cross_origin(request: Request) -> bool:
    """True when the browser says another origin sent this request."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form (what a browser posts without script), bounded in size."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Problem(415, "unsupported_media_type", "the inbox takes urlencoded forms")
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "invalid_parameter", "the form cannot be read") from None
    return dict(pairs)


def _token_ok(request: Request, form: dict[str, str]) -> bool:
    expected = request.session.get("csrf")
    given = form.get("csrf", "")
    return isinstance(expected, str) and hmac.compare_digest(expected, given)


async def _posted(request: Request) -> dict[str, str] | Response:
    """The form of a POST from this inbox's own page, or the answer refusing it."""
    if _cross_origin(request):
        return _notice(request, 403, "Refused: this form was sent from another site.")
    try:
        form = await _form(request)
    except Problem as exc:
        return _notice(request, exc.status, exc.message)
    if not _token_ok(request, form):
        return _notice(
            request, 403, "Refused: the form's CSRF token is missing or wrong. Reload the inbox."
        )
    return form


# -- pages -------------------------------------------------------------------------------


async def sign_in_page(request: Request) -> Response:
    runtime = runtime_of(request)
    return _page(request, "sign_in.html", auth=runtime.authenticator.required)


async def sign_in(request: Request) -> Response:
    runtime = runtime_of(request)
    form = await _posted(request)
    if isinstance(form, Response):
        return form
    if not runtime.authenticator.required:
        return _page(request, "sign_in.html", 403, auth=False)
    credential = form.get("credential", "").strip()
    if not credential or len(credential) > MAX_CREDENTIAL or any(c.isspace() for c in credential):
        return _page(request, "sign_in.html", 401, auth=True, error="Enter an API key or token.")
    try:
        caller = runtime.authenticator.caller({"authorization": f"Bearer {credential}"})
    except Unauthenticated as exc:
        return _page(request, "sign_in.html", 401, auth=True, error=f"Not signed in: {exc}.")
    if caller.actor is None or not caller.may("read"):
        message = f"`{caller.name}` may not read the inbox (scope `read`)."
        return _page(request, "sign_in.html", 403, auth=True, error=message)
    lifetime = runtime.config.inbox.session_minutes * 60
    until = time.time() + lifetime
    if caller.expires is None:
        who: dict[str, Any] = {"key": key_digest(credential)}
    else:
        until = min(until, caller.expires)
        token = {"name": caller.name, "actor": caller.actor, "scopes": sorted(caller.scopes)}
        who = {"token": token}
    session = request.session
    session.clear()  # a fresh session, and a fresh CSRF token, for whoever signed in
    session.update({"who": who, "until": until, "csrf": secrets.token_urlsafe(32)})
    return _redirect("/")


async def sign_out(request: Request) -> Response:
    form = await _posted(request)
    if isinstance(form, Response):
        return form
    request.session.clear()
    return _redirect("/sign-in")


async def inbox(request: Request) -> Response:
    caller = _signed_in(request)
    if caller is None:
        return _redirect("/sign-in")
    flash = request.session.pop("flash", None)
    return await _inbox(request, caller, flash=flash)


async def _inbox(request: Request, caller: Caller, status: int = 200, **context: Any) -> Response:
    runtime = runtime_of(request)
    try:
        pending = await read(runtime, runtime.pending.pending)
    except Problem as exc:
        return _notice(request, exc.status, exc.message)
    items = [_view(runtime, entry, caller) for entry in pending[:SHOWN]]
    context.setdefault("flash", None)
    return _page(
        request, "inbox.html", status, caller=caller, items=items, total=len(pending), **context
    )


async def approve(request: Request) -> Response:
    return await _decide(request, "approve")


async def reject(request: Request) -> Response:
    return await _decide(request, "reject")


async def _decide(request: Request, verb: str) -> Response:
    caller = _signed_in(request)
    if caller is None:
        return _notice(request, 403, "Sign in to approve or reject.")
    form = await _posted(request)
    if isinstance(form, Response):
        return form
    runtime = runtime_of(request)
    decision_id = request.path_params["decision_id"]
    try:
        entry = await read(runtime, runtime.pending.get, decision_id)
    except Problem as exc:
        return _notice(request, exc.status, exc.message)
    if entry is None or entry.state != "pending":
        return await _inbox(request, caller, 404, error=f"No pending approval for {decision_id}.")
    if not caller.may("approve"):
        error = f"`{caller.name}` may not approve or reject (scope `approve`)."
        return await _inbox(request, caller, 403, error=error)
    if not hmac.compare_digest(form.get("digest", ""), str(entry.verdict.action_digest)):
        error = "The action changed since the page showed it; look at it again."
        return await _inbox(request, caller, 409, error=error)
    group, note = form.get("group", ""), form.get("note", "")[:MAX_NOTE]
    try:
        await record(runtime, caller, verb, decision_id, group, note)
    except Problem as exc:
        return await _inbox(request, caller, exc.status, error=f"Refused: {exc.message}.")
    kind = entry.verdict.action.get("kind", "the action")
    if verb == "approve":
        done = f"Approved {kind} for {group}: the next check of the same action counts it."
    else:
        done = f"Rejected {kind} for {group}: recorded in the decision log."
    request.session["flash"] = done
    return _redirect("/")


async def stylesheet(request: Request) -> Response:
    css = resources.files("aigre_policy.server").joinpath("templates/inbox.css").read_text()
    headers = {**HEADERS, "Cache-Control": "max-age=3600"}
    return Response(css, media_type="text/css", headers=headers)


# -- what a pending decision shows -------------------------------------------------------


def _view(runtime: Runtime, entry: Any, caller: Caller) -> dict[str, Any]:
    summary = entry.summary()
    action = summary["action"] if isinstance(summary["action"], dict) else {}
    by = str((caller.actor or {}).get("id", ""))
    missing = sorted({g for groups in summary["missing"] for g in groups})
    return {
        "id": summary["decision_id"],
        "kind": _text(action.get("kind", "an action")),
        "target": _text(action.get("target", "?")),
        "digest": summary["action_digest"],
        "pack": summary["pack"],
        "requested_by": summary["requested_by"],
        "requested_at": datetime.fromtimestamp(summary["requested_at"], UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "actor": _text(summary["actor"]) if summary["actor"] else "none (anonymous)",
        "facts": [(key, _text(action[key])) for key in _FACTS if key in action],
        "action_json": json.dumps(action, indent=2, ensure_ascii=False, sort_keys=True),
        "fired": [
            {
                **rule,
                "bindings": [(path, _text(value)) for path, value in rule["bindings"].items()],
                "where": _where(rule.get("location")),
            }
            for rule in summary["fired"]
        ],
        "missing": missing,
        "mine": [g for g in missing if runtime.directory.is_member(by, g)],
        "proposed_by_caller": by in excluded(action, summary["actor"]),
        "approvals": summary["approvals"],
    }


_FACTS = (
    "kind",
    "target",
    "environment",
    "change",
    "reversible",
    "blast_radius",
    "cost",
    "justification",
    "actor",
    "requested_at",
)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _where(location: Any) -> str:
    if not isinstance(location, dict):
        return ""
    return f"{location.get('file')}:{location.get('line')}:{location.get('column')}"


def mount(runtime: Runtime) -> Mount:
    """The inbox as a sub-application under ``/inbox``, with its own session middleware
    (the API's routes never read a cookie)."""
    app = Starlette(
        routes=[
            Route("/", inbox, methods=["GET"]),
            Route("/sign-in", sign_in_page, methods=["GET"]),
            Route("/sign-in", sign_in, methods=["POST"]),
            Route("/sign-out", sign_out, methods=["POST"]),
            Route("/inbox.css", stylesheet, methods=["GET"]),
            Route("/{decision_id}/approve", approve, methods=["POST"]),
            Route("/{decision_id}/reject", reject, methods=["POST"]),
        ]
    )
    app.state.runtime = runtime
    sessions = SessionMiddleware(
        app,
        secret_key=runtime.session_secret,
        session_cookie=COOKIE,
        max_age=runtime.config.inbox.session_minutes * 60,
        path=PREFIX,
        same_site="strict",
        https_only=True,
    )
    return Mount(PREFIX, app=sessions)
