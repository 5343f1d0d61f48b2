"""The adapters' webhook routes: Kubernetes admission, GitHub deployment protection, plans.

Each is on only when the config's ``webhooks:`` names it (else 404), and each decides
through the served gate, so decisions are recorded, approvals resolved and the inbox,
metrics and log see them like ``/v1/check``'s:

- ``POST /v1/admission``: an ``AdmissionReview`` from the API server, whose token is an
  API key listed in ``webhooks.admission.callers``; its ``userInfo`` is attested only
  then. Always 200 with the AdmissionReview answer (a refusal too: the API server reads
  ``allowed``).
- ``POST /v1/github/deployment-protection``: a GitHub delivery, verified by its HMAC
  signature (no API key: GitHub sends none); reviews read from GitHub's API; the answer
  posted to the callback URL; the HTTP status is the adapter's (202, 401, 400, 500, 502).
- ``POST /v1/terraform/plan``: a plan (``terraform show -json``), or a multipart form
  with ``plan`` and ``costs`` (Infracost JSON); each resource through ``gate.check``
  with the caller's actor; 200 with the plan verdict.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from aigre_policy.adapters import github, kubernetes, terraform
from aigre_policy.adapters.common import FirstSeen, declared_action_fields
from aigre_policy.gate.errors import ApprovalRejected
from aigre_policy.server.http import (
    JSONResponse,
    Problem,
    caller_of,
    read_body,
    runtime_of,
)
from aigre_policy.server.identity import Caller
from aigre_policy.server.webhooks_config import GitHubWebhook, WebhooksConfig

logger = logging.getLogger("aigre_policy.server")


class Webhooks:
    """The routes' state for one server: options built once, secrets read once."""

    def __init__(
        self,
        config: WebhooksConfig | None,
        directory: Mapping[str, Any] | None = None,
        github_client: Any = None,
        clock: Callable[[], Any] | None = None,
    ):
        config = config or WebhooksConfig()
        self.config = config
        self.admission: tuple[kubernetes.AdmissionOptions, kubernetes.AdmissionOptions] | None
        self.admission = None
        if config.admission is not None:
            a = config.admission
            # one FirstSeen per server: a retry after an approval proposes the same action
            attested = kubernetes.AdmissionOptions(
                environment_label=a.environment_label,
                namespaces=dict(a.namespaces),
                environment=a.environment,
                environments=dict(a.environments),
                authenticated=True,
                trust_by_group=dict(a.trust_by_group),
                users_share=a.users_share,
                first_seen=FirstSeen(clock=clock),  # the gate's clock
                budget_seconds=a.budget_seconds,
            )
            self.admission = (attested, dataclasses.replace(attested, authenticated=False))
        self.github: GitHubHook | None = None
        if config.github is not None:
            self.github = GitHubHook(config.github, directory or {}, github_client)
        self.terraform = config.terraform

    @classmethod
    def of(cls, runtime: Any) -> Webhooks:
        """The routes' state for a server's runtime (its config, directory and clock)."""
        config = runtime.config
        return cls(config.webhooks, config.directory, clock=runtime.clock)


class GitHubHook:
    """The deployment protection route's secret, options and API client."""

    def __init__(self, config: GitHubWebhook, directory: Mapping[str, Any], client: Any):
        from aigre_policy.server.github_api import GitHubApi

        self.secret = config.secret.read("webhooks.github.secret")
        groups = config.reviewer_groups
        if groups is None:  # the server's directory, turned around: login -> groups
            found: dict[str, list[str]] = {}
            for group, members in directory.items():
                for member in members:
                    found.setdefault(member, []).append(group)
            groups = {login: tuple(g) for login, g in found.items()}
        self.options = github.DeploymentOptions(
            environments=dict(config.environments),
            trust=dict(config.trust),
            default_trust=config.default_trust,
            reviewer_groups=dict(groups),
            users_share=config.users_share,
            api_url=config.api_url.rstrip("/"),
        )
        self.api = GitHubApi(config, client)

    def handle(self, body: bytes, headers: Mapping[str, str], judge: Any) -> github.Outcome:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:  # verified before anything is asked of GitHub (a token bought, reviews read)
            github.verify_signature(body, lowered.get("x-hub-signature-256"), self.secret)
        except github.SignatureError as exc:
            return github.Outcome(401, str(exc))
        if lowered.get("x-github-event") != github.EVENT:
            return github.handle_delivery(body, headers, secret=self.secret, judge=judge)
        try:
            token = self.api.token()
        except Exception as exc:  # nothing is posted: the deployment stays pending
            return github.Outcome(502, f"no token to answer GitHub with: {exc}")
        return github.handle_delivery(
            body,
            headers,
            secret=self.secret,
            judge=judge,
            reviews=self.api.reviews,
            pulls=self.api.pulls,
            token=token,
            post=self.api.post,
            options=self.options,
        )


def _hooks(request: Request) -> Webhooks:
    hooks: Webhooks | None = getattr(request.app.state, "webhooks", None)
    if hooks is None:
        hooks = request.app.state.webhooks = Webhooks(None)
    return hooks


def _not_configured(name: str) -> Problem:
    return Problem(404, "not_found", f"the {name} webhook is not configured (webhooks.{name})")


def _observed(runtime: Any, caller: Caller, api: str, judge: Callable[..., Any]) -> Any:
    """The judge, with each verdict counted in the metrics and a ``require_approval`` kept
    for the approvers' inbox (a dry run's pack verdict is neither recorded nor kept)."""

    def observed(*args: Any) -> Any:
        verdict = judge(*args)
        runtime.observe(verdict, api)
        if hasattr(verdict, "action_digest"):  # the inbox drops what no longer waits
            runtime.pending_from(verdict, caller)
        return verdict

    return observed


async def _decided(runtime: Any, work: Callable[[], Any]) -> Any:
    """``work`` off the event loop, counted as a check in flight (shutdown drains it)."""
    if runtime.inflight > runtime.config.limits.max_queued_checks:
        raise Problem(503, "unavailable", f"{runtime.inflight} checks are waiting; try again")
    runtime.enter()
    try:
        return await asyncio.to_thread(work)
    finally:
        runtime.leave()


async def admission(request: Request) -> JSONResponse:
    hooks = _hooks(request)
    if hooks.admission is None or hooks.config.admission is None:
        raise _not_configured("admission")
    runtime = runtime_of(request)
    caller = caller_of(request, "check")
    verified = runtime.authenticator.required
    if verified and caller.name not in hooks.config.admission.callers:
        raise Problem(403, "forbidden", f"`{caller.name}` is not one of webhooks.admission.callers")
    body = await read_body(request, runtime.config.limits.max_body_bytes)
    # without an identity source nobody is verified: `userInfo` stays a claim
    options = hooks.admission[0] if verified else hooks.admission[1]
    gate = runtime.served.gate
    judge = _observed(runtime, caller, "admission", kubernetes.gate_admission_judge(gate))
    reply = await _decided(runtime, lambda: kubernetes.admit(body, judge, options))
    return JSONResponse(reply)


async def github_deployment(request: Request) -> JSONResponse:
    hooks = _hooks(request)
    if hooks.github is None:
        raise _not_configured("github")
    hook = hooks.github
    runtime = runtime_of(request)
    body = await read_body(request, runtime.config.limits.max_body_bytes)
    headers = dict(request.headers)
    gate = runtime.served.gate
    judge = _github_judge(runtime, gate)
    outcome = await _decided(runtime, lambda: hook.handle(body, headers, judge))
    if outcome.status >= 500:
        logger.warning("GitHub delivery not answered: %s", outcome.message)
    answer: dict[str, Any] = {"message": outcome.message, "decision": outcome.decision}
    if outcome.callback is not None:
        answer["callback"] = outcome.callback
        answer["delivered"] = outcome.delivered
    if outcome.approvals is not None:
        answer["approvals"] = {
            "counted": list(outcome.approvals.counted),
            "ignored": list(outcome.approvals.ignored),
        }
    return JSONResponse(answer, status_code=outcome.status)


def _github_judge(runtime: Any, gate: Any) -> github.JudgeDeployment:
    """The gate's check, with each counted review recorded as an approval first, so the
    gate's own rules apply to it (the directory, self-approval, lifetime)."""

    def judge(action: dict[str, Any], actor: Any, approvals: list[dict[str, Any]]) -> Any:
        caller = Caller(f"github:{(actor or {}).get('id', 'unverified')}", actor, frozenset())
        check = _observed(runtime, caller, "github", lambda: gate.check(action, actor=actor))
        verdict = check()
        if verdict.decision != "require_approval" or not approvals:
            return verdict
        for approval in approvals:
            try:
                gate.approve(verdict, by=approval["by"], group=approval["group"], note="review")
            except ApprovalRejected:
                continue  # a group no fired rule names, or not a member per the directory
        return check()

    return judge


async def terraform_plan(request: Request) -> JSONResponse:
    hooks = _hooks(request)
    if hooks.terraform is None:
        raise _not_configured("terraform")
    runtime = runtime_of(request)
    caller = caller_of(request, "check")
    limit = runtime.config.limits.max_body_bytes
    plan, costs = await _plan_and_costs(request, limit)
    served = runtime.served
    config = hooks.terraform
    try:
        monthly = terraform.costs_from_infracost(costs) if costs is not None else {}
    except ValueError as exc:
        raise Problem(400, "invalid_parameter", f"costs: {exc}") from None
    options = terraform.PlanOptions(
        environment=config.environment,
        environment_tag=config.environment_tag,
        workspace=config.workspace,
        environments=dict(config.environments),
        users_share=config.users_share,
        monthly_costs=monthly,
        stateful_types=frozenset(config.stateful_types),
        action_fields=declared_action_fields(served.pack),
    )
    gate = served.gate
    judge = _observed(runtime, caller, "terraform", lambda a: gate.check(a, actor=caller.actor))
    pack = served.pack
    ref = {"name": pack.name, "version": pack.version, "digest": pack.digest}
    verdict = await _decided(
        runtime,
        lambda: terraform.judge_plan(
            plan, judge, fail_closed=pack.fail_closed, pack=ref, options=options
        ),
    )
    return JSONResponse(verdict.to_dict())


async def _plan_and_costs(request: Request, limit: int) -> tuple[bytes, bytes | None]:
    """The plan (the body, or the form field ``plan``) and the optional ``costs`` field."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        return await read_body(request, limit), None
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit() or int(declared) > limit:
        raise Problem(413, "request_too_large", f"a form needs a Content-Length under {limit}")
    fields: dict[str, bytes | None] = {}
    try:
        async with request.form(max_files=2, max_fields=2, max_part_size=limit) as form:
            for name in ("plan", "costs"):
                value = form.get(name)
                if value is None or isinstance(value, str):
                    fields[name] = None if value is None else value.encode("utf-8")
                else:
                    fields[name] = await value.read()
    except Exception as exc:  # a malformed form, or python-multipart missing
        raise Problem(400, "invalid_parameter", f"the form cannot be read: {exc}") from None
    plan = fields.get("plan")
    if plan is None:
        raise Problem(400, "invalid_parameter", "the form has no `plan` field")
    return plan, fields.get("costs")


ROUTES = [
    Route("/v1/admission", admission, methods=["POST"]),
    Route("/v1/github/deployment-protection", github_deployment, methods=["POST"]),
    Route("/v1/terraform/plan", terraform_plan, methods=["POST"]),
]
