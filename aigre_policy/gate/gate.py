"""The gate: judge proposed actions in-process, record every decision, enforce the verdict.

``Gate.check`` is the whole decision path: context from the provider, usage from
the ledger, the pack's verdict, approvals already held, reviewer tiers for
``escalate``, then the ledger row and the log entry. Nothing on that path
raises: any fault (invalid input, a context provider that fails, a ledger that is
locked, corrupt or full, a log that cannot be written, an engine error) yields
the pack's fail-closed decision, never looser than what the rules said, with the
fault named in ``verdict.errors``. ``enforce`` and ``guard`` build on ``check``.

Reading usage and recording the decision happen in one ledger transaction, so
processes sharing a ledger see each other's decisions and a budget is not
overspent by two checks racing. A case that goes to reviewers is recorded in a
second transaction once they answer, so no lock is held while a person thinks.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from pydantic import BaseModel

from aigre_policy.gate import approvals as approvals_mod
from aigre_policy.gate.approvals import Approval, Resolution, admit
from aigre_policy.gate.clock import Clock, iso, system_clock, to_us
from aigre_policy.gate.errors import (
    ApprovalRejected,
    ApprovalRequired,
    Escalated,
    GateError,
    refusal_for,
)
from aigre_policy.gate.ledger import (
    ApprovalRecord,
    ChangedRow,
    Contribution,
    LedgerError,
    LedgerRow,
    LedgerSession,
    LedgerStore,
    open_ledger,
)
from aigre_policy.gate.log import DecisionLog, LogError
from aigre_policy.gate.review import (
    Escalation,
    Reviewer,
    ReviewRequest,
    aescalate,
    escalate,
    tiers_for,
)
from aigre_policy.gate.usage import UsageCalculator
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.gate.world import ContextProvider, Directory
from aigre_policy.pack import Pack, load_pack
from aigre_policy.plain import as_plain
from aigre_policy.verdict import LATTICE, Verdict, canonical_json, digest, input_digest

logger = logging.getLogger("aigre_policy.gate")

OUTCOMES = ("executed", "failed", "skipped", "rolled_back")


def _fault(component: str, message: str) -> dict[str, Any]:
    """A fault as a verdict problem: ``path`` names the gate component that failed."""
    return {"kind": "engine", "path": f"gate.{component}", "message": message}


def _described(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, LedgerError | LogError) else f"{type(exc).__name__}: {exc}"


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def _stricter(a: str, b: str) -> str:
    return a if LATTICE.get(a, 3) >= LATTICE.get(b, 3) else b


@dataclass
class _Draft:
    """A decision on its way through the gate, before it is recorded."""

    started: int
    now: datetime
    document: dict[str, Any]
    action_digest: str
    base: Verdict | None  # None: a fault stopped the gate before the pack judged
    recordable: bool  # the input was valid: the ledger may keep it
    resolution: Resolution | None = None
    shadow: dict[str, Any] | None = None
    shadow_verdict: Verdict | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    action_json: str = ""  # the canonical JSON the digest was taken of, kept in the ledger


@dataclass(frozen=True, slots=True)
class _Written:
    """The ledger row a decision's transaction wrote, for the calculators once it commits."""

    row: ChangedRow
    seq: int
    contributions: dict[str, Contribution]


class _NoLedger:
    """The session of a gate without a ledger: no history, no approvals, nothing kept."""

    def state(self) -> tuple[str, int]:
        raise LedgerError("no ledger is configured, and the pack declares usage values")

    def current_rows(self, start_us: int) -> list[ChangedRow]:
        return []

    def changes(self, after_seq: int) -> list[ChangedRow]:
        return []

    def contributions(
        self, keys: Sequence[str], row_ids: Sequence[int] | None, start_us: int = 0
    ) -> dict[int, dict[str, Contribution]]:
        return {}

    def add_contributions(self, rows: Sequence[tuple[str, int, int, Contribution]]) -> None:
        return None

    def actions(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        return {}

    def record(self, row: LedgerRow, contributions: Mapping[str, Contribution]) -> None:
        return None  # nothing kept

    def set_outcome(self, decision_id: str, outcome: str, at_us: int) -> bool:
        return False

    def approvals(self, action_digest: str) -> list[ApprovalRecord]:
        return []

    def add_approval(self, approval: ApprovalRecord) -> bool:
        raise LedgerError("no ledger is configured to keep approvals")

    def count(self) -> int:
        return 0


class Run:
    """An action ``enforce`` let through: mark it ``rolled_back``, ``skipped``, or give its cost.

    On leaving the ``with`` block the outcome is recorded: ``executed``, or
    ``failed`` when the block raised (unless it was marked otherwise).
    """

    def __init__(self, verdict: GateVerdict):
        self.verdict = verdict
        self.status: str | None = None
        self.cost_usd: float | None = None
        self.detail = ""
        self.faults: list[str] = []

    def rolled_back(self, detail: str = "") -> None:
        self.status, self.detail = "rolled_back", detail

    def skipped(self, detail: str = "") -> None:
        self.status, self.detail = "skipped", detail


class Gate:
    """Checks proposed actions against a pack and records every decision.

    ``ledger``: a ``LedgerStore`` or a URL (``sqlite:///aigre.db``); needed when the
    pack declares ``usage`` values and to keep approvals. ``log``: a ``DecisionLog``
    or a path. ``context``: a ``ContextProvider`` (freezes, error budget,
    incidents). ``clock``: where ``context.now`` comes from. ``directory``: approver
    group membership. ``reviewers``: escalation tiers. ``shadow``: a candidate pack
    evaluated beside the enforced one. ``approval_lifetime``: how long a recorded
    approval counts (``None``: while the action is the same). ``defaults``: fields
    ``guard`` puts into every action it builds (``actor``, ``environment``, ...).
    """

    def __init__(
        self,
        pack: Pack,
        *,
        ledger: str | Path | LedgerStore | None = None,
        log: str | Path | DecisionLog | None = None,
        context: ContextProvider | None = None,
        clock: Clock = system_clock,
        directory: Directory | None = None,
        reviewers: Sequence[Reviewer] = (),
        shadow: Pack | None = None,
        approval_lifetime: timedelta | None = timedelta(hours=24),
        defaults: Mapping[str, Any] | None = None,
    ):
        self.pack = pack
        self.ledger = open_ledger(ledger)
        if isinstance(log, str | Path):
            sensitive = getattr(pack, "sensitive", None) or pack._compiled.manifest.sensitive
            log = DecisionLog(log, clock=clock, sensitive=sensitive or None)
        self.log = log
        self.context = context
        self.clock = clock
        self.directory = directory
        self.reviewers = tuple(reviewers)
        self.shadow = shadow
        self.approval_lifetime = approval_lifetime
        self.defaults = dict(defaults or {})
        self._usage = UsageCalculator(pack.program.usages, pack.envelopes)
        self._shadow_usage = (
            UsageCalculator(shadow.program.usages, shadow.envelopes) if shadow else None
        )
        self._ref = {"name": pack.name, "version": pack.version, "digest": pack.digest}
        self._pending: dict[str, tuple[str, str]] = {}
        self._pending_lock = threading.Lock()

    @classmethod
    def from_pack(
        cls,
        path: str | Path,
        *,
        envelopes: dict[str, dict[str, Any]] | None = None,
        shadow: str | Path | Pack | None = None,
        **options: Any,
    ) -> Gate:
        """A gate over the pack at ``path``; ``shadow`` may be a candidate pack's path."""
        candidate = load_pack(shadow) if isinstance(shadow, str | Path) else shadow
        return cls(load_pack(path, envelopes), shadow=candidate, **options)

    # -- checking --------------------------------------------------------------------------

    def check(self, action: Any) -> GateVerdict:
        """Judge ``action`` and record the decision; never raises, never fails open."""
        started = perf_counter_ns()
        try:
            outcome = self._first_pass(action, started)
            if isinstance(outcome, GateVerdict):
                return outcome
            return self._second_pass(outcome, self._escalate(outcome))
        except Exception as exc:  # a fault in the gate itself
            return self._crashed(action, started, exc)

    async def acheck(self, action: Any) -> GateVerdict:
        """``check`` for ``async`` code: storage runs in a thread, async reviewers are awaited."""
        started = perf_counter_ns()
        try:
            outcome = await asyncio.to_thread(self._first_pass, action, started)
            if isinstance(outcome, GateVerdict):
                return outcome
            escalation = await self._aescalate(outcome)
            return await asyncio.to_thread(self._second_pass, outcome, escalation)
        except Exception as exc:
            return self._crashed(action, started, exc)

    # -- enforcing -------------------------------------------------------------------------

    @contextmanager
    def enforce(self, action: Any) -> Iterator[Run]:
        """Run the ``with`` block only if the action is allowed; record how it went.

        Raises ``Denied``, ``ApprovalRequired`` or ``Escalated`` (each carrying the
        verdict) instead of entering the block.
        """
        verdict = self.check(action)
        refusal = refusal_for(verdict)
        if refusal is not None:
            raise refusal
        run = Run(verdict)
        try:
            yield run
        except BaseException as exc:
            self._finish(run, "failed", f"{type(exc).__name__}: {exc}")
            raise
        self._finish(run, "executed", "")

    @asynccontextmanager
    async def aenforce(self, action: Any) -> AsyncIterator[Run]:
        """``enforce`` for ``async with``."""
        verdict = await self.acheck(action)
        refusal = refusal_for(verdict)
        if refusal is not None:
            raise refusal
        run = Run(verdict)
        try:
            yield run
        except BaseException as exc:
            await asyncio.to_thread(self._finish, run, "failed", f"{type(exc).__name__}: {exc}")
            raise
        await asyncio.to_thread(self._finish, run, "executed", "")

    def guard(self, *, action: Any = None, **fields: Any) -> Callable[[Callable], Callable]:
        """Decorate a function so each call is proposed as an action and enforced.

        Each keyword is an action field: a constant, or a callable taking the
        function's own arguments (``target=lambda svc, n: svc``). ``action`` may
        give several fields at once (a mapping, or such a callable). Fields come
        from the gate's ``defaults``, then ``action``, then the keywords. Without
        an ``id`` or ``requested_at`` the gate supplies them; a call refused for an
        approval or a reviewer proposes the same action again when repeated with
        the same arguments, so an approval recorded in between lets it through.
        Works on ``async`` functions too.
        """

        def decorate(function: Callable) -> Callable:
            if inspect.iscoroutinefunction(function):

                @functools.wraps(function)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    proposal, key = self._propose(function, action, fields, args, kwargs)
                    try:
                        async with self.aenforce(proposal):
                            result = await function(*args, **kwargs)
                    except (ApprovalRequired, Escalated):
                        raise  # proposed again, unchanged, when the call is repeated
                    except BaseException:
                        self._forget(key)
                        raise
                    self._forget(key)
                    return result

                return run_async

            @functools.wraps(function)
            def run(*args: Any, **kwargs: Any) -> Any:
                proposal, key = self._propose(function, action, fields, args, kwargs)
                try:
                    with self.enforce(proposal):
                        result = function(*args, **kwargs)
                except (ApprovalRequired, Escalated):
                    raise  # proposed again, unchanged, when the call is repeated
                except BaseException:
                    self._forget(key)
                    raise
                self._forget(key)
                return result

            return run

        return decorate

    # -- approvals and outcomes ------------------------------------------------------------

    def approve(self, verdict: GateVerdict, *, by: str, group: str, note: str = "") -> Approval:
        """Record that ``by`` (of ``group``) approves the action ``verdict`` judged.

        Raises ``ApprovalRejected`` when ``by`` may not approve it (the proposer,
        not in the group, a group no fired rule names) and ``GateError`` when the
        approval cannot be stored. The next check of the same action counts it.
        """
        if not isinstance(verdict, GateVerdict) or not isinstance(verdict.action, dict):
            raise GateError("approve() takes the verdict a gate returned for the action")
        try:
            admit(verdict.fired, verdict.action, by, group, self.directory)
        except ApprovalRejected as exc:
            self._log_quietly(
                "approval",
                {
                    "decision_id": verdict.decision_id,
                    "status": "rejected",
                    "by": by,
                    "group": group,
                    "action_digest": verdict.action_digest,
                    "reason": str(exc),
                },
            )
            raise
        now = self.clock()
        record = ApprovalRecord(verdict.action_digest, by, group, to_us(now), note)
        try:
            with self._session() as session:
                session.add_approval(record)
                if self.log is not None:
                    self.log.append(
                        "approval",
                        {
                            "decision_id": verdict.decision_id,
                            "status": "granted",
                            "by": by,
                            "group": group,
                            "action_digest": verdict.action_digest,
                            "note": note,
                        },
                    )
        except (LedgerError, LogError) as exc:
            raise GateError(f"the approval was not recorded: {exc}") from exc
        return Approval(verdict.action_digest, by, group, now, note)

    async def aapprove(
        self, verdict: GateVerdict, *, by: str, group: str, note: str = ""
    ) -> Approval:
        return await asyncio.to_thread(self.approve, verdict, by=by, group=group, note=note)

    def record_outcome(
        self,
        verdict: GateVerdict,
        status: str,
        *,
        cost_usd: float | None = None,
        detail: str = "",
    ) -> None:
        """Record how an allowed action went (``executed``, ``failed``, ``skipped``,
        ``rolled_back``) when it ran outside ``enforce``. Raises ``GateError`` on a fault."""
        if status not in OUTCOMES:
            raise GateError(f"outcome must be one of {', '.join(OUTCOMES)}, not {status!r}")
        body: dict[str, Any] = {"decision_id": verdict.decision_id, "status": status}
        if cost_usd is not None:
            body["cost_usd"] = cost_usd
        if detail:
            body["detail"] = detail
        try:
            with self._session() as session:
                session.set_outcome(verdict.decision_id, status, to_us(self.clock()))
                if self.log is not None:
                    self.log.append("outcome", body)
        except (LedgerError, LogError) as exc:
            raise GateError(f"the outcome was not recorded: {exc}") from exc

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the decision path -----------------------------------------------------------------

    def _session(self) -> Any:
        return self.ledger.session() if self.ledger is not None else nullcontext(_NoLedger())

    def _first_pass(self, action: Any, started: int) -> GateVerdict | _Draft:
        """Judge and, unless reviewers must answer first, record in one transaction."""
        now = self.clock()
        document, action_json, action_digest, faults = self._prepare(action, now)
        if faults:  # nothing trustworthy to evaluate or to keep in the ledger
            draft = _Draft(started, now, document, action_digest, None, False, faults=faults)
            verdict = self._conclude(draft, None)
            self._log_quietly("decision", {"verdict": verdict.to_dict(), "input": document})
            return verdict
        verdict: GateVerdict | None = None
        try:
            with self._session() as session:
                draft = self._judge(session, document, action_digest, now, started)
                draft.action_json = action_json
                escalation = None
                if self._decision(draft) == "escalate":
                    if self.reviewers:
                        return draft  # asked outside the transaction, recorded in a second one
                    escalation = Escalation(None, (), ())
                verdict = self._conclude(draft, escalation)
                written = self._record(session, draft, verdict, escalation)
            self._committed(written)
            return verdict
        except (LedgerError, LogError) as exc:
            component = "log" if isinstance(exc, LogError) else "ledger"
            if verdict is None:
                return self._salvage(document, action_digest, now, started, component, exc)
            # judged but not recorded: fail closed, never looser than the rules' decision
            salvaged = self._fail_closed(verdict, [_fault(component, _described(exc))])
            self._keep_quietly(draft, salvaged, component)
            return salvaged

    def _second_pass(self, draft: _Draft, escalation: Escalation) -> GateVerdict:
        verdict = self._conclude(draft, escalation)
        try:
            with self._session() as session:
                written = self._record(session, draft, verdict, escalation)
            self._committed(written)
            return verdict
        except (LedgerError, LogError) as exc:
            component = "log" if isinstance(exc, LogError) else "ledger"
            salvaged = self._fail_closed(verdict, [_fault(component, _described(exc))])
            self._keep_quietly(draft, salvaged, component)
            return salvaged

    def _prepare(
        self, action: Any, now: datetime
    ) -> tuple[dict[str, Any], str, str, list[dict[str, Any]]]:
        """The input document, the action's canonical JSON and digest, or the faults that
        stop evaluation."""
        faults: list[dict[str, Any]] = []
        action_doc = _plain(action)
        action_json = ""
        try:
            action_doc = as_plain(action_doc, "action")  # the JSON data the pack judges
            canonical = canonical_json(action_doc)
            action_json = canonical.decode()
            action_digest = "sha256:" + hashlib.sha256(canonical).hexdigest()  # as digest()
        except (TypeError, ValueError) as exc:
            action_digest = input_digest(action_doc)
            faults.append(_fault("input", f"the action is not JSON data: {exc}"))
        context: dict[str, Any] = {}
        try:
            if self.context is not None:
                provided = _plain(self.context(action_doc, now))
                if not isinstance(provided, Mapping):
                    raise TypeError(f"the context provider returned {type(provided).__name__}")
                context = dict(as_plain(provided, "context"))
            context["now"] = iso(now)
        except Exception as exc:
            faults.append(_fault("context", f"the context provider failed: {_described(exc)}"))
        document = {"action": action_doc, "context": context, "usage": {}}
        return document, action_json, action_digest, faults

    def _judge(
        self,
        session: LedgerSession,
        document: dict[str, Any],
        action_digest: str,
        now: datetime,
        started: int,
    ) -> _Draft:
        """Usage, the pack's verdict, approvals and the shadow pack, inside one transaction."""
        try:
            document["usage"] = self._usage.compute(session, now, action_digest)
        except LedgerError as exc:
            faults = [_fault("ledger", _described(exc))]
            return _Draft(started, now, document, action_digest, None, False, faults=faults)
        base = self.pack.evaluate(document["action"], document["context"], document["usage"])
        draft = _Draft(started, now, document, action_digest, base, recordable=True)
        if any(e["kind"] == "input" for e in base.errors):
            draft.recordable = False
        if not base.fail_closed:
            held = session.approvals(action_digest) if base.decision == "require_approval" else []
            lifetime = self.approval_lifetime
            draft.resolution = approvals_mod.resolve(
                base.decision,
                base.fired,
                document["action"],
                held,
                to_us(now),
                None if lifetime is None else int(lifetime.total_seconds() * 1_000_000),
                self.directory,
            )
        if self.shadow is not None:
            self._shadow(session, draft)
        return draft

    def _shadow(self, session: LedgerSession, draft: _Draft) -> None:
        """Evaluate the candidate pack; whatever happens, the enforced decision is untouched."""
        assert self.shadow is not None and self._shadow_usage is not None
        assert draft.base is not None
        ref = {"name": self.shadow.name, "version": self.shadow.version}
        try:
            usage = self._shadow_usage.compute(session, draft.now, draft.action_digest)
            candidate = self.shadow.evaluate(
                draft.document["action"], draft.document["context"], usage
            )
        except Exception as exc:
            draft.shadow = {"pack": ref, "error": _described(exc)}
            return
        draft.shadow_verdict = candidate
        draft.shadow = {
            "pack": ref,
            "decision": candidate.decision,
            "fired": candidate.rule_ids,
            "fail_closed": candidate.fail_closed,
            "usage": usage,
            "agrees": candidate.decision == draft.base.decision,
        }

    def _decision(self, draft: _Draft) -> str:
        if draft.base is None:
            return self.pack.fail_closed
        if draft.resolution is not None:
            return draft.resolution.decision
        return draft.base.decision

    def _escalate(self, draft: _Draft) -> Escalation:
        return escalate(self._tiers(draft), self._review_request(draft))

    async def _aescalate(self, draft: _Draft) -> Escalation:
        return await aescalate(self._tiers(draft), self._review_request(draft))

    def _tiers(self, draft: _Draft) -> list[tuple[str, Any]]:
        fired = draft.base.fired if draft.base is not None else []
        named = list(
            dict.fromkeys(t for f in fired if f["verdict"] == "escalate" for t in f["escalate_to"])
        )
        return tiers_for(self.reviewers, named)

    def _review_request(self, draft: _Draft) -> ReviewRequest:
        doc = draft.document
        fired = draft.base.fired if draft.base is not None else []
        return ReviewRequest("", doc["action"], doc["context"], doc["usage"], fired)

    def _conclude(self, draft: _Draft, escalation: Escalation | None) -> GateVerdict:
        """The final verdict from the pack's, the approvals and the reviewers' answers."""
        base = draft.base
        decision = self._decision(draft)
        faults = [*(base.errors if base is not None else []), *draft.faults]
        fail_closed = base is None or base.fail_closed
        gate: dict[str, Any] = {"action_digest": draft.action_digest}
        if base is not None:
            gate["pack_decision"] = base.decision
            gate["usage"] = draft.document["usage"]
        resolution = draft.resolution
        if resolution is not None and resolution.counted + resolution.ignored:
            gate["approvals"] = resolution.evidence()
        if escalation is not None:
            gate["reviews"] = list(escalation.reviews)
            if escalation.decision is not None and decision == "escalate":
                # reviewers settle only an escalate decision, so none can loosen a deny
                decision = escalation.decision
                gate["settled_by"] = escalation.reviews[-1]["tier"]
            elif escalation.faults:
                decision = self.pack.fail_closed
                fail_closed = True
                faults += [_fault("reviewer", message) for message in escalation.faults]
            elif not any(r["reviewer"]["id"] != "none" for r in escalation.reviews):
                decision = self.pack.fail_closed
                gate["settled_by"] = "no reviewer: the pack's fail-closed decision"
        if draft.shadow is not None:
            gate["shadow"] = draft.shadow
        pending = resolution.pending_groups if resolution is not None else ()
        return GateVerdict(
            base,
            decision,
            pack=self._ref,
            input_document=draft.document,
            action_digest=draft.action_digest,
            gate=gate,
            fail_closed=fail_closed,
            errors=faults,
            elapsed_us=(perf_counter_ns() - draft.started) / 1000,
            approvers=list(pending) if pending and decision == "require_approval" else None,
        )

    def _record(
        self,
        session: LedgerSession,
        draft: _Draft,
        verdict: GateVerdict,
        escalation: Escalation | None,
    ) -> _Written | None:
        """Keep the decision in the ledger and the log; raises so the transaction rolls back."""
        written = None
        if draft.recordable:
            action = draft.document["action"]
            contributions = self._usage.contributions(action, verdict.decision, verdict.decision_id)
            if self._shadow_usage is not None:
                contributions.update(
                    self._shadow_usage.contributions(action, verdict.decision, verdict.decision_id)
                )
            row = LedgerRow(
                verdict.decision_id,
                draft.action_digest,
                action,
                verdict.decision,
                to_us(draft.now),
                draft.action_json,
            )
            kept = session.record(row, contributions)
            if kept is not None:
                changed = ChangedRow(kept[0], draft.action_digest, row.at_us, True)
                written = _Written(changed, kept[1], contributions)
        if self.log is None:
            return written
        self.log.append("decision", {"verdict": verdict.to_dict(), "input": draft.document})
        for review in escalation.reviews if escalation else ():
            self.log.append("review", {"decision_id": verdict.decision_id, **review})
        if draft.shadow_verdict is not None and draft.shadow and not draft.shadow["agrees"]:
            body = {
                "verdict": draft.shadow_verdict.to_dict(),
                "input": {**draft.document, "usage": draft.shadow["usage"]},
                "shadow_of": verdict.decision_id,
            }
            try:
                self.log.append("shadow", body)
            except LogError as exc:  # the shadow never changes the enforced decision
                logger.error("shadow entry not logged: %s", exc)
                verdict.gate["shadow"] = {**draft.shadow, "log_error": str(exc)}
        return written

    def _committed(self, written: _Written | None) -> None:
        """The decision's transaction committed: the usage calculators take the new row."""
        if written is None:
            return
        self._usage.committed(written.row, written.seq, written.contributions)
        if self._shadow_usage is not None:
            self._shadow_usage.committed(written.row, written.seq, written.contributions)

    # -- failing closed --------------------------------------------------------------------

    def _fail_closed(self, verdict: GateVerdict, faults: list[dict[str, Any]]) -> GateVerdict:
        """The verdict failed closed: the fail-closed decision, never looser than before."""
        decision = _stricter(self.pack.fail_closed, verdict.decision)
        return GateVerdict(
            verdict.pack_verdict,
            decision,
            pack=verdict.pack,
            input_document=verdict.input,
            action_digest=verdict.action_digest,
            gate=verdict.gate,
            fail_closed=True,
            errors=[*verdict.errors, *faults],
            elapsed_us=verdict.elapsed_us,
            approvers=verdict.approvers if decision == verdict.decision else None,
        )

    def _salvage(
        self,
        document: dict[str, Any],
        action_digest: str,
        now: datetime,
        started: int,
        component: str,
        exc: Exception,
    ) -> GateVerdict:
        """A fault while judging or recording: fail closed and keep what can still be kept."""
        faults = [_fault(component, _described(exc))]
        draft = _Draft(started, now, document, action_digest, None, False, faults=faults)
        verdict = self._conclude(draft, None)
        self._keep_quietly(draft, verdict, component)
        return verdict

    def _keep_quietly(self, draft: _Draft, verdict: GateVerdict, broken: str) -> None:
        """Best effort: log a fail-closed verdict in whichever sink still works."""
        if broken != "log":
            self._log_quietly("decision", {"verdict": verdict.to_dict(), "input": draft.document})

    def _log_quietly(self, kind: str, body: dict[str, Any]) -> None:
        if self.log is None:
            return
        try:
            self.log.append(kind, body)
        except Exception as exc:  # already failing closed; the fault is in the verdict
            logger.error("%s entry not logged: %s", kind, exc)

    def _crashed(self, action: Any, started: int, exc: Exception) -> GateVerdict:
        logger.exception("gate fault")
        document = {"action": _plain(action), "context": {}, "usage": {}}
        try:
            action_digest = digest(document["action"])
        except (TypeError, ValueError):
            action_digest = digest(repr(document["action"]))
        try:
            now = self.clock()
        except Exception:
            now = system_clock()
        faults = [_fault("engine", _described(exc))]
        draft = _Draft(started, now, document, action_digest, None, False, faults=faults)
        return self._conclude(draft, None)

    # -- guard helpers ---------------------------------------------------------------------

    def _propose(
        self,
        function: Callable,
        action: Any,
        fields: Mapping[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[dict[str, Any], str]:
        proposal: dict[str, Any] = dict(self.defaults)
        if action is not None:
            proposal.update(_plain(action(*args, **kwargs) if callable(action) else action))
        for name, value in fields.items():
            proposal[name] = value(*args, **kwargs) if callable(value) else value
        proposal = {k: _plain(v) for k, v in proposal.items()}
        key = digest({k: v for k, v in proposal.items() if k not in ("id", "requested_at")})
        with self._pending_lock:
            known = self._pending.get(key)
            if known is None:
                known = (
                    proposal.get("id") or f"{function.__name__}-{uuid.uuid4().hex[:12]}",
                    proposal.get("requested_at") or iso(self.clock()),
                )
                if len(self._pending) > 10_000:
                    self._pending.clear()
                self._pending[key] = known
        proposal.setdefault("id", known[0])
        proposal.setdefault("requested_at", known[1])
        return proposal, key

    def _forget(self, key: str) -> None:
        """Drop a proposal that ran or was denied; one waiting for a person is kept."""
        with self._pending_lock:
            self._pending.pop(key, None)

    def _finish(self, run: Run, status: str, detail: str) -> None:
        status = run.status or status
        try:
            self.record_outcome(
                run.verdict, status, cost_usd=run.cost_usd, detail=run.detail or detail
            )
        except GateError as exc:  # the action already ran: report, do not pretend it failed
            logger.error("outcome of %s not recorded: %s", run.verdict.decision_id, exc)
            run.faults.append(str(exc))
