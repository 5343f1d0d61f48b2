"""The second stage of a check, run inside the ledger's write transaction: judge.

Under the write lock the judge reads the decision's time in the ledger, the
approvals that count for the action and the usage values, and asks the pack (and
the shadow pack beside it) for a verdict. A ledger fault here stops the check
before the pack judges: the draft carries the fault and the check fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aigre_policy.gate import approvals as approvals_mod
from aigre_policy.gate.approvals import Held
from aigre_policy.gate.clock import to_us
from aigre_policy.gate.draft import Draft, described, fault
from aigre_policy.gate.intake import ATTESTED
from aigre_policy.gate.ledger import LedgerError, LedgerSession
from aigre_policy.gate.usage import UsageCalculator
from aigre_policy.gate.world import Directory
from aigre_policy.pack import Pack


def _micros(span: timedelta | None) -> int | None:
    return None if span is None else int(span.total_seconds() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Judged:
    """A pack the gate asks, its usage calculator and the attested fields its schema reads."""

    pack: Pack
    usage: UsageCalculator
    attests: frozenset[str]
    weighing: frozenset[str] = field(init=False)  # rules that read context.approvals

    def __post_init__(self) -> None:
        object.__setattr__(self, "weighing", approvals_mod.weighing_rules(self.pack))


@dataclass(frozen=True, slots=True)
class Judge:
    """The pack's verdict on the usage and approvals of the moment, with the shadow's view."""

    enforced: Judged
    shadow: Judged | None
    directory: Directory | None
    approval_lifetime: timedelta | None
    clock_skew: timedelta
    reusable_groups: frozenset[str]

    def judge(
        self,
        session: LedgerSession,
        document: dict[str, Any],
        action_digest: str,
        now: datetime,
        started: int,
        actor: dict[str, Any] | None = None,
    ) -> Draft:
        """Usage, the pack's verdict, approvals and the shadow pack, inside one transaction.

        The decision's time in the ledger is the later of ``now`` and the latest time
        recorded, read under the write lock: a row another process stamped by a clock
        ahead of this one still falls inside this check's windows.
        """
        try:
            # the approvals first: a SQLite ledger reads its time in the same statement
            held = self._held(session, document["action"], action_digest, now, actor)
            at_us = max(to_us(now), session.latest_at())
            usage = self.enforced.usage.compute(
                session, now, action_digest, at_us, document["action"]
            )
            document["usage"] = usage
        except LedgerError as exc:
            faults = [fault("ledger", described(exc))]
            return Draft(
                started, now, document, action_digest, None, False, faults=faults, actor=actor
            )
        if "approvals" in self.enforced.attests:
            document["context"]["approvals"] = held.attested(self.reusable_groups)
        base = self.enforced.pack.evaluate(document["action"], document["context"], usage)
        draft = Draft(started, now, document, action_digest, base, True, actor=actor, held=held)
        draft.at_us = at_us
        draft.recordable = not any(e["kind"] == "input" for e in base.errors)
        if not base.fail_closed:
            draft.resolution = approvals_mod.resolve(
                base.decision,
                base.fired,
                held.attested(self.reusable_groups),
                held.ignored,
                self.enforced.weighing,
            )
        if self.shadow is not None:
            self._shadow(session, draft, self.shadow)
        return draft

    def _held(
        self,
        session: LedgerSession,
        action: Mapping[str, Any],
        action_digest: str,
        now: datetime,
        actor: Mapping[str, Any] | None,
    ) -> Held:
        """The approvals that count for this action now: the one filter for both the
        pack's ``context.approvals`` and the resolution of fired approval rules."""
        records = session.approvals(action_digest)
        if not records:
            return Held()
        return approvals_mod.sift(
            records,
            action_digest=action_digest,
            excluded_people=approvals_mod.excluded(action, actor),
            now_us=to_us(now),
            skew_us=_micros(self.clock_skew) or 0,
            lifetime_us=_micros(self.approval_lifetime),
            directory=self.directory,
        )

    def _shadow(self, session: LedgerSession, draft: Draft, shadow: Judged) -> None:
        """Evaluate the candidate pack; whatever happens, the enforced decision is untouched."""
        assert draft.base is not None
        ref = {"name": shadow.pack.name, "version": shadow.pack.version}
        try:
            usage = shadow.usage.compute(
                session, draft.now, draft.action_digest, draft.at_us, draft.document["action"]
            )
            candidate = shadow.pack.evaluate(
                draft.document["action"], self._shadow_context(draft, shadow), usage
            )
        except Exception as exc:
            draft.shadow = {"pack": ref, "error": described(exc)}
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

    def _shadow_context(self, draft: Draft, shadow: Judged) -> dict[str, Any]:
        """The same attested values, as far as the candidate's schema declares them."""
        context = {k: v for k, v in draft.document["context"].items() if k not in ATTESTED}
        if "actor" in shadow.attests and draft.actor is not None:
            context["actor"] = draft.actor
        if "approvals" in shadow.attests:
            context["approvals"] = draft.held.attested(self.reusable_groups)
        return context
