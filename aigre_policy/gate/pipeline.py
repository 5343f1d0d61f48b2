"""The decision pipeline: one check, from the proposal to the logged verdict.

The stages, in order: intake (the input document and the attested actor), judge
(under the ledger's write lock), conclude (approvals and reviewers), record (the
ledger row, in the same transaction), publish (the log, after the commit).
``Pipeline.steps`` is the one core of ``check`` and ``acheck``: a generator that
yields an ``Ask`` for each reviewer call, driven by ``review.run`` or
``review.arun``. Nothing in it raises: any fault yields the fail-closed verdict.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter_ns
from typing import Any

from aigre_policy.gate.clock import Clock, system_clock
from aigre_policy.gate.conclude import Concluder
from aigre_policy.gate.draft import Draft, Written, described, fault, nothing_used, plain
from aigre_policy.gate.intake import Intake, Prepared
from aigre_policy.gate.judge import Judge
from aigre_policy.gate.ledger import LedgerError
from aigre_policy.gate.log import LogError
from aigre_policy.gate.recorder import Recorder, decision_entry
from aigre_policy.gate.review import Escalation, Steps, ask_tiers
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.verdict import refused_input_digest

logger = logging.getLogger("aigre_policy.gate")


# What a decision entry holds for an action that is not JSON data, or past the evaluation
# bounds (its errors say which)
NOT_JSON = "<not JSON data within the evaluation bounds: see the verdict's errors>"


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The stages of a check, and the clock that dates it."""

    intake: Intake
    judge: Judge
    concluder: Concluder
    recorder: Recorder
    clock: Clock

    def steps(
        self, action: Any, actor: Any, consume: bool, requested_by: str | None = None
    ) -> Steps[GateVerdict]:
        """Judge ``action`` and record the decision; never raises, never fails open."""
        started = perf_counter_ns()
        try:
            outcome = self._first_pass(action, started, actor, consume, requested_by)
            if isinstance(outcome, GateVerdict):
                return outcome
            escalation = yield from ask_tiers(*self.concluder.review(outcome))
            return self._second_pass(outcome, escalation)
        except Exception as exc:  # a fault in the gate itself
            return self._crashed(action, started, exc)

    def _first_pass(
        self, action: Any, started: int, actor: Any, consume: bool, requested_by: str | None
    ) -> GateVerdict | Draft:
        """Judge and, unless reviewers must answer first, record in one transaction."""
        now = self.clock()
        prepared = self.intake.prepare(action, now)
        document, action_digest = prepared.document, prepared.action_digest
        attested = self.intake.attest_actor(document, actor, prepared.faults)
        if prepared.faults:  # nothing trustworthy to evaluate or to keep in the ledger
            return self._refused(prepared, started, now, attested)
        verdict: GateVerdict | None = None
        try:
            with self.recorder.session() as session:  # the write lock comes first
                draft = self.judge.judge(session, document, action_digest, now, started, attested)
                draft.action_json, draft.consume = prepared.action_json, consume
                draft.requested_by = requested_by
                draft.context_notes = prepared.notes
                escalation = None
                if self.concluder.decision(draft) == "escalate":
                    if self.concluder.reviewers:
                        return draft  # asked outside the transaction, recorded in a second one
                    escalation = Escalation(None, (), ())
                verdict = self.concluder.conclude(draft, escalation)
                written = self.recorder.keep(session, draft, verdict)
        except LedgerError as exc:
            if verdict is None:
                return self._salvage(document, action_digest, now, started, exc)
            # judged but not recorded: fail closed, never looser than the rules' decision
            return self._unrecorded(draft, verdict, exc)
        return self._publish(draft, verdict, escalation, written)

    def refuse(self, action: Any, actor: Any, faults: list[dict[str, Any]]) -> GateVerdict:
        """The fail-closed verdict for a proposal its caller refuses before judging,
        logged like any fault that stops a check (the faults in its evidence)."""
        started = perf_counter_ns()
        try:
            now = self.clock()
            prepared = self.intake.prepare(action, now)
            attested = self.intake.attest_actor(prepared.document, actor, prepared.faults)
            prepared.faults[:0] = faults
            return self._refused(prepared, started, now, attested)
        except Exception as exc:  # a fault in the gate itself
            return self._crashed(action, started, exc)

    def _refused(
        self, prepared: Prepared, started: int, now: datetime, attested: dict[str, Any] | None
    ) -> GateVerdict:
        """Faults stop the check before the pack judges: fail closed, log the refusal."""
        document = prepared.document
        draft = Draft(started, now, document, prepared.action_digest, None, False, actor=attested)
        draft.faults, draft.context_notes = prepared.faults, prepared.notes
        refused = self.concluder.conclude(draft, None)
        logged = document
        if not prepared.action_json:  # not JSON data: the log keeps the refusal, not it
            logged = {**document, "action": NOT_JSON}
        self.recorder.log_quietly("decision", decision_entry(refused, logged))
        return refused

    def _second_pass(self, draft: Draft, escalation: Escalation) -> GateVerdict:
        """Record a reviewed case, judging it again under the write lock first.

        Other checks may have spent the budget while the reviewers thought: the
        pack's verdict on the usage of the moment stands when it is stricter than
        what the reviewers settled.
        """
        reviewed = self.concluder.conclude(draft, escalation)
        verdict: GateVerdict | None = None
        try:
            with self.recorder.session() as session:
                document = {**draft.document, "usage": {}}
                fresh = self.judge.judge(
                    session, document, draft.action_digest, draft.now, draft.started, draft.actor
                )
                fresh.action_json, fresh.consume = draft.action_json, draft.consume
                fresh.requested_by = draft.requested_by
                fresh.context_notes = draft.context_notes
                verdict = self.concluder.settle(reviewed, fresh, escalation)
                written = self.recorder.keep(session, fresh, verdict)
        except LedgerError as exc:
            return self._unrecorded(draft, verdict or reviewed, exc)
        return self._publish(fresh, verdict, escalation, written)

    def _publish(
        self,
        draft: Draft,
        verdict: GateVerdict,
        escalation: Escalation | None,
        written: Written | None,
    ) -> GateVerdict:
        """The ledger committed: log the decision, or take the row back if the log cannot."""
        self.recorder.committed(written)
        try:
            self.recorder.publish(draft, verdict, escalation)
        except LogError as exc:
            nothing_used(verdict)  # the release takes the uses back with the row
            salvaged = self.concluder.fail_closed(verdict, [fault("log", described(exc))])
            self.recorder.release_quietly(verdict, written)
            return salvaged
        return verdict

    # -- failing closed --------------------------------------------------------------------

    def _unrecorded(self, draft: Draft, verdict: GateVerdict, exc: LedgerError) -> GateVerdict:
        """The transaction rolled back: fail closed, and log that verdict if the log works."""
        nothing_used(verdict)  # the transaction that used them rolled back
        salvaged = self.concluder.fail_closed(verdict, [fault("ledger", described(exc))])
        self.recorder.keep_quietly(draft, salvaged, "ledger")
        return salvaged

    def _salvage(
        self,
        document: dict[str, Any],
        action_digest: str,
        now: datetime,
        started: int,
        exc: Exception,
    ) -> GateVerdict:
        """A fault in the ledger before judging: fail closed and log what can still be."""
        faults = [fault("ledger", described(exc))]
        draft = Draft(started, now, document, action_digest, None, False, faults=faults)
        verdict = self.concluder.conclude(draft, None)
        self.recorder.keep_quietly(draft, verdict, "ledger")
        return verdict

    def _crashed(self, action: Any, started: int, exc: Exception) -> GateVerdict:
        logger.exception("gate fault")
        with contextlib.suppress(Exception):  # a model that cannot write itself: kept as given
            action = plain(action)
        document = {"action": action, "context": {}, "usage": {}}
        action_digest = refused_input_digest(action)  # never raises, whatever the object
        try:
            now = self.clock()
        except Exception:
            now = system_clock()
        faults = [fault("engine", described(exc))]
        draft = Draft(started, now, document, action_digest, None, False, faults=faults)
        return self.concluder.conclude(draft, None)
