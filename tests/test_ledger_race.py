"""Hosts racing one budget on one PostgreSQL ledger: 3 processes, each with its own gate,
connection pool and decision log, 300 checks each against a budget that 200 of them fill."""

from __future__ import annotations

from pathlib import Path

from budget_race import POLICIES, gate_worker, race, settle
from postgres_cluster import with_options

PROCESSES = 3
CHECKS = 300
COST = 0.5
BUDGET = 100  # 900 checks of 0.5 ask for 450: exactly 200 may be admitted


def test_three_hosts_never_overspend_one_postgresql_budget(
    new_pack, postgres_url: str, tmp_path: Path
) -> None:
    pack = str(new_pack(POLICIES.format(budget=BUDGET)))
    ledger = with_options(postgres_url, timeout=30)
    logs = [str(tmp_path / f"host-{i}.jsonl") for i in range(PROCESSES)]
    workers = [gate_worker(pack, ledger, logs[i], i, CHECKS, COST) for i in range(PROCESSES)]
    result = race(workers, timeout=300)
    assert result.checks == PROCESSES * CHECKS
    assert result.counts == {"allow": 200, "deny": PROCESSES * CHECKS - 200}
    settle(result, cost=COST, budget=BUDGET, ledger=postgres_url, logs=logs)
