"""Approvals: which recorded approvals the gate attests for an action, and what they resolve.

An approval is bound to the SHA-256 of the canonical action (``verdict.digest``), so
it never counts for any other action. ``sift`` is the one place that decides which
approvals count; the gate puts exactly those into ``context.approvals`` and resolves
fired ``require_approval`` rules with exactly those. One counts when, at the check:

- it is bound to this action's digest;
- the approver is neither the attested actor nor whom it acts for (nor the actor the
  proposal claims: excluding more can only hold an action back);
- its time is not later than the gate's ``now`` plus the clock skew (an approval
  written by a process whose clock runs ahead is refused, not trusted forever);
- it is younger than the gate's approval lifetime (when one is set);
- the directory still lists the approver in the approval's group;
- no earlier enforced decision used it up (reusable approvals are never used up).

A verdict is resolved when every fired ``require_approval`` rule has a counted
approval from one of its own groups, unless the rule reads ``context.approvals``
itself: such a rule weighed the approvals the gate holds (their age, how many, from
whom) and still fired, so no approval resolves it. The decision is then what the other fired
rules say (``deny`` stays ``deny``, ``escalate`` goes to the reviewers), or
``allow`` when none of them is more restrictive. A verdict that failed closed is
never resolved by an approval: no rule named who could approve it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aigre_policy import ir
from aigre_policy.gate.clock import from_us, iso
from aigre_policy.gate.errors import ApprovalRejected
from aigre_policy.gate.ledger import ApprovalRecord
from aigre_policy.gate.world import Directory
from aigre_policy.verdict import LATTICE

DEFAULT_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Approval:
    """A recorded approval, as ``Gate.approve`` returns it."""

    action_digest: str
    by: str
    group: str
    at: datetime
    note: str = ""
    reusable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_digest": self.action_digest,
            "by": self.by,
            "group": self.group,
            "at": iso(self.at),
            "note": self.note,
            "reusable": self.reusable,
        }


@dataclass(frozen=True)
class Held:
    """The approvals recorded for an action, split into those that count and those that don't."""

    counted: tuple[ApprovalRecord, ...] = ()
    ignored: tuple[dict[str, Any], ...] = ()

    def attested(self, reusable_groups: Collection[str] = ()) -> list[dict[str, Any]]:
        """``context.approvals``: ``{by, group, at}`` of each counted approval, plus
        ``reusable: true`` for one that is not used up by an enforced decision."""
        return [
            {**_record(r), "reusable": True} if is_reusable(r, reusable_groups) else _record(r)
            for r in self.counted
        ]


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


def is_reusable(record: ApprovalRecord, reusable_groups: Collection[str]) -> bool:
    """An approval marked reusable, or of a group the pack marks reusable."""
    return record.reusable or record.group in reusable_groups


def excluded(action: Mapping[str, Any], actor: Mapping[str, Any] | None) -> set[str]:
    """Who may never approve this action: the attested actor and whom it acts for, and
    the actor the proposal claims and whom that one claims to act for."""
    claimed = action.get("actor") if isinstance(action, Mapping) else None
    people: set[str] = set()
    for who in (actor, claimed):
        if isinstance(who, Mapping):
            people |= {p for p in (who.get("id"), who.get("on_behalf_of")) if isinstance(p, str)}
    return people


def weighing_rules(pack: Any) -> frozenset[str]:
    """The ids of the pack's rules that read ``context.approvals``: when one fires, the
    pack has already weighed the approvals held, and the gate's own test must not undo it."""
    rules = getattr(getattr(pack, "program", None), "rules", ())
    return frozenset(
        rule.id
        for rule in rules
        if any(
            isinstance(node, ir.Path)
            and not node.local
            and (node.root, *node.steps[:1]) == ("context", "approvals")
            for node in ir.walk(rule.condition)
        )
    )


def approval_rules(fired: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [f for f in fired if f.get("verdict") == "require_approval"]


def _groups(rule: Mapping[str, Any]) -> list[Any]:
    groups = rule.get("approvers")
    return groups if isinstance(groups, list) else []


def admit(
    fired: Sequence[Mapping[str, Any]],
    excluded_people: Collection[str],
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
    if by in excluded_people:
        raise ApprovalRejected(f"`{by}` proposed this action and cannot approve it")
    if directory is None:
        raise ApprovalRejected("the gate has no directory to confirm approver groups")
    if not directory.is_member(by, group):
        raise ApprovalRejected(f"`{by}` is not a member of `{group}`")


def sift(
    records: Sequence[ApprovalRecord],
    *,
    action_digest: str,
    excluded_people: Collection[str],
    now_us: int,
    skew_us: int,
    lifetime_us: int | None,
    directory: Directory | None,
) -> Held:
    """Which of the approvals recorded for ``action_digest`` count now, and why the rest don't."""
    counted: list[ApprovalRecord] = []
    ignored: list[dict[str, Any]] = []
    for record in records:
        reason = _refusal(
            record, action_digest, excluded_people, now_us, skew_us, lifetime_us, directory
        )
        if reason:
            ignored.append({**_record(record), "reason": reason})
        else:
            counted.append(record)
    return Held(tuple(counted), tuple(ignored))


def _refusal(
    record: ApprovalRecord,
    action_digest: str,
    excluded_people: Collection[str],
    now_us: int,
    skew_us: int,
    lifetime_us: int | None,
    directory: Directory | None,
) -> str | None:
    if record.action_digest != action_digest:
        return "bound to another action"
    if record.by in excluded_people:
        return "the approver proposed the action"
    if record.at_us > now_us + skew_us:
        ahead = (record.at_us - now_us) / 1_000_000
        return f"dated {ahead:.0f} s after the gate's clock, beyond the clock skew allowed"
    if lifetime_us is not None and now_us - record.at_us > lifetime_us:
        return "expired"
    if directory is None or not directory.is_member(record.by, record.group):
        return f"not a member of `{record.group}`"
    if record.used_by is not None:
        return f"used up by decision {record.used_by}"
    return None


def resolve(
    decision: str,
    fired: Sequence[Mapping[str, Any]],
    counted: Sequence[Mapping[str, Any]],
    ignored: Sequence[Mapping[str, Any]] = (),
    weighing: Collection[str] = (),
) -> Resolution:
    """The decision once the ``counted`` approvals (``{by, group, at}``) are taken into account.

    The gate calls it with the approvals ``sift`` counted; replay with the ones the log
    holds, so both resolve a verdict the same way. ``weighing``: the ids of rules that
    read ``context.approvals`` (``weighing_rules``), which no approval resolves.
    """
    rules = approval_rules(fired)
    skipped = tuple(dict(i) for i in ignored)
    evidence = tuple(
        {**a, "rules": [r.get("id") for r in rules if a.get("group") in _groups(r)]}
        for a in counted
    )
    if not rules or decision != "require_approval":
        return Resolution(decision, evidence, skipped)
    pending = [
        r
        for r in rules
        if r.get("id") in weighing or not any(a.get("group") in _groups(r) for a in counted)
    ]
    if pending:
        groups = tuple(sorted({str(g) for r in pending for g in _groups(r)}))
        ids = tuple(str(r.get("id")) for r in pending)
        return Resolution(decision, evidence, skipped, ids, groups)
    rest = [str(f.get("verdict")) for f in fired if f.get("verdict") in ("deny", "escalate")]
    settled = max(rest, key=LATTICE.__getitem__, default="allow")
    return Resolution(settled, evidence, skipped)


def _record(record: ApprovalRecord) -> dict[str, Any]:
    return {"by": record.by, "group": record.group, "at": iso(from_us(record.at_us))}
