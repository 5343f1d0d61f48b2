"""Usage filters that compare past actions with the one being checked (``current``).

Per-target limits on both ledgers: the count is per target, a fresh reader computes
the same values from the stored rows, a target that is hostile text stays data, an
unreadable current action fails closed, and concurrent checks of one target never
pass the per-target limit.
"""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from postgres_cluster import with_options

from aigre_policy import load_pack
from aigre_policy.gate import FakeClock, Gate
from aigre_policy.gate.clock import iso
from aigre_policy.gate.usage import match_digest

LIMIT = 3

POLICIES = """
usage restarts_of_target = count() over last 1h
  where action.kind == "restart" and decision == "allow" and action.target == current.target
usage spend_in_env = sum(action.cost.estimated_usd) over last 1h
  where current.environment == action.environment

rule restart-rate {
  deny when action.kind == "restart" and usage.restarts_of_target >= 3
  because "{action.target} restarted {usage.restarts_of_target} times in the last hour"
}
"""

BASE = datetime.fromisoformat("2025-03-10T12:00:00+00:00")


def act(n: int, target: str, kind: str = "restart", env: str = "production") -> dict[str, Any]:
    return {
        "id": f"act-{n}",
        "kind": kind,
        "target": target,
        "environment": env,
        "actor": {"kind": "llm", "id": "agent-7", "trust": 3},
        "change": {"type": "config", "lines": n},  # distinct digests
        "reversible": True,
        "blast_radius": {"users_share": 0.1},
        "cost": {"estimated_usd": 10},
        "requested_at": iso(BASE),
    }


@pytest.fixture
def pack_dir(new_pack) -> Path:
    return new_pack(POLICIES)


def test_restarts_are_counted_per_target(pack_dir: Path, ledger_url: str) -> None:
    gate = Gate.from_pack(pack_dir, ledger=ledger_url, clock=FakeClock(BASE))
    for n in range(LIMIT):
        assert gate.check(act(n, "checkout")).decision == "allow"
    assert gate.check(act(10, "payments")).decision == "allow"  # another target has room
    refused = gate.check(act(11, "checkout"))
    assert refused.decision == "deny" and refused.rule_ids == ["restart-rate"]
    assert refused.usage == {"restarts_of_target": LIMIT, "spend_in_env": 40}
    staging = gate.check(act(12, "checkout", kind="deploy", env="staging"))
    assert staging.usage == {"restarts_of_target": LIMIT, "spend_in_env": 0}
    gate.close()


def test_a_fresh_reader_computes_the_same_values_from_the_stored_rows(
    pack_dir: Path, ledger_url: str
) -> None:
    writer = Gate.from_pack(pack_dir, ledger=ledger_url, clock=FakeClock(BASE))
    reader = Gate.from_pack(pack_dir, ledger=ledger_url, clock=FakeClock(BASE))
    assert reader.check(act(100, "search", kind="deploy")).usage["restarts_of_target"] == 0
    for n in range(2):  # rows the reader did not write: read back through the changes
        writer.check(act(n, "checkout"))
    writer.check(act(5, "payments"))
    assert reader.check(act(101, "checkout", kind="deploy")).usage["restarts_of_target"] == 2
    writer.close()
    reader.close()
    late = Gate.from_pack(pack_dir, ledger=ledger_url, clock=FakeClock(BASE))  # loads them all
    assert late.check(act(102, "checkout", kind="deploy")).usage["restarts_of_target"] == 2
    assert late.check(act(103, "payments", kind="deploy")).usage["restarts_of_target"] == 1
    late.close()


def test_a_hostile_target_is_data(pack_dir: Path, ledger_url: str) -> None:
    hostile = "x'); DROP TABLE actions; --"
    gate = Gate.from_pack(pack_dir, ledger=ledger_url, clock=FakeClock(BASE))
    for n in range(LIMIT):
        assert gate.check(act(n, hostile)).decision == "allow"
    assert gate.check(act(9, hostile)).decision == "deny"
    assert gate.check(act(10, "x")).decision == "allow"
    gate.close()


def test_an_unreadable_current_action_fails_closed(pack_dir: Path, ledger_url: str) -> None:
    gate = Gate.from_pack(pack_dir, ledger=ledger_url, clock=FakeClock(BASE))
    broken = act(1, "checkout")
    del broken["target"]
    verdict = gate.check(broken)
    assert verdict.decision == "deny" and verdict.fail_closed
    gate.close()


def test_equal_numbers_digest_alike() -> None:
    assert match_digest([1, "a"]) == match_digest([1.0, "a"])
    assert match_digest([True]) != match_digest([1])
    assert match_digest(["a"]) != match_digest(["b"])


def test_the_filter_splits_into_the_row_part_and_the_matches(pack_dir: Path) -> None:
    usage = load_pack(pack_dir).program.usages[0]
    assert [(p.dotted, c.dotted) for p, c in usage.matches] == [("action.target", "current.target")]
    assert "current" not in repr(usage.filter)


# -- concurrent checks of one target ---------------------------------------------------------

PROCESSES = 3
CHECKS = 12


def _checker(pack_dir: str, ledger: str, index: int, start: Any, out: Any) -> None:
    gate = Gate.from_pack(pack_dir, ledger=with_options(ledger, timeout=30), clock=lambda: BASE)
    start.wait()
    decisions = []
    for n in range(CHECKS):
        target = "checkout" if n % 3 else "payments"  # two targets, interleaved
        verdict = gate.check(act(index * 1000 + n, target))
        decisions.append((target, verdict.decision, verdict.fail_closed))
    gate.close()
    out.put((index, decisions))


def test_concurrent_checks_never_pass_the_per_target_limit(pack_dir: Path, ledger_url: str) -> None:
    first = Gate.from_pack(pack_dir, ledger=ledger_url, clock=FakeClock(BASE - timedelta(days=1)))
    first.check(act(-1, "warm-up", kind="deploy"))  # the file or tables exist before the fork
    first.close()
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
    assert not any(fail_closed for *_, fail_closed in decisions)
    for target in ("checkout", "payments"):
        allowed = sum(1 for t, decision, _ in decisions if t == target and decision == "allow")
        assert allowed == LIMIT, f"{target}: {allowed} restarts admitted, the limit is {LIMIT}"


def test_a_limit_keyed_on_a_claimed_agent_id_is_reported(new_pack) -> None:
    """The ledger keeps proposals: `action.actor.id` is a claim, so a per-agent limit
    keyed on it can be stepped out of, and `check --strict` says so (L502)."""
    from aigre_policy.compiler import compile_pack
    from aigre_policy.lint import strict_diagnostics

    root = new_pack(
        "usage agent_spend = sum(action.cost.estimated_usd) over calendar_day\n"
        "  where action.actor.id == current.actor.id\n"
        "rule agent-spend { deny when usage.agent_spend > 100 }\n"
    )
    codes = [d.code for d in strict_diagnostics(compile_pack(root))]
    assert "L502" in codes
