"""The MCP gate's decision path: one tool call in, the gate's verdict, the result out.

``ToolGate.call`` does for each ``tools/call`` what the proxy and the in-process
middleware share:

1. the tool's mapping (an unmapped tool gets the mapping's ``unmapped`` choice);
2. the arguments, validated against the tool's declared ``inputSchema`` (a call
   that breaks it, or names a tool the server does not declare, fails closed);
3. the proposed action, with an ``id`` and ``requested_at`` kept while it waits for
   a person, so the same call retried after an approval is the same action (same
   digest);
4. ``Gate.acheck`` with the actor the gate was configured with (never one from the
   arguments), using up the approvals an allow rests on;
5. ``allow``: the call is forwarded and its result returned unchanged, the outcome
   recorded; anything else: a tool result with ``isError: true`` whose text gives
   the reasons (the fired rules' messages) and what would let the call through.

Nothing here raises for a refusal or a fault: an error never becomes a forwarded
call. The SDK is imported only by the modules that need it (this one builds its
results with ``mcp_types``), never by ``aigre_policy.cli.main``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import mcp_types as types

from aigre_policy.gate.clock import iso
from aigre_policy.gate.errors import ApprovalRejected, GateError
from aigre_policy.gate.gate import Gate
from aigre_policy.gate.review import ReviewAnswer, ReviewRequest
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.mcp.mapping import MappingError, ToolMapping
from aigre_policy.verdict import digest

logger = logging.getLogger("aigre_policy.mcp")

ANSWER_KEY = "aigre-policy/approval"  # the approval question's key in an input request
APPROVE_SCHEMA = {
    "type": "object",
    "properties": {"approve": {"type": "boolean", "title": "Approve this action"}},
    "required": ["approve"],
}
_KEPT = 10_000  # calls waiting for a person; past that the oldest are forgotten

# the call carried out: a ``CallToolResult``, or its wire form (what a middleware's
# ``call_next`` returns); either way returned to the client unchanged
Forward = Callable[[], Awaitable[Any]]
Ask = Callable[[str], Awaitable[bool]]  # a yes/no question to the person at the client
Sample = Callable[[str], Awaitable[str]]  # a prompt to the client's model, its answer

# The client's model for this call, when the client offers sampling: the LLM judge reads it.
current_sampler: contextvars.ContextVar[Sample | None] = contextvars.ContextVar(
    "aigre_mcp_sampler", default=None
)


@dataclass(frozen=True, slots=True)
class Approver:
    """The person at the MCP client, who may approve through elicitation."""

    by: str
    group: str


def refusal(text: str, **structured: Any) -> types.CallToolResult:
    """A tool result the agent reads as a failure it can act on."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content={"refused": True, **structured} if structured else None,
        is_error=True,
    )


def schema_problems(schema: Mapping[str, Any] | None, arguments: Any) -> list[str]:
    """What is wrong with ``arguments`` under a tool's ``inputSchema`` (draft 2020-12)."""
    if not isinstance(arguments, Mapping):
        return ["the arguments are not an object"]
    if schema is None:
        return []
    try:
        validator = _validator(schema)
        found = sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(e.path))
    except jsonschema.SchemaError as exc:
        return [f"the tool's input schema is not valid: {exc.message}"]
    except Exception as exc:  # a schema the validator cannot follow: fail closed
        return [f"the tool's input schema cannot be applied: {type(exc).__name__}: {exc}"]
    return [
        f"{'/'.join(str(p) for p in e.path) or 'arguments'}: {e.message[:200]}" for e in found[:5]
    ]


# validators of the schemas seen, by the schema object's identity (a listing keeps its
# schema objects while it is current, so each tool's validator is built once per listing)
_validators: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator = jsonschema.Draft202012Validator(dict(schema))
    if len(_validators) > 1000:
        _validators.clear()
    _validators[id(schema)] = (schema, validator)
    return validator


class ToolGate:
    """Judges MCP tool calls with a ``Gate`` through a ``ToolMapping``.

    ``actor``: the identity the calls are attested as (``context.actor``): the
    proxy's configured identity, never read from a call. ``approver``: the person
    at the client who may approve a held call when the client supports
    elicitation. ``approve_hint``: the command that records an approval out of
    band, shown to the agent with ``{decision_id}`` and ``{group}`` filled in.
    """

    def __init__(
        self,
        gate: Gate,
        mapping: ToolMapping,
        *,
        actor: Mapping[str, Any] | None = None,
        approver: Approver | None = None,
        approve_hint: str = "",
    ):
        self.gate = gate
        self.mapping = mapping
        self.actor = dict(actor) if actor is not None else None
        self.approver = approver
        self.approve_hint = approve_hint
        self._pending: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._recording: set[asyncio.Future[None]] = set()
        self._key = os.urandom(32)  # binds a question's answer to this process and action

    # -- the call --------------------------------------------------------------------------

    async def call(
        self,
        name: str,
        arguments: Any,
        declared: Mapping[str, Mapping[str, Any] | None],
        forward: Forward,
        *,
        ask: Ask | None = None,
        answers: Mapping[str, Any] | None = None,
        request_state: str | None = None,
        may_return_question: bool = False,
        actor: Mapping[str, Any] | None = None,
    ) -> Any:
        """Judge a call of ``name`` and forward it only when allowed.

        ``declared``: each tool the server declares, with its ``inputSchema``.
        ``ask``: elicitation as a request to the client (handshake-era connections).
        ``may_return_question``: on a 2026-07-28 connection whose client supports
        elicitation, a held call answers with the question (``InputRequiredResult``);
        the client's retry carries ``answers`` and ``request_state``.
        ``actor``: the authenticated caller of this call (an HTTP client's identity),
        attested instead of the configured one.
        """
        arguments = {} if arguments is None else arguments
        actor = dict(actor) if actor is not None else self.actor
        rule = self.mapping.match(name)
        if rule is None:
            if self.mapping.unmapped == "forward":
                return await forward()
            return await self.refuse_unjudged(
                name,
                arguments,
                actor,
                "unmapped",
                f"the tool `{name}` has no mapping in the policy pack's "
                f"{self.mapping.file}, and unmapped tools are denied",
            )
        if name not in declared:
            return await self.refuse_unjudged(
                name, arguments, actor, "unknown", f"the server declares no tool `{name}`"
            )
        problems = schema_problems(declared[name], arguments)
        if problems:
            return await self.refuse_unjudged(
                name,
                arguments,
                actor,
                "malformed",
                f"the arguments of `{name}` break its input schema: " + "; ".join(problems),
                errors=problems,
            )
        try:
            action, key = self._propose(rule, name, arguments, actor)
        except MappingError as exc:
            return await self.refuse_unjudged(name, arguments, actor, "mapping", str(exc))
        verdict = await self.gate.acheck(action, actor=actor, consume=True)
        if self._approver_may_answer(verdict):
            if ask is not None:
                verdict = await self._elicited(verdict, action, ask, actor)
            elif may_return_question:
                answer = self._answer(answers, request_state, verdict)
                if answer is None:
                    return self._question(verdict, action)
                if answer:
                    verdict = await self._approved(verdict, action, actor)
        if verdict.decision != "allow":
            if verdict.decision in ("deny",) or verdict.fail_closed:
                self._forget(key)
            return self._refused(name, verdict)
        self._forget(key)
        return await self._forwarded(verdict, forward)

    async def refuse_unjudged(
        self,
        name: str,
        arguments: Any,
        actor: Mapping[str, Any] | None,
        reason: str,
        text: str,
        **more: Any,
    ) -> types.CallToolResult:
        """A call refused before the pack could judge it, recorded as the gate's
        fail-closed decision (the reason in its evidence), so the log holds it too."""
        tool: dict[str, Any] = {"name": name, "arguments": arguments}
        proposed = {"id": f"mcp-{name}-refused-{reason}", "tool": tool}
        verdict = await self.gate.arefuse(proposed, [f"mcp {reason}: {text}"], actor=actor)
        return refusal(
            f"refused: {text}\n{verdict.decision} (decision {verdict.decision_id}): "
            "nothing was forwarded.",
            decision=verdict.decision,
            decision_id=verdict.decision_id,
            action_digest=verdict.action_digest,
            reason=reason,
            **more,
        )

    def _propose(
        self, rule: Any, name: str, arguments: Mapping[str, Any], actor: Mapping[str, Any] | None
    ) -> tuple[dict, str]:
        """The action of a call, with the id and time of its first try while it waits."""
        action = self.mapping.propose(rule, name, arguments)
        if actor is not None and "actor" not in action:
            action["actor"] = dict(actor)  # the claim, copied from the attested identity
        key = digest(action)
        with self._lock:
            known = self._pending.get(key)
            if known is None:
                known = (f"mcp-{name}-{key.removeprefix('sha256:')[:16]}", iso(self.gate.clock()))
                if len(self._pending) >= _KEPT:
                    self._pending.clear()
                self._pending[key] = known
        action["id"], action["requested_at"] = known
        return action, key

    def _forget(self, key: str) -> None:
        with self._lock:
            self._pending.pop(key, None)

    def _approver_may_answer(self, verdict: GateVerdict) -> bool:
        return (
            verdict.decision == "require_approval"
            and self.approver is not None
            and self.approver.group in verdict.approvers
        )

    def _question_text(self, verdict: GateVerdict, action: Any) -> str:
        assert self.approver is not None
        return (
            f"The agent asks to run {action.get('kind')} on {action.get('target')}. "
            + " ".join(r.get("message", "") for r in verdict.fired if r.get("verdict") != "warn")
            + f" Approve as {self.approver.by} ({self.approver.group})?"
        )

    async def _elicited(
        self, verdict: GateVerdict, action: Any, ask: Ask, actor: Mapping[str, Any] | None
    ) -> GateVerdict:
        """Ask the person at the client; a yes records their approval and judges again."""
        try:
            if not await ask(self._question_text(verdict, action)):
                return verdict
        except Exception as exc:  # the client failed to answer: the call stays held
            logger.warning("elicitation failed: %s: %s", type(exc).__name__, exc)
            return verdict
        return await self._approved(verdict, action, actor)

    async def _approved(
        self, verdict: GateVerdict, action: Any, actor: Mapping[str, Any] | None
    ) -> GateVerdict:
        """The approver's yes, recorded; the action judged again."""
        assert self.approver is not None
        try:
            await self.gate.aapprove(
                verdict, by=self.approver.by, group=self.approver.group, note="elicited over MCP"
            )
        except (ApprovalRejected, GateError) as exc:
            logger.warning("approval through elicitation not recorded: %s", exc)
            return verdict
        return await self.gate.acheck(action, actor=actor, consume=True)

    def _state(self, verdict: GateVerdict) -> str:
        """The request state a question carries: a MAC of the action's digest, so an
        answer counts only when this proxy asked it, for this very action."""
        return hmac.new(self._key, verdict.action_digest.encode(), hashlib.sha256).hexdigest()

    def _question(self, verdict: GateVerdict, action: Any) -> types.InputRequiredResult:
        ask = types.ElicitRequest(
            params=types.ElicitRequestFormParams(
                message=self._question_text(verdict, action),
                requested_schema=APPROVE_SCHEMA,
            )
        )
        return types.InputRequiredResult(
            input_requests={ANSWER_KEY: ask}, request_state=self._state(verdict)
        )

    def _answer(
        self, answers: Mapping[str, Any] | None, state: str | None, verdict: GateVerdict
    ) -> bool | None:
        """The approver's answer to the question asked for this action; ``None``: not
        asked yet (or the answer is not bound to this action: ask again)."""
        raw = (answers or {}).get(ANSWER_KEY)
        if raw is None or not isinstance(state, str):
            return None
        if not hmac.compare_digest(state, self._state(verdict)):
            return None
        try:
            answer = (
                raw
                if isinstance(raw, types.ElicitResult)
                else types.ElicitResult.model_validate(raw)
            )
        except Exception:  # not an elicitation's answer: ask again
            return None
        return answer.action == "accept" and (answer.content or {}).get("approve") is True

    async def _forwarded(self, verdict: GateVerdict, forward: Forward) -> Any:
        """The upstream's result, unchanged; an upstream that fails fails the call closed."""
        try:
            result = await forward()
        except BaseException as exc:
            await self._outcome(verdict, "failed", f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, Exception):
                raise
            return refusal(
                f"failed closed: the upstream server failed on the allowed call "
                f"(decision {verdict.decision_id}): {type(exc).__name__}: {exc or 'no detail'}",
                decision="allow",
                decision_id=verdict.decision_id,
                reason="upstream",
            )
        # the result goes back at once; its outcome is recorded beside it, off the call's path
        status = "failed" if _is_error(result) else "executed"
        future = asyncio.get_running_loop().run_in_executor(None, self._record, verdict, status, "")
        self._recording.add(future)
        future.add_done_callback(self._recording.discard)
        return result

    async def _outcome(self, verdict: GateVerdict, status: str, detail: str) -> None:
        await asyncio.to_thread(self._record, verdict, status, detail)

    def _record(self, verdict: GateVerdict, status: str, detail: str) -> None:
        try:
            self.gate.record_outcome(verdict, status, detail=detail)
        except GateError as exc:  # the call already ran: report it, do not pretend otherwise
            logger.error("outcome of %s not recorded: %s", verdict.decision_id, exc)

    async def drain(self) -> None:
        """Wait for the outcomes still being recorded (before closing the gate)."""
        if self._recording:
            await asyncio.gather(*list(self._recording), return_exceptions=True)

    # -- what the agent reads ----------------------------------------------------------------

    def _refused(self, name: str, verdict: GateVerdict) -> types.CallToolResult:
        reasons = [
            f"rule `{r.get('id')}`: {r.get('message', '')}"
            for r in verdict.fired
            if r.get("verdict") != "warn"
        ]
        if verdict.fail_closed:
            reasons += [f"{e.get('path') or 'input'}: {e.get('message')}" for e in verdict.errors]
        lines = [f"{verdict.decision}: the policy pack did not let `{name}` run."]
        lines += reasons
        settled = verdict.gate.get("settled_by") if isinstance(verdict.gate, dict) else None
        if isinstance(settled, str) and verdict.decision != "escalate":
            lines.append(f"Settled by: {settled}.")
        structured: dict[str, Any] = {
            "decision": verdict.decision,
            "decision_id": verdict.decision_id,
            "action_digest": verdict.action_digest,
            "rules": verdict.rule_ids,
            "reasons": reasons,
        }
        if verdict.decision == "require_approval":
            groups = ", ".join(verdict.approvers)
            lines.append(
                f"Ask one of {groups} to approve decision {verdict.decision_id} "
                f"(action {verdict.action_digest}), then call `{name}` again with the same "
                "arguments."
            )
            if self.approve_hint:
                hint = self.approve_hint.format(
                    decision_id=verdict.decision_id, group=verdict.approvers[0]
                )
                lines.append(f"They approve it with: {hint}")
            structured["approvers"] = list(verdict.approvers)
        elif verdict.decision == "escalate":
            lines.append("No reviewer settled the case; a person must look at it.")
            structured["escalate_to"] = list(verdict.escalate_to)
        result = refusal("\n".join(lines), **structured)
        return result


def _is_error(result: Any) -> bool:
    """Whether a tool result (a model or its wire form) says the tool failed."""
    if isinstance(result, Mapping):
        return bool(result.get("isError"))
    return bool(getattr(result, "is_error", False))


class SamplingJudge:
    """An escalation tier that asks the MCP client's own model (sampling) for a verdict.

    It answers only when the client of the call being judged offers sampling (the
    proxy sets ``current_sampler`` for that call); otherwise it passes the case on.
    The model's answer must start with ALLOW, DENY or ESCALATE; anything else passes.
    """

    kind = "llm"

    def __init__(self, tier: str = "llm-judge", id: str = "mcp-sampling"):
        self.tier = tier
        self.id = id

    async def review(self, request: ReviewRequest) -> ReviewAnswer:
        sample = current_sampler.get()
        if sample is None:
            return ReviewAnswer("escalate", "the MCP client offers no sampling")
        prompt = (
            "You review an operational action an agent proposed. Answer with one word, "
            "ALLOW, DENY or ESCALATE, then a short reason.\n"
            f"Action: {json.dumps(dict(request.action), sort_keys=True)[:4000]}\n"
            "Why it was escalated: " + "; ".join(str(r.get("message", "")) for r in request.fired)
        )
        answer = (await sample(prompt)).strip()
        word = answer.split(maxsplit=1)[0].strip(".:,").lower() if answer else ""
        if word in ("allow", "deny", "escalate"):
            return ReviewAnswer(word, answer[:300])  # type: ignore[arg-type]
        return ReviewAnswer("escalate", f"the model's answer was not a verdict: {answer[:100]}")
