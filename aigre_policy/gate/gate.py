"""The gate: judge proposed actions in-process, record every decision, enforce the verdict.

``Gate.check`` is the whole decision path: context from the provider, usage from
the ledger, the pack's verdict, approvals already held, reviewer tiers for
``escalate``, then the ledger row and the log entry. Nothing on that path
raises: any fault (invalid input, a context provider that fails, a ledger that is
locked, corrupt or full, a log that cannot be written, an engine error) yields
the pack's fail-closed decision, never looser than what the rules said, with the
fault named in ``verdict.errors``. ``enforce`` and ``guard`` build on ``check``.

Reading usage and recording the decision happen in one ledger transaction that
takes the write lock first, so a check and the spend it admits are one step
across processes: the ledger's time (the later of this gate's clock and the
latest time recorded), the usage values, the verdict and the row that reserves
the spend are all read and written under that lock. A case that goes to
reviewers is recorded in a second transaction once they answer, so no lock is
held while a person thinks; that transaction judges the action again on the
usage of the moment, so no budget is overspent through a reviewer either.

The log is written after the ledger commits, so it holds the decision the caller
received: one ``decision`` entry per check. When the commit fails the entry is
the fail-closed verdict naming the fault; when the log cannot take the entry the
ledger row is released again.

The proposal is a claim: what the gate attests (``context.now`` from its clock,
``context.actor`` from its identity source, ``context.approvals`` from its approval
store) overwrites any other say, and an enforced allow uses up its approvals.

``Gate`` is a facade over the stages, each in its own module: ``intake`` (the
input and the attested actor), ``judge`` (under the write lock), ``conclude``
(approvals and reviewers), ``recorder`` (the ledger row, then the log entry);
``pipeline`` runs them as one generator that ``check`` drives from plain code and
``acheck`` from ``async`` code, so the two differ only in how a reviewer is called.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from aigre_policy.gate.approvals import DEFAULT_CLOCK_SKEW, Approval, admit, excluded
from aigre_policy.gate.clock import Clock, system_clock, to_us
from aigre_policy.gate.conclude import Concluder
from aigre_policy.gate.draft import fault
from aigre_policy.gate.errors import ApprovalRejected, GateError, refusal_for
from aigre_policy.gate.intake import Identity, Intake, attested_fields
from aigre_policy.gate.judge import Judge, Judged
from aigre_policy.gate.ledger import ApprovalRecord, LedgerStore, open_ledger
from aigre_policy.gate.log import DecisionLog
from aigre_policy.gate.notify import Notify, Webhook, as_notify
from aigre_policy.gate.outbox import Notifier
from aigre_policy.gate.pipeline import Pipeline
from aigre_policy.gate.proposals import Proposals
from aigre_policy.gate.recorder import Recorder
from aigre_policy.gate.review import Reviewer, arun, run
from aigre_policy.gate.usage import UsageCalculator
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.gate.world import ContextProvider, Directory
from aigre_policy.pack import Pack, load_pack

logger = logging.getLogger("aigre_policy.gate")

OUTCOMES = ("executed", "failed", "skipped", "rolled_back")

__all__ = ["OUTCOMES", "Gate", "Identity", "Run"]


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


def _admitted(verdict: GateVerdict) -> Run:
    """The run of an allowed action; a refusal (carrying the verdict) otherwise."""
    refusal = refusal_for(verdict)
    if refusal is not None:
        raise refusal
    return Run(verdict)


def _open_log(
    log: str | Path | DecisionLog | None,
    pack: Pack,
    ledger: LedgerStore | None,
    clock: Clock,
    log_options: Mapping[str, Any] | None,
) -> DecisionLog | None:
    """A log given as a path, opened; its checkpoints are copied to the ledger."""
    if not isinstance(log, str | Path):
        return log
    sensitive = getattr(pack, "sensitive", None)
    store = ledger if hasattr(ledger, "add_checkpoint") else None
    options = {"checkpoint_store": store, **(log_options or {})}
    return DecisionLog(log, clock=clock, sensitive=sensitive or None, **options)


def _judged(pack: Pack) -> Judged:
    return Judged(pack, UsageCalculator(pack.program.usages, pack.envelopes), attested_fields(pack))


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
    ``log_options``: more ``DecisionLog`` options for a log given as a path
    (``signing_key``, ``checkpoint_entries``, ...); its checkpoints are copied to
    the ledger unless ``checkpoint_store`` says otherwise.
    ``identity``: the authenticated actor, attested as ``context.actor`` (a mapping or
    model, or a callable ``(action) -> actor``; a per-call ``actor=`` wins).
    ``clock_skew``: how far an approval's time may run ahead of the gate's clock.
    ``notify``: webhooks told when a decision waits for people (a ``Notify``, a
    ``Webhook`` or a list, or a ``Notifier`` to share); queued in the ledger.
    ``held``: a ``held.HeldDecisions`` over the same ledger: each ``require_approval``
    decision is kept in it, in the decision's transaction, for approvers to list.

    The gate is a facade: ``Pipeline`` runs each check (intake, judge, conclude,
    record, publish), ``Recorder`` keeps decisions, approvals and outcomes. The
    options are read when the gate is built.
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
        log_options: Mapping[str, Any] | None = None,
        identity: Identity | None = None,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        notify: Notify | Webhook | Sequence[Webhook] | Notifier | None = None,
        held: Any = None,
    ):
        if clock_skew < timedelta(0):
            raise GateError("clock_skew must not be negative")
        self.pack = pack
        self.ledger = open_ledger(ledger)
        self.log = _open_log(log, pack, self.ledger, clock, log_options)
        self.context = context
        self.clock = clock
        self.directory = directory
        self.reviewers = tuple(reviewers)
        self.shadow = shadow
        self.approval_lifetime = approval_lifetime
        self.defaults = dict(defaults or {})
        self.identity = identity
        self.clock_skew = clock_skew
        self.reusable_groups = frozenset(getattr(pack, "reusable_approvals", None) or ())
        self.notifier = _notifier(notify, self.ledger)
        if held is not None and self.ledger is None:
            raise GateError("held decisions need a ledger: they are kept in it")
        self.held = held
        self._build()

    def _build(self) -> None:
        """The stages of a check, from the options."""
        enforced = _judged(self.pack)
        candidate = _judged(self.shadow) if self.shadow is not None else None
        calculators = (enforced.usage,) + ((candidate.usage,) if candidate else ())
        self._recorder = Recorder(
            self.ledger,
            self.log,
            calculators,
            self.reusable_groups,
            self.clock,
            self.notifier,
            self.held,
        )
        self._pipeline = Pipeline(
            Intake(self.context, self.identity, enforced.attests),
            Judge(
                enforced,
                candidate,
                self.directory,
                self.approval_lifetime,
                self.clock_skew,
                self.reusable_groups,
            ),
            Concluder(
                self.pack.fail_closed, self._pack_ref(), self.reusable_groups, self.reviewers
            ),
            self._recorder,
            self.clock,
        )
        self._proposals = Proposals(self.defaults, self.clock)

    def _pack_ref(self) -> dict[str, str]:
        return {"name": self.pack.name, "version": self.pack.version, "digest": self.pack.digest}

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

    def check(
        self,
        action: Any,
        *,
        actor: Any = None,
        consume: bool = False,
        requested_by: str | None = None,
    ) -> GateVerdict:
        """Judge ``action`` and record the decision; never raises, never fails open.

        ``actor``: the authenticated actor for this call (else the gate's ``identity``).
        ``consume``: the caller runs the action if allowed, so an ``allow`` uses up the
        approvals it rests on (``enforce`` and ``guard`` do this).
        ``requested_by``: who asked (a server's caller), kept with a held decision.
        """
        return run(self._pipeline.steps(action, actor, consume, requested_by))

    async def acheck(
        self,
        action: Any,
        *,
        actor: Any = None,
        consume: bool = False,
        requested_by: str | None = None,
    ) -> GateVerdict:
        """``check`` for ``async`` code: storage runs in a thread, async reviewers are awaited."""
        return await arun(self._pipeline.steps(action, actor, consume, requested_by))

    def refuse(self, action: Any, reasons: Sequence[str], *, actor: Any = None) -> GateVerdict:
        """Record the fail-closed decision for a proposal refused before the pack could
        judge it (a tool call with no mapping, arguments that break their schema, ...):
        the pack's fail-closed verdict, each reason a fault of its evidence, logged
        like any other decision. Never raises."""
        faults = [fault("caller", str(reason)) for reason in reasons]
        return self._pipeline.refuse(action, actor, faults)

    async def arefuse(
        self, action: Any, reasons: Sequence[str], *, actor: Any = None
    ) -> GateVerdict:
        """``refuse`` for ``async`` code: the log is written in a thread."""
        return await asyncio.to_thread(self.refuse, action, reasons, actor=actor)

    # -- enforcing -------------------------------------------------------------------------

    @contextmanager
    def enforce(self, action: Any, *, actor: Any = None) -> Iterator[Run]:
        """Run the ``with`` block only if the action is allowed; record how it went.

        Raises ``Denied``, ``ApprovalRequired`` or ``Escalated`` (each carrying the
        verdict) instead of entering the block. An allow uses up the approvals it
        rests on (unless reusable), in the transaction that records the decision.
        """
        ran = _admitted(self.check(action, actor=actor, consume=True))
        try:
            yield ran
        except BaseException as exc:
            self._finish(ran, exc)
            raise
        self._finish(ran, None)

    @asynccontextmanager
    async def aenforce(self, action: Any, *, actor: Any = None) -> AsyncIterator[Run]:
        """``enforce`` for ``async with``."""
        ran = _admitted(await self.acheck(action, actor=actor, consume=True))
        try:
            yield ran
        except BaseException as exc:
            await asyncio.to_thread(self._finish, ran, exc)
            raise
        await asyncio.to_thread(self._finish, ran, None)

    def _finish(self, ran: Run, raised: BaseException | None) -> None:
        """Record how the ``with`` block went: ``executed``, ``failed``, or as marked."""
        status = ran.status or ("executed" if raised is None else "failed")
        detail = ran.detail or ("" if raised is None else f"{type(raised).__name__}: {raised}")
        try:
            self.record_outcome(ran.verdict, status, cost_usd=ran.cost_usd, detail=detail)
        except GateError as exc:  # the action already ran: report, do not pretend it failed
            logger.error("outcome of %s not recorded: %s", ran.verdict.decision_id, exc)
            ran.faults.append(str(exc))

    def guard(
        self, *, action: Any = None, identity: Identity | None = None, **fields: Any
    ) -> Callable[[Callable], Callable]:
        """Decorate a function so each call is proposed as an action and enforced.

        Each keyword is an action field: a constant, or a callable taking the
        function's own arguments (``target=lambda svc, n: svc``). ``action`` may
        give several fields at once (a mapping, or such a callable). Fields come
        from the gate's ``defaults``, then ``action``, then the keywords. Without
        an ``id`` or ``requested_at`` the gate supplies them; a call refused for an
        approval or a reviewer proposes the same action again when repeated with
        the same arguments, so an approval recorded in between lets it through.
        ``identity`` attests the actor of these calls, as ``Gate(identity=...)`` does
        (an ``actor`` keyword is a field of the proposal, a claim). Works on ``async``
        functions too.
        """
        proposals = self._proposals

        def decorate(function: Callable) -> Callable:
            if inspect.iscoroutinefunction(function):

                @functools.wraps(function)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    proposal, key = proposals.propose(function, action, fields, args, kwargs)
                    with proposals.attempt(key):
                        async with self.aenforce(proposal, actor=identity):
                            return await function(*args, **kwargs)

                return run_async

            @functools.wraps(function)
            def run_sync(*args: Any, **kwargs: Any) -> Any:
                proposal, key = proposals.propose(function, action, fields, args, kwargs)
                with proposals.attempt(key), self.enforce(proposal, actor=identity):
                    return function(*args, **kwargs)

            return run_sync

        return decorate

    # -- approvals and outcomes ------------------------------------------------------------

    def approve(
        self,
        verdict: GateVerdict,
        *,
        by: str,
        group: str,
        note: str = "",
        reusable: bool = False,
    ) -> Approval:
        """Record that ``by`` (of ``group``) approves the action ``verdict`` judged.

        Raises ``ApprovalRejected`` when ``by`` may not approve it (the actor or whom
        it acts for, not in the group, a group no fired rule names) and ``GateError``
        when the approval cannot be stored. The next check of the same action counts
        it; the first enforced ``allow`` it lets through uses it up, unless
        ``reusable`` (or the pack's ``reusable_approvals`` names ``group``).
        """
        entry = self._eligible("approve", verdict, by, group)
        now = self.clock()
        record = ApprovalRecord(verdict.action_digest, by, group, to_us(now), note, reusable)
        self._recorder.grant(record, _approval(entry, "granted", note=note, reusable=reusable))
        return Approval(verdict.action_digest, by, group, now, note, reusable)

    def _eligible(self, verb: str, verdict: Any, by: str, group: str) -> dict[str, Any]:
        """The log entry's common fields once ``by`` of ``group`` may answer for the action
        ``verdict`` judged; a refusal is logged and raised (``ApprovalRejected``)."""
        if not isinstance(verdict, GateVerdict) or not isinstance(verdict.action, dict):
            raise GateError(f"{verb}() takes the verdict a gate returned for the action")
        actor = verdict.gate.get("actor") if isinstance(verdict.gate, dict) else None
        entry = {
            "decision_id": verdict.decision_id,
            "by": by,
            "group": group,
            "action_digest": verdict.action_digest,
        }
        try:
            admit(verdict.fired, excluded(verdict.action, actor), by, group, self.directory)
        except ApprovalRejected as exc:
            self._recorder.log_quietly("approval", _approval(entry, "rejected", reason=str(exc)))
            raise
        return entry

    def reject(
        self, verdict: GateVerdict, *, by: str, group: str, note: str = ""
    ) -> dict[str, Any]:
        """Record that ``by`` (of ``group``) turns down the action ``verdict`` judged.

        Whoever could approve may reject (the same checks as ``approve``, the same
        ``ApprovalRejected``). Nothing is granted or taken away: the ledger holds no
        rejections, so the action keeps its ``require_approval`` and a later approval
        still counts. The rejection is the log's ``approval`` entry (``rejected``,
        ``declined: true``, the note); ``GateError`` when it cannot be written.
        """
        entry = self._eligible("reject", verdict, by, group)
        body = _approval(entry, "rejected", note=note, declined=True)
        self._recorder.logged("approval", body)
        return body

    async def aapprove(
        self, verdict: GateVerdict, *, by: str, group: str, note: str = "", reusable: bool = False
    ) -> Approval:
        return await asyncio.to_thread(
            self.approve, verdict, by=by, group=group, note=note, reusable=reusable
        )

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
        self._recorder.outcome(verdict.decision_id, status, body)

    def close(self) -> None:
        self._recorder.close()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _notifier(notify: Any, ledger: LedgerStore | None) -> Notifier | None:
    """The notifier ``Gate(notify=...)`` asks for, its worker started."""
    if notify is None:
        return None
    notifier = notify if isinstance(notify, Notifier) else Notifier(ledger, as_notify(notify))
    notifier.start()
    return notifier


def _approval(entry: dict[str, Any], status: str, **more: Any) -> dict[str, Any]:
    """An ``approval`` log entry: who, for which decision and action, and the status."""
    return {**entry, "status": status, **more}
