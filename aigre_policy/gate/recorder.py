"""The last stages of a check: keep the decision in the ledger, publish it to the log.

Inside the check's write transaction the recorder uses up the approvals an
enforced ``allow`` rests on and writes the row that reserves its spend; once the
transaction commits it tells the usage calculators and writes the ``decision``
entry, so the log holds the decision the caller received. When the log cannot
take the entry the ledger row is released again. Approvals and outcomes are kept
here too: each in its own transaction, logged inside it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any

from aigre_policy.gate import approvals as approvals_mod
from aigre_policy.gate.clock import Clock, to_us
from aigre_policy.gate.draft import Draft, Written
from aigre_policy.gate.errors import GateError
from aigre_policy.gate.ledger import (
    ApprovalRecord,
    ChangedRow,
    LedgerError,
    LedgerRow,
    LedgerSession,
    LedgerStore,
)
from aigre_policy.gate.log import DecisionLog, LogError
from aigre_policy.gate.no_ledger import NoLedger
from aigre_policy.gate.review import Escalation
from aigre_policy.gate.usage import UsageCalculator
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.verdict import canonical_json

logger = logging.getLogger("aigre_policy.gate")


def decision_entry(verdict: GateVerdict, document: dict[str, Any]) -> dict[str, Any]:
    """The body of a ``decision`` entry: the verdict and the input it was reached on."""
    return {"verdict": verdict.to_dict(), "input": document}


def encoded_decision(verdict: GateVerdict, action_json: str) -> tuple[dict[str, Any], bytes]:
    """The ``decision`` entry's body and its canonical JSON, the input encoded once.

    ``action_json`` is the canonical JSON of ``verdict.input["action"]`` (intake took the
    action digest of it): the input's encoding reuses it, the verdict's input digest is
    taken of that encoding, and the body's encoding holds it as it is. Canonical JSON
    sorts keys, so the bytes are ``{"action":A,"context":C,"usage":U}`` and
    ``{"input":I,"verdict":V}``: exactly ``canonical_json`` of the same values.
    """
    document = verdict.input
    input_json = b"".join(
        (
            b'{"action":',
            action_json.encode(),
            b',"context":',
            canonical_json(document["context"]),
            b',"usage":',
            canonical_json(document["usage"]),
            b"}",
        )
    )
    verdict.digested("sha256:" + hashlib.sha256(input_json).hexdigest())
    body = decision_entry(verdict, document)
    body_json = b'{"input":' + input_json + b',"verdict":' + canonical_json(body["verdict"]) + b"}"
    return body, body_json


@dataclass(frozen=True, slots=True)
class Recorder:
    """Writes decisions, approvals and outcomes to the ledger and the log."""

    ledger: LedgerStore | None
    log: DecisionLog | None
    calculators: tuple[UsageCalculator, ...]  # the enforced pack's, then the shadow's
    reusable_groups: frozenset[str]
    clock: Clock
    notifier: Any = None  # an ``outbox.Notifier``: queues notifications with the decision
    held: Any = None  # a ``held.HeldDecisions``: keeps decisions waiting for people

    def session(self) -> AbstractContextManager[Any]:
        """One ledger transaction (``BEGIN IMMEDIATE``: the write lock comes first)."""
        return self.ledger.session() if self.ledger is not None else nullcontext(NoLedger())

    # -- a decision ------------------------------------------------------------------------

    def keep(self, session: LedgerSession, draft: Draft, verdict: GateVerdict) -> Written | None:
        """Use up what an enforced allow rests on and keep the row; raises to roll back."""
        self._use_approvals(session, draft, verdict)
        written = self._record(session, draft, verdict)
        if written is not None and self.notifier is not None:  # never raises
            self.notifier.enqueue(session, verdict, draft.now)
        if written is not None and self.held is not None:  # never raises
            self.held.keep(session, draft, verdict, written.row.id)
        return written

    def _use_approvals(self, session: LedgerSession, draft: Draft, verdict: GateVerdict) -> None:
        """An enforced ``allow`` uses up the approvals it rests on, in its own transaction."""
        if not draft.consume or verdict.decision != "allow" or verdict.fail_closed:
            return
        used = [
            r for r in draft.held.counted if not approvals_mod.is_reusable(r, self.reusable_groups)
        ]
        if not used:
            return
        session.use_approvals(used, verdict.decision_id, to_us(draft.now))
        evidence = verdict.gate.setdefault("approvals", {"counted": [], "ignored": []})
        evidence["used"] = [{"by": r.by, "group": r.group} for r in used]

    def _record(self, session: LedgerSession, draft: Draft, verdict: GateVerdict) -> Written | None:
        """Keep the decision in the ledger, reserving what it spends."""
        if not draft.recordable:
            return None
        action = draft.document["action"]
        contributions = {}
        for calculator in self.calculators:
            contributions.update(
                calculator.contributions(action, verdict.decision, verdict.decision_id)
            )
        row = LedgerRow(
            verdict.decision_id,
            draft.action_digest,
            action,
            verdict.decision,
            draft.at_us,
            draft.action_json,
        )
        kept = session.record(row, contributions)
        if kept is None:
            return None
        changed = ChangedRow(kept[0], draft.action_digest, row.at_us, True)
        return Written(changed, kept[1], contributions)

    def committed(self, written: Written | None) -> None:
        """The decision's transaction committed: the usage calculators take the new row."""
        if written is None:
            return
        if self.notifier is not None:
            self.notifier.committed()
        for calculator in self.calculators:
            calculator.committed(written.row, written.seq, written.contributions)

    def publish(self, draft: Draft, verdict: GateVerdict, escalation: Escalation | None) -> None:
        """Log the decision the caller receives; raises ``LogError`` when it is not taken.

        Once the ``decision`` entry is written the decision stands: a ``review`` or
        ``shadow`` entry that fails after it is reported, not turned into a fault
        (the decision entry already holds the reviews in ``gate.reviews``).
        """
        if self.log is None:
            return
        # the input the verdict was reached on (after a review: what the reviewers saw)
        document = verdict.input
        encoded = None
        if (
            draft.action_json
            and document.keys() == {"action", "context", "usage"}
            and document["action"] is draft.document["action"]
        ):
            with suppress(TypeError, ValueError):  # not JSON: the log says so, as LogError
                encoded = encoded_decision(verdict, draft.action_json)
        if encoded is not None:
            self.log.append("decision", encoded[0], body_json=encoded[1])
        else:
            self.log.append("decision", decision_entry(verdict, document))
        for review in escalation.reviews if escalation else ():
            self._after_decision(self.log, "review", {"decision_id": verdict.decision_id, **review})
        if draft.shadow_verdict is not None and draft.shadow and not draft.shadow["agrees"]:
            body = {
                "verdict": draft.shadow_verdict.to_dict(),
                "input": {**draft.document, "usage": draft.shadow["usage"]},
                "shadow_of": verdict.decision_id,
            }
            error = self._after_decision(self.log, "shadow", body)
            if error is not None:  # the shadow never changes the enforced decision
                verdict.gate["shadow"] = {**draft.shadow, "log_error": error}

    @staticmethod
    def _after_decision(log: DecisionLog, kind: str, body: dict[str, Any]) -> str | None:
        """An entry after the decision's: one the log refuses is reported, and returned."""
        try:
            log.append(kind, body)
        except LogError as exc:
            logger.error("%s entry not logged: %s", kind, exc)
            return str(exc)
        return None

    def release_quietly(self, verdict: GateVerdict, written: Written | None) -> None:
        """The decision never took effect: take its row back out of the ledger.

        When that fails too the row stays: the ledger then counts a spend that did
        not happen (stricter), and the fault goes to the ``aigre_policy.gate`` logger.
        """
        if written is None:
            return
        try:
            with self.session() as session:
                session.release(verdict.decision_id, written.row.at_us)
        except LedgerError as exc:
            logger.error("decision %s stays in the ledger: %s", verdict.decision_id, exc)

    def keep_quietly(self, draft: Draft, verdict: GateVerdict, broken: str) -> None:
        """Best effort: log a fail-closed verdict in whichever sink still works."""
        if broken != "log":
            self.log_quietly("decision", decision_entry(verdict, draft.document))

    def log_quietly(self, kind: str, body: dict[str, Any]) -> None:
        """Log an entry whose loss changes no decision: a failure is only reported."""
        if self.log is None:
            return
        try:
            self.log.append(kind, body)
        except Exception as exc:  # already failing closed, or the decision stands
            logger.error("%s entry not logged: %s", kind, exc)

    # -- approvals and outcomes ------------------------------------------------------------

    def grant(self, record: ApprovalRecord, entry: dict[str, Any]) -> None:
        """Keep an approval and log it in the same transaction; raises ``GateError``."""
        self._kept("approval", lambda session: session.add_approval(record), entry)

    def logged(self, kind: str, entry: dict[str, Any]) -> None:
        """Log an entry that is the only record of what it says; raises ``GateError``."""
        if self.log is None:
            return
        try:
            self.log.append(kind, entry)
        except LogError as exc:
            raise GateError(f"the {kind} was not recorded: {exc}") from exc

    def outcome(self, decision_id: str, status: str, entry: dict[str, Any]) -> None:
        """Keep how an allowed action went and log it; raises ``GateError``."""
        self._kept(
            "outcome",
            lambda session: session.set_outcome(decision_id, status, to_us(self.clock())),
            entry,
        )

    def _kept(
        self, kind: str, write: Callable[[LedgerSession], object], entry: dict[str, Any]
    ) -> None:
        try:
            with self.session() as session:
                write(session)
                if self.log is not None:
                    self.log.append(kind, entry)
        except (LedgerError, LogError) as exc:
            raise GateError(f"the {kind} was not recorded: {exc}") from exc

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
        if self.log is not None:  # first: its last checkpoint is copied to the ledger
            self.log.close()
        if self.ledger is not None:
            self.ledger.close()
