"""A budget raced by separate processes, and what must hold afterwards.

``race(workers)`` runs each worker (a callable returning the decisions it received) in a
process of its own, all released at once, and collects what each got. ``gate_worker``
makes a worker that checks through a ``Gate`` of its own (its own ledger connection and
decision log), as a host of a fleet does; a worker may as well post to a server replica.
``settle(...)`` then checks what must hold whatever the workers are: admitted spend never
over the budget (and, when demand exceeds it, the budget spent to the last cent), the
ledger's totals exact (one row per check, its allowed spend equal to what was admitted),
and each decision log verifies.

Used by ``tests/test_ledger_race.py`` and ``benchmarks/bench_ledger_race.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# a pack whose only limit is the budget: every check asks for ``cost`` against it
POLICIES = """
usage spend_hour = sum(action.cost.estimated_usd) over last 1h where decision == "allow"

rule budget {{
  deny when usage.spend_hour + action.cost.estimated_usd > {budget}
}}
"""

Worker = Callable[[], list[str]]  # the decisions one process received, in order


def race_action(worker: int, n: int, cost: float) -> dict[str, Any]:
    return {
        "id": f"race-{worker}-{n}",
        "kind": "restart",
        "target": f"svc-{worker}-{n}",
        "environment": "production",
        "actor": {"kind": "llm", "id": f"agent-{worker}", "trust": 3},
        "change": {"type": "config", "lines": 1},
        "reversible": True,
        "blast_radius": {"users_share": 0.1},
        "cost": {"estimated_usd": cost},
        "requested_at": "2025-03-10T12:00:00Z",
    }


def gate_worker(
    pack: str,
    ledger: str,
    log: str,
    index: int,
    checks: int,
    cost: float,
    log_options: dict[str, Any] | None = None,
) -> Worker:
    """A worker checking ``checks`` actions of ``cost`` through a gate of its own."""

    def work() -> list[str]:
        from aigre_policy.gate import Gate

        decisions = []
        with Gate.from_pack(pack, ledger=ledger, log=log, log_options=log_options) as gate:
            for n in range(checks):
                verdict = gate.check(race_action(index, n, cost))
                decisions.append("fail_closed" if verdict.fail_closed else verdict.decision)
        return decisions

    return work


@dataclass
class RaceResult:
    decisions: list[list[str]]  # per worker
    seconds: float  # from the release of the workers to the last one's answer
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def checks(self) -> int:
        return sum(len(d) for d in self.decisions)

    @property
    def per_second(self) -> float:
        return self.checks / self.seconds if self.seconds else 0.0


def _run(work: Worker, index: int, start: Any, out: Any) -> None:
    start.wait()
    try:
        out.put((index, work(), None))
    except BaseException as exc:  # reported to the parent, never lost
        out.put((index, [], f"{type(exc).__name__}: {exc}"))


def race(workers: Sequence[Worker], timeout: float = 600) -> RaceResult:
    """Run each worker in a process of its own, all released together (``fork``: the
    callables need not pickle; nothing the parent holds open may be shared)."""
    context = multiprocessing.get_context("fork")
    start, out = context.Event(), context.Queue()
    processes = [
        context.Process(target=_run, args=(work, i, start, out)) for i, work in enumerate(workers)
    ]
    for process in processes:
        process.start()
    began = time.perf_counter()
    start.set()
    found: dict[int, list[str]] = {}
    for _ in processes:
        index, decisions, error = out.get(timeout=timeout)
        if error:
            raise AssertionError(f"worker {index} failed: {error}")
        found[index] = decisions
    seconds = time.perf_counter() - began
    for process in processes:
        process.join(timeout=30)
    decisions = [found[i] for i in range(len(workers))]
    counts: dict[str, int] = {}
    for answer in (d for each in decisions for d in each):
        counts[answer] = counts.get(answer, 0) + 1
    return RaceResult(decisions, seconds, counts)


def ledger_totals(ledger: str) -> tuple[int, int, float]:
    """``(rows, allowed rows, allowed spend)`` of the current rows, read from the database."""
    from postgres_cluster import run_sql

    rows = run_sql(ledger, "SELECT decision, action FROM actions WHERE outcome IS NULL")
    allowed = [json.loads(action) for decision, action in rows if decision == "allow"]
    return len(rows), len(allowed), sum(a["cost"]["estimated_usd"] for a in allowed)


def settle(
    result: RaceResult, *, cost: float, budget: float, ledger: str, logs: Sequence[str | Path]
) -> None:
    """Assert what the race must leave behind."""
    from aigre_policy.gate.log import verify_log

    assert "fail_closed" not in result.counts, result.counts
    admitted = result.counts.get("allow", 0)
    assert admitted * cost <= budget, f"{admitted} admitted: {admitted * cost} of {budget}"
    if result.checks * cost >= budget:
        assert admitted * cost == budget, f"only {admitted * cost} of {budget} spent"
    rows, allowed, spend = ledger_totals(ledger)
    assert rows == result.checks, f"{rows} ledger rows for {result.checks} checks"
    assert allowed == admitted and spend == admitted * cost, (allowed, spend, admitted)
    for log in logs:
        report = verify_log(log)
        assert report.ok, report
