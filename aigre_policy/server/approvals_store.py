"""The approvals inbox's store: ``require_approval`` verdicts waiting for people.

The HTTP routes (``approvals``) and the browser inbox (``inbox``) read one store
(``listed()``, ``get()``, ``Pending.summary()``) and approve through ``approve()``, which
records with ``Gate.approve``, or reject through ``reject()`` (``Gate.reject``).

``SharedApprovals`` is the store of a server on a ledger (SQLite or PostgreSQL): the
gate holds each ``require_approval`` decision in the ledger, in the decision's own
transaction (``gate.held``), so every replica on one database lists the same decisions
and any of them approves or rejects. ``PendingApprovals`` is the store of a server
with no ledger: this process's memory, by decision id.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.gate.held import HeldDecision, HeldDecisions

MAX_PENDING = 10_000  # the oldest are dropped past this; the ledger keeps every approval


@dataclass
class Pending:
    """A ``require_approval`` verdict waiting for people, and the approvals given so far."""

    verdict: Any
    requested_by: str
    at: float
    approvals: list[dict[str, Any]] = field(default_factory=list)
    rejection: dict[str, Any] | None = None  # an approver turned it down (``Gate.reject``)

    @property
    def decision_id(self) -> str:
        return str(self.verdict.decision_id)

    @property
    def state(self) -> str:
        if self.rejection is not None:
            return "rejected"
        return "approved" if not self.missing_groups() else "pending"

    def missing_groups(self) -> list[list[str]]:
        """For each fired ``require_approval`` rule not yet approved: its groups. Not missing:
        a rule an approval given since names a group of, or one an approval counted at the
        decision resolved (the gate's evidence names the rules each counted approval
        matched, and those still pending, such as a rule that weighs approvals itself)."""
        given = {a["group"] for a in self.approvals}
        evidence = self._approval_evidence() or {}
        resolved = {rule for a in evidence.get("counted", []) for rule in a.get("rules", [])}
        resolved -= set(evidence.get("pending_rules", []))
        rules = [r for r in self.verdict.fired if r.get("verdict") == "require_approval"]
        return [
            list(r["approvers"])
            for r in rules
            if not given & set(r["approvers"]) and r["id"] not in resolved
        ]

    def counted_before(self) -> list[dict[str, Any]]:
        """The approvals the gate counted when it made this decision (``by``, ``group``,
        ``at``): given for an earlier check of the same action and not used up."""
        evidence = self._approval_evidence()
        return [dict(a) for a in (evidence or {}).get("counted", [])]

    def _approval_evidence(self) -> dict[str, Any] | None:
        gate = getattr(self.verdict, "gate", None)
        evidence = gate.get("approvals") if isinstance(gate, dict) else None
        return evidence if isinstance(evidence, dict) else None

    def summary(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "decision_id": self.decision_id,
            "state": self.state,
            "action_digest": verdict.action_digest,
            "action": verdict.action,
            "actor": verdict.gate.get("actor"),
            "requested_by": self.requested_by,
            "requested_at": self.at,
            "approvers": list(verdict.approvers),
            "missing": self.missing_groups(),
            "approvals": [*self.counted_before(), *self.approvals],
            "rejection": self.rejection,
            "fired": [
                {
                    "id": r["id"],
                    "verdict": r["verdict"],
                    "message": r["message"],
                    "approvers": r.get("approvers", []),
                    "bindings": r.get("bindings", {}),
                    "location": r.get("location"),
                }
                for r in verdict.fired
            ],
            "pack": verdict.pack,
        }


class PendingApprovals:
    """The ``require_approval`` verdicts this server answered, oldest first, bounded.

    One entry per action (its digest, what approvals bind to): asking again about the same
    action replaces its entry with the newer verdict, and a verdict that no longer waits for
    a person (the approvals counted, or the rules changed) removes it.
    """

    def __init__(self, limit: int = MAX_PENDING):
        self.limit = limit
        self._items: OrderedDict[str, Pending] = OrderedDict()
        self._by_digest: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, verdict: Any, requested_by: str) -> None:
        """Take a verdict the server answered: keep it if it waits for people, else settle
        any entry for its action."""
        digest = verdict.action_digest
        waits = verdict.decision == "require_approval" and not verdict.fail_closed
        with self._lock:
            earlier = self._by_digest.pop(digest, None)
            if earlier is not None:
                self._items.pop(earlier, None)
            if not waits:
                return
            self._items[verdict.decision_id] = Pending(verdict, requested_by, time.time())
            self._by_digest[digest] = verdict.decision_id
            while len(self._items) > self.limit:
                _, dropped = self._items.popitem(last=False)
                self._by_digest.pop(dropped.verdict.action_digest, None)

    def get(self, decision_id: str) -> Pending | None:
        with self._lock:
            return self._items.get(decision_id)

    def listed(self, state: str | None = None) -> list[Pending]:
        with self._lock:
            items = list(self._items.values())
        return [p for p in items if state is None or p.state == state]

    def pending(self) -> list[Pending]:
        return self.listed("pending")

    def approve(
        self, gate: Any, decision_id: str, by: str, group: str, note: str = ""
    ) -> dict[str, Any]:
        """Record ``by``'s approval (``Gate.approve``); ``KeyError`` for an unknown decision,
        ``ApprovalRejected`` / ``GateError`` from the gate."""
        entry = self.get(decision_id)
        if entry is None:
            raise KeyError(decision_id)
        approval = gate.approve(entry.verdict, by=by, group=group, note=note).to_dict()
        with self._lock:
            entry.approvals.append(approval)
        return approval

    def reject(
        self, gate: Any, decision_id: str, by: str, group: str, note: str = ""
    ) -> dict[str, Any]:
        """Record ``by``'s rejection (``Gate.reject``): the entry leaves the pending list
        until the action is checked again; the same errors as ``approve``."""
        entry = self.get(decision_id)
        if entry is None:
            raise KeyError(decision_id)
        rejection = gate.reject(entry.verdict, by=by, group=group, note=note)
        with self._lock:
            entry.rejection = rejection
        return rejection


class SharedApprovals:
    """The held decisions of the ledger, read and answered by any replica on it.

    ``add`` does nothing: the gate held the decision when it recorded it. Reads go to
    the ledger each time, so what another replica held, approved or rejected shows.
    """

    def __init__(self, held: HeldDecisions):
        self.held = held

    def add(self, verdict: Any, requested_by: str) -> None:
        """Nothing to do: the gate holds a waiting decision in its own transaction."""

    def get(self, decision_id: str) -> Pending | None:
        found = self.held.get(decision_id)
        return _pending(found) if found is not None else None

    def listed(self, state: str | None = None) -> list[Pending]:
        items = [_pending(held) for held in self.held.listed()]
        return [p for p in items if state is None or p.state == state]

    def pending(self) -> list[Pending]:
        return self.listed("pending")

    def approve(
        self, gate: Any, decision_id: str, by: str, group: str, note: str = ""
    ) -> dict[str, Any]:
        """Record ``by``'s approval in the ledger (``Gate.approve``); the same errors as
        ``PendingApprovals.approve``."""
        entry = self.get(decision_id)
        if entry is None:
            raise KeyError(decision_id)
        return dict(gate.approve(entry.verdict, by=by, group=group, note=note).to_dict())

    def reject(
        self, gate: Any, decision_id: str, by: str, group: str, note: str = ""
    ) -> dict[str, Any]:
        """Record ``by``'s rejection (``Gate.reject``) on the held decision, in one
        transaction with the check that it is still held."""
        return self.held.reject(
            decision_id, lambda verdict: gate.reject(verdict, by=by, group=group, note=note)
        )


def _pending(held: HeldDecision) -> Pending:
    return Pending(held.verdict, held.requested_by, held.at, list(held.approvals), held.rejection)
