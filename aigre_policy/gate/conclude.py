"""The third stage of a check: the verdict the caller receives.

The pack's decision, resolved by the approvals held, settled by the reviewers
(who only see ``escalate``, so none can loosen a ``deny``), and failed closed by
any fault: never looser than what the rules said. What replay and the log need
to see how the gate got there goes into ``verdict.gate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

from aigre_policy.gate.approvals import Resolution
from aigre_policy.gate.draft import Draft, fault
from aigre_policy.gate.review import Escalation, Reviewer, ReviewRequest, tiers_for
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.verdict import LATTICE


def _stricter(a: str, b: str) -> str:
    return a if LATTICE.get(a, 3) >= LATTICE.get(b, 3) else b


def _looser(a: GateVerdict, b: GateVerdict) -> bool:
    """``a`` lets through more than ``b``: a looser decision, or ``b`` failed closed alone."""
    return LATTICE.get(b.decision, 3) > LATTICE.get(a.decision, 3) or (
        b.fail_closed and not a.fail_closed
    )


@dataclass(frozen=True, slots=True)
class Concluder:
    """Turns a draft, and the reviewers' answers, into the gate's verdict."""

    fail_closed_decision: str  # the pack's fail-closed decision
    pack_ref: dict[str, str]
    reusable_groups: frozenset[str]
    reviewers: tuple[Reviewer, ...]

    def decision(self, draft: Draft) -> str:
        """The decision before reviewers: the pack's, as the approvals held resolve it."""
        if draft.base is None:
            return self.fail_closed_decision
        if draft.resolution is not None:
            return draft.resolution.decision
        return draft.base.decision

    def review(self, draft: Draft) -> tuple[list[tuple[str, Any]], ReviewRequest]:
        """The tiers to ask, in order, and what they are shown."""
        fired = draft.base.fired if draft.base is not None else []
        named = list(
            dict.fromkeys(t for f in fired if f["verdict"] == "escalate" for t in f["escalate_to"])
        )
        doc = draft.document
        request = ReviewRequest("", doc["action"], doc["context"], doc["usage"], fired)
        return tiers_for(self.reviewers, named), request

    def conclude(self, draft: Draft, escalation: Escalation | None) -> GateVerdict:
        """The final verdict from the pack's, the approvals and the reviewers' answers."""
        base = draft.base
        decision = self.decision(draft)
        faults = [*(base.errors if base is not None else []), *draft.faults]
        gate = self._evidence(draft, decision)
        fail_closed = base is None or base.fail_closed
        if escalation is not None:
            decision, failed = self._reviewed(decision, escalation, gate, faults)
            fail_closed = fail_closed or failed
        if draft.shadow is not None:
            gate["shadow"] = draft.shadow
        pending = draft.resolution.pending_groups if draft.resolution is not None else ()
        return GateVerdict(
            base,
            decision,
            pack=self.pack_ref,
            input_document=draft.document,
            action_digest=draft.action_digest,
            gate=gate,
            fail_closed=fail_closed,
            errors=faults,
            elapsed_us=(perf_counter_ns() - draft.started) / 1000,
            approvers=list(pending) if pending and decision == "require_approval" else None,
        )

    def _evidence(self, draft: Draft, decision: str) -> dict[str, Any]:
        """``verdict.gate`` before the reviewers: digest, actor, the pack's view, approvals."""
        gate: dict[str, Any] = {"action_digest": draft.action_digest}
        if draft.context_notes:
            gate["context_sources"] = list(draft.context_notes)
        if draft.actor is not None:
            gate["actor"] = draft.actor
        if draft.base is not None:
            gate["pack_decision"] = draft.base.decision
            # the rules and the approvals' decision, before reviewers and gate faults:
            # what replay compares a candidate pack with
            gate["resolved_decision"] = decision
            gate["usage"] = draft.document["usage"]
        resolution, held = draft.resolution, draft.held
        if resolution is not None and resolution.counted + resolution.ignored:
            gate["approvals"] = resolution.evidence()
        elif held.counted or held.ignored:
            gate["approvals"] = Resolution(
                decision, tuple(held.attested(self.reusable_groups)), held.ignored
            ).evidence()
        return gate

    def _reviewed(
        self,
        decision: str,
        escalation: Escalation,
        gate: dict[str, Any],
        faults: list[dict[str, Any]],
    ) -> tuple[str, bool]:
        """The decision once the reviewers answered, and whether it failed closed."""
        gate["reviews"] = list(escalation.reviews)
        if escalation.decision is not None and decision == "escalate":
            # reviewers settle only an escalate decision, so none can loosen a deny
            gate["settled_by"] = escalation.reviews[-1]["tier"]
            return escalation.decision, False
        if escalation.faults:
            faults += [fault("reviewer", message) for message in escalation.faults]
            return self.fail_closed_decision, True
        if not any(r["reviewer"]["id"] != "none" for r in escalation.reviews):
            gate["settled_by"] = "no reviewer: the pack's fail-closed decision"
            return self.fail_closed_decision, False
        return decision, False

    def settle(self, reviewed: GateVerdict, fresh: Draft, escalation: Escalation) -> GateVerdict:
        """The reviewed verdict, unless judging again now gives a stricter one."""
        if self.decision(fresh) == "escalate" and fresh.base is not None:
            return self.conclude(fresh, escalation)  # the reviewers settle it on fresh usage
        again = self.conclude(fresh, None)
        if _looser(reviewed, again):
            again.gate["reviews"] = list(escalation.reviews)
            again.gate["settled_by"] = "judged again after review: the pack's decision is stricter"
            return again
        return reviewed

    def fail_closed(self, verdict: GateVerdict, faults: Sequence[dict[str, Any]]) -> GateVerdict:
        """The verdict failed closed: the fail-closed decision, never looser than before."""
        decision = _stricter(self.fail_closed_decision, verdict.decision)
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
