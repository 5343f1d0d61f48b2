"""Exact budgets: a check and the spend it admits are one step, whatever the clocks."""

from __future__ import annotations

import multiprocessing
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from postgres_cluster import run_sql, with_options

from aigre_policy.gate import FakeClock, FunctionReviewer, Gate
from aigre_policy.gate.clock import iso
from aigre_policy.gate.log import read_log
from aigre_policy.gate.review import ReviewAnswer, ReviewRequest

BUDGET = 100

POLICIES = """
usage spend_hour = sum(action.cost.estimated_usd) over last 1h where decision == "allow"

rule budget {
  deny when usage.spend_hour + action.cost.estimated_usd > 100
}
rule big-change {
  escalate to ["llm-judge"] when action.change.lines > 400
}
"""

BASE = datetime.fromisoformat("2025-03-10T12:00:00+00:00")


def act(n: int, usd: float, lines: int = 1) -> dict[str, Any]:
    return {
        "id": f"act-{n}",
        "kind": "restart",
        "target": f"svc-{n}",
        "environment": "production",
        "actor": {"kind": "llm", "id": "agent-7", "trust": 3},
        "change": {"type": "config", "lines": lines},
        "reversible": True,
        "blast_radius": {"users_share": 0.1},
        "cost": {"estimated_usd": usd},
        "requested_at": iso(BASE),
    }


@pytest.fixture
def pack_dir(new_pack) -> Path:
    return new_pack(POLICIES)


def ledger_rows(ledger: str) -> list[tuple[str, int]]:
    return [(d, at) for d, at in run_sql(ledger, "SELECT decision, at_us FROM actions ORDER BY id")]


@pytest.mark.parametrize("behind_first", [True, False])
def test_two_gates_one_millisecond_apart_cannot_both_spend_the_budget(
    pack_dir: Path, ledger_url: str, behind_first: bool
) -> None:
    ledger = ledger_url
    ahead = Gate.from_pack(pack_dir, ledger=ledger, clock=FakeClock(BASE))
    behind = Gate.from_pack(
        pack_dir, ledger=ledger, clock=FakeClock(BASE - timedelta(milliseconds=1))
    )
    first, second = (behind, ahead) if behind_first else (ahead, behind)
    assert first.check(act(1, BUDGET)).decision == "allow"
    refused = second.check(act(2, BUDGET))
    assert refused.decision == "deny" and refused.usage == {"spend_hour": BUDGET}
    times = [at_us for _, at_us in ledger_rows(ledger_url)]
    assert times == sorted(times)  # the ledger's time never goes backwards


def test_a_slow_clock_records_at_the_ledgers_time(pack_dir: Path, ledger_url: str) -> None:
    ledger = ledger_url
    ahead = Gate.from_pack(pack_dir, ledger=ledger, clock=FakeClock(BASE))
    behind = Gate.from_pack(pack_dir, ledger=ledger, clock=FakeClock(BASE - timedelta(seconds=5)))
    ahead.check(act(1, 10))
    behind.check(act(2, 10))
    assert [at for _, at in ledger_rows(ledger_url)] == [int(BASE.timestamp() * 1_000_000)] * 2


def test_a_reviewed_case_is_judged_again_under_the_lock(
    pack_dir: Path, tmp_path: Path, ledger_url: str
) -> None:
    ledger = ledger_url
    other = Gate.from_pack(pack_dir, ledger=ledger, clock=FakeClock(BASE))

    def slow_judge(request: ReviewRequest) -> ReviewAnswer:
        assert request.usage == {"spend_hour": 0}  # room when the reviewer was asked
        assert other.check(act(2, 60)).decision == "allow"  # spent while it thinks
        return ReviewAnswer("allow", "looks fine")

    gate = Gate.from_pack(
        pack_dir,
        ledger=ledger,
        log=tmp_path / "decisions.jsonl",
        clock=FakeClock(BASE),
        reviewers=[FunctionReviewer("llm-judge", slow_judge, kind="llm")],
    )
    verdict = gate.check(act(1, 60, lines=500))
    assert verdict.decision == "deny" and "budget" in verdict.rule_ids
    assert verdict.usage == {"spend_hour": 60}
    assert verdict.reviews[0]["decision"] == "allow"  # the review is kept as evidence
    assert [d for d, _ in ledger_rows(ledger_url)] == ["allow", "deny"]
    [logged] = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    assert logged.id == verdict.decision_id and logged.body["verdict"]["decision"] == "deny"
    assert logged.body["input"]["usage"] == {"spend_hour": 60}  # what the deny was judged on


def test_a_reviewed_case_with_room_left_keeps_the_reviewers_answer(
    pack_dir: Path, ledger_url: str
) -> None:
    gate = Gate.from_pack(
        pack_dir,
        ledger=ledger_url,
        clock=FakeClock(BASE),
        reviewers=[
            FunctionReviewer("llm-judge", lambda r: ReviewAnswer("allow", "ok"), kind="llm")
        ],
    )
    verdict = gate.check(act(1, 60, lines=500))
    assert verdict.decision == "allow" and verdict.gate["settled_by"] == "llm-judge"
    assert gate.check(act(2, 60, lines=500)).decision == "deny"


# -- many processes on one ledger ------------------------------------------------------------

PROCESSES = 4
CHECKS = 150
COST = 0.5  # 600 checks of 0.5 ask for 300 against a budget of 100: at most 200 admitted
SKEWS_MS = (0, 7, -7, 19)  # each process's clock, off the shared one


def _checker(
    pack_dir: str, ledger: str, index: int, start: multiprocessing.synchronize.Event, out: Any
) -> None:
    origin = time.perf_counter()
    skew = timedelta(milliseconds=SKEWS_MS[index])

    def clock() -> datetime:  # shared base time, real progress, a skew of its own
        return BASE + skew + timedelta(seconds=time.perf_counter() - origin)

    gate = Gate.from_pack(pack_dir, ledger=with_options(ledger, timeout=30), clock=clock)
    start.wait()
    decisions = []
    for n in range(CHECKS):
        verdict = gate.check(act(index * 10_000 + n, COST))
        decisions.append((verdict.decision, verdict.fail_closed))
    gate.close()
    out.put((index, decisions))


def test_processes_with_skewed_clocks_never_overspend_and_lose_nothing(
    pack_dir: Path, ledger_url: str
) -> None:
    first = Gate.from_pack(pack_dir, ledger=ledger_url)
    first.check(act(-1, 0))  # create the file or the tables
    first.close()  # nothing open across the fork
    context = multiprocessing.get_context("fork")
    start, out = context.Event(), context.Queue()
    workers = [
        context.Process(target=_checker, args=(str(pack_dir), ledger_url, i, start, out))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    start.set()
    results = dict(out.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    decisions = [d for i in sorted(results) for d in results[i]]
    assert not any(fail_closed for _, fail_closed in decisions)
    admitted = sum(1 for decision, _ in decisions if decision == "allow")
    assert admitted * COST <= BUDGET, f"{admitted} admitted: {admitted * COST} of {BUDGET}"
    assert admitted * COST == BUDGET  # and the budget is used to the last cent
    rows = ledger_rows(ledger_url)
    assert len(rows) == PROCESSES * CHECKS + 1  # every check kept, none lost
    assert sum(1 for decision, _ in rows if decision == "allow") == admitted + 1
    times = [at_us for _, at_us in rows]
    assert times == sorted(times)
