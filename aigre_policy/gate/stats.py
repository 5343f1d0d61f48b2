"""Runtime metrics from a decision log: verdicts, automation, approval waits, spend.

- **decisions by verdict**: enforced ``decision`` entries (shadow verdicts apart);
- **automated resolution rate**: decisions settled without a person, over all
  decisions: ``allow`` and ``deny`` (by rules, or failed closed to ``deny``), plus
  escalations whose last review came from a non-human tier (``llm`` or
  ``automation``) and did not escalate again. ``require_approval`` always waits
  for a person;
- **approvals**: requested (a ``require_approval`` decision or an ``approval``
  entry with status ``requested``), resolved by the first ``granted``,
  ``rejected`` (an approver turned it down: ``declined``), ``expired`` or ``withdrawn``
  entry; the wait is the time between the two entries. An approval the gate refused
  (logged ``rejected`` with a ``reason``: a self-approval, an approver outside the
  group) resolves nothing and is counted as ``refused``. Unresolved ones are
  *waiting*, aged up to ``as_of`` (by default the time of the log's last entry);
- **spend per action kind**: the input's ``action.cost.estimated_usd`` (and
  ``recurring_monthly_usd``) summed over allowed decisions, and the ``cost_usd``
  of ``outcome`` entries, by the ``action.kind`` of the decision they follow.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aigre_policy.gate.chain import RECOVERY, Entry
from aigre_policy.gate.log import read_log
from aigre_policy.verdict import LATTICE

TERMINAL = ("granted", "rejected", "expired", "withdrawn")
NO_KIND = "(no kind)"


@dataclass(frozen=True)
class WaitSummary:
    """Seconds waited: count, mean, median, 95th percentile, longest."""

    count: int
    mean: float | None
    median: float | None
    p95: float | None
    longest: float | None

    @classmethod
    def of(cls, seconds: list[float]) -> WaitSummary:
        if not seconds:
            return cls(0, None, None, None, None)
        ordered = sorted(seconds)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return cls(
            len(ordered), statistics.fmean(ordered), statistics.median(ordered), p95, ordered[-1]
        )

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "count": self.count,
            "mean_seconds": rounded(self.mean),
            "median_seconds": rounded(self.median),
            "p95_seconds": rounded(self.p95),
            "longest_seconds": rounded(self.longest),
        }


@dataclass(frozen=True)
class KindSpend:
    allowed: int = 0
    estimated_usd: float = 0.0
    recurring_monthly_usd: float = 0.0
    outcomes: int = 0
    actual_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "estimated_usd": round(self.estimated_usd, 2),
            "recurring_monthly_usd": round(self.recurring_monthly_usd, 2),
            "outcomes": self.outcomes,
            "actual_usd": round(self.actual_usd, 2),
        }


@dataclass(frozen=True)
class LogStats:
    entries: int
    entries_by_kind: dict[str, int]
    decisions: int
    by_verdict: dict[str, int]
    fail_closed: int
    automated: int
    escalations_settled_by: dict[str, int]  # human, llm, automation, unsettled
    approvals_by_status: dict[str, int]
    approvals_waiting: int
    waited: WaitSummary  # resolved approvals
    waiting: WaitSummary  # still waiting, aged to ``as_of``
    oldest_waiting: list[dict[str, Any]]  # decision ids waiting longest
    spend: dict[str, KindSpend]
    shadow: int
    recoveries: int
    as_of: str | None

    @property
    def automated_rate(self) -> float | None:
        return self.automated / self.decisions if self.decisions else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "entries_by_kind": self.entries_by_kind,
            "decisions": self.decisions,
            "by_verdict": self.by_verdict,
            "fail_closed": self.fail_closed,
            "automated": self.automated,
            "automated_rate": None
            if self.automated_rate is None
            else round(self.automated_rate, 4),
            "escalations_settled_by": self.escalations_settled_by,
            "approvals": {
                "by_status": self.approvals_by_status,
                "waiting": self.approvals_waiting,
                "waited": self.waited.to_dict(),
                "waiting_age": self.waiting.to_dict(),
                "oldest_waiting": self.oldest_waiting,
            },
            "spend_by_kind": {kind: s.to_dict() for kind, s in sorted(self.spend.items())},
            "shadow": self.shadow,
            "recoveries": self.recoveries,
            "as_of": self.as_of,
        }


@dataclass
class _Spend:
    allowed: int = 0
    estimated_usd: float = 0.0
    recurring_monthly_usd: float = 0.0
    outcomes: int = 0
    actual_usd: float = 0.0


@dataclass
class _Collector:
    entries: int = 0
    kinds: Counter = field(default_factory=Counter)
    verdicts: Counter = field(default_factory=lambda: Counter({d: 0 for d in LATTICE}))
    fail_closed: int = 0
    shadow: int = 0
    recoveries: int = 0
    last_time: str | None = None
    escalated: set[str] = field(default_factory=set)
    last_review: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (kind, verdict)
    requested: dict[str, str] = field(default_factory=dict)  # id -> time asked
    resolved: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (status, time)
    statuses: Counter = field(default_factory=Counter)
    action_kind: dict[str, str] = field(default_factory=dict)
    spend: dict[str, _Spend] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        self.entries += 1
        self.kinds[entry.kind] += 1
        self.last_time = entry.time
        body = entry.body
        if entry.kind == "decision":
            self._decision(entry.id, entry.time, body)
        elif entry.kind == "shadow":
            self.shadow += 1
        elif entry.kind == RECOVERY:
            self.recoveries += 1
        elif entry.kind == "approval":
            self._approval(entry.time, body)
        elif entry.kind == "review":
            reviewer = body.get("reviewer")
            kind = reviewer.get("kind") if isinstance(reviewer, dict) else None
            decision_id = body.get("decision_id")
            if isinstance(decision_id, str) and isinstance(kind, str):
                self.last_review[decision_id] = (kind, str(body.get("decision")))
        elif entry.kind == "outcome":
            self._outcome(body)

    def _decision(self, decision_id: str, time: str, body: dict[str, Any]) -> None:
        verdict = _object(body.get("verdict"))
        decision = verdict.get("decision")
        if decision not in LATTICE:
            return
        self.verdicts[decision] += 1
        if verdict.get("fail_closed"):
            self.fail_closed += 1
        if decision == "escalate":
            self.escalated.add(decision_id)
        elif decision == "require_approval":
            self.requested.setdefault(decision_id, time)
        action = _action(body)
        kind = action.get("kind")
        kind = kind if isinstance(kind, str) else NO_KIND
        self.action_kind[decision_id] = kind
        if decision == "allow":
            spend = self.spend.setdefault(kind, _Spend())
            spend.allowed += 1
            cost = _object(action.get("cost"))
            spend.estimated_usd += _number(cost.get("estimated_usd"))
            spend.recurring_monthly_usd += _number(cost.get("recurring_monthly_usd"))

    def _approval(self, time: str, body: dict[str, Any]) -> None:
        decision_id, status = body.get("decision_id"), body.get("status")
        if not isinstance(decision_id, str) or not isinstance(status, str):
            return
        if status == "rejected" and body.get("declined") is not True:
            # an approval the gate refused (a self-approval, someone outside the group):
            # the attempt failed, the decision still waits for an answer
            self.statuses["refused"] += 1
            return
        self.statuses[status] += 1
        if status == "requested":
            self.requested.setdefault(decision_id, time)
        elif status in TERMINAL and decision_id not in self.resolved:
            self.resolved[decision_id] = (status, time)

    def _outcome(self, body: dict[str, Any]) -> None:
        decision_id = body.get("decision_id")
        kind = self.action_kind.get(decision_id, NO_KIND) if isinstance(decision_id, str) else None
        if kind is None:
            return
        spend = self.spend.setdefault(kind, _Spend())
        spend.outcomes += 1
        spend.actual_usd += _number(body.get("cost_usd"))

    def finish(self, as_of: datetime | None) -> LogStats:
        settled = Counter({"human": 0, "llm": 0, "automation": 0, "unsettled": 0})
        for decision_id in self.escalated:
            review = self.last_review.get(decision_id)
            if review is None or review[1] == "escalate":
                settled["unsettled"] += 1
            else:
                settled[review[0] if review[0] in settled else "human"] += 1
        automated = (
            self.verdicts["allow"] + self.verdicts["deny"] + settled["llm"] + settled["automation"]
        )
        end = as_of or (_parse_time(self.last_time) if self.last_time else None)
        waited: list[float] = []
        waiting: list[tuple[float, str, str]] = []
        for decision_id, asked in self.requested.items():
            resolution = self.resolved.get(decision_id)
            if resolution is not None:
                waited.append((_parse_time(resolution[1]) - _parse_time(asked)).total_seconds())
            elif end is not None:
                age = max(0.0, (end - _parse_time(asked)).total_seconds())
                waiting.append((age, decision_id, asked))
        waiting.sort(reverse=True)
        return LogStats(
            entries=self.entries,
            entries_by_kind=dict(sorted(self.kinds.items())),
            decisions=sum(self.verdicts.values()),
            by_verdict=dict(self.verdicts),
            fail_closed=self.fail_closed,
            automated=automated,
            escalations_settled_by=dict(settled),
            approvals_by_status=dict(sorted(self.statuses.items())),
            approvals_waiting=len(waiting),
            waited=WaitSummary.of(waited),
            waiting=WaitSummary.of([w[0] for w in waiting]),
            oldest_waiting=[
                {"decision_id": d, "since": t, "waiting_seconds": round(a, 3)}
                for a, d, t in waiting[:5]
            ],
            spend={kind: KindSpend(**vars(s)) for kind, s in self.spend.items()},
            shadow=self.shadow,
            recoveries=self.recoveries,
            as_of=_format_time(end) if end is not None else None,
        )


def _action(body: dict[str, Any]) -> dict[str, Any]:
    document = body.get("input")
    action = document.get("action") if isinstance(document, dict) else None
    return action if isinstance(action, dict) else {}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0  # masked or absent
    return float(value)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _format_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def log_stats(path: str | Path, *, as_of: datetime | None = None) -> LogStats:
    """Read the whole log (and its rotated files) once and summarise it."""
    collector = _Collector()
    for entry in read_log(path):
        collector.add(entry)
    return collector.finish(as_of)
