"""What the gate raises: refusals that carry the verdict, and misuse of the gate API."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aigre_policy.gate.verdict import GateVerdict


class GateError(Exception):
    """Misuse of the gate (a bad ledger URL, an approval that cannot be recorded, ...)."""


class ApprovalRejected(GateError):
    """An approval that may not be recorded: wrong group, the proposer, not a member, ..."""


class Refused(Exception):
    """The gate did not let an action run; ``verdict`` says why."""

    def __init__(self, verdict: GateVerdict):
        self.verdict = verdict
        rules = ", ".join(verdict.rule_ids) or "no rule"
        faults = "; ".join(e["message"] for e in verdict.errors[:3])
        detail = f"failed closed: {faults}" if verdict.fail_closed and faults else rules
        super().__init__(f"{verdict.decision}: {detail}")


class Denied(Refused):
    """The decision was ``deny``."""


class ApprovalRequired(Refused):
    """The decision was ``require_approval``: ``verdict.approvers`` may resolve it."""


class Escalated(Refused):
    """The decision was ``escalate``: every reviewer tier passed the case on."""


def refusal_for(verdict: GateVerdict) -> Refused | None:
    """The exception ``enforce`` raises for a verdict, or ``None`` when it may run."""
    match verdict.decision:
        case "allow":
            return None
        case "deny":
            return Denied(verdict)
        case "require_approval":
            return ApprovalRequired(verdict)
        case "escalate":
            return Escalated(verdict)
    return Denied(verdict)  # an unknown decision never runs
