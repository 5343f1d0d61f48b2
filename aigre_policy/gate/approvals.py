"""Approvals: who may resolve a ``require_approval`` verdict, and whether one is resolved.

An approval is bound to the SHA-256 of the canonical action (``verdict.digest``), so
it never counts for any other action. It counts when, at the time of the check:

- the approver is neither the proposer (``actor.id``) nor the person an agent acts
  for (``actor.on_behalf_of``);
- the directory still lists the approver in the approval's group;
- it is younger than the gate's approval lifetime (when one is set).

A verdict is resolved when every fired ``require_approval`` rule has a counted
approval from one of its own groups; the decision is then what the other fired
rules say (``deny`` stays ``deny``, ``escalate`` goes to the reviewers), or
``allow`` when none of them is more restrictive. A verdict that failed closed is
never resolved by an approval: no rule named who could approve it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aigre_policy.gate.clock import from_us, iso
from aigre_policy.gate.errors import ApprovalRejected
from aigre_policy.gate.ledger import ApprovalRecord
from aigre_policy.gate.world import Directory
from aigre_policy.verdict import LATTICE


@dataclass(frozen=True)
class Approval:
    """A recorded approval, as ``Gate.approve`` returns it."""

    action_digest: str
    by: str
    group: str
    at: datetime
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_digest": self.action_digest,
            "by": self.by,
            "group": self.group,
            "at": iso(self.at),
            "note": self.note,
        }


@dataclass(frozen=True)
class Resolution:
    """What the approvals held for an action did to its verdict."""

    decision: str
    counted: tuple[dict[str, Any], ...] = ()
    ignored: tuple[dict[str, Any], ...] = ()
    pending: tuple[str, ...] = ()
    pending_groups: tuple[str, ...] = field(default=())

    def evidence(self) -> dict[str, Any]:
        return {
            "counted": list(self.counted),
            "ignored": list(self.ignored),
            "pending_rules": list(self.pending),
        }


def proposers(action: Mapping[str, Any]) -> set[str]:
    """Who may never approve this action: the actor and the person it acts for."""
    actor = action.get("actor") or {}
    return {p for p in (actor.get("id"), actor.get("on_behalf_of")) if isinstance(p, str)}


def approval_rules(fired: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [f for f in fired if f["verdict"] == "require_approval"]


def admit(
    fired: Sequence[Mapping[str, Any]],
    action: Mapping[str, Any],
    by: str,
    group: str,
    directory: Directory | None,
) -> None:
    """Raise ``ApprovalRejected`` unless ``by`` may approve for ``group`` on this verdict."""
    rules = approval_rules(fired)
    if not rules:
        raise ApprovalRejected("no fired rule asks for an approval on this verdict")
    groups = sorted({g for rule in rules for g in rule["approvers"]})
    if group not in groups:
        raise ApprovalRejected(f"`{group}` is not an approver group here; expected one of {groups}")
    if by in proposers(action):
        raise ApprovalRejected(f"`{by}` proposed this action and cannot approve it")
    if directory is None:
        raise ApprovalRejected("the gate has no directory to confirm approver groups")
    if not directory.is_member(by, group):
        raise ApprovalRejected(f"`{by}` is not a member of `{group}`")


def resolve(
    decision: str,
    fired: Sequence[Mapping[str, Any]],
    action: Mapping[str, Any],
    held: Sequence[ApprovalRecord],
    now_us: int,
    lifetime_us: int | None,
    directory: Directory | None,
) -> Resolution:
    """The decision once the approvals ``held`` for this action are taken into account."""
    rules = approval_rules(fired)
    if not rules or decision != "require_approval":
        return Resolution(decision)
    excluded = proposers(action)
    counted: list[ApprovalRecord] = []
    ignored: list[dict[str, Any]] = []
    for record in held:
        reason = None
        if record.by in excluded:
            reason = "the approver proposed the action"
        elif lifetime_us is not None and now_us - record.at_us > lifetime_us:
            reason = "expired"
        elif directory is None or not directory.is_member(record.by, record.group):
            reason = f"not a member of `{record.group}`"
        if reason:
            ignored.append({**_record(record), "reason": reason})
        else:
            counted.append(record)
    pending = [r for r in rules if not any(a.group in r["approvers"] for a in counted)]
    evidence = tuple(
        {**_record(a), "rules": [r["id"] for r in rules if a.group in r["approvers"]]}
        for a in counted
    )
    if pending:
        groups = tuple(sorted({g for r in pending for g in r["approvers"]}))
        return Resolution(
            decision, evidence, tuple(ignored), tuple(r["id"] for r in pending), groups
        )
    rest = [f["verdict"] for f in fired if f["verdict"] in ("deny", "escalate")]
    settled = max(rest, key=LATTICE.__getitem__, default="allow")
    return Resolution(settled, evidence, tuple(ignored))


def _record(record: ApprovalRecord) -> dict[str, Any]:
    return {"by": record.by, "group": record.group, "at": iso(from_us(record.at_us))}
