"""Three ``aigre-policy serve`` replicas on one PostgreSQL ledger, raced by concurrent clients.

Each replica is a process of its own with its own decision log; the clients post
``/v1/check`` round-robin over them against one budget that half the demand fills.
Afterwards (``replica_fleet.settle``): admitted spend is exactly the budget, never over
it; the ledger, read directly, holds one current row per answered check, the one the
client received; every answer is in the log of the replica that gave it, and every log
verifies. The second test kills one replica with SIGKILL mid-run; the third holds an
action on one replica and approves it on another.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from budget_race import POLICIES, race_action
from postgres_cluster import with_options
from replica_fleet import ROOT, Answer, client, drive, logged_decisions, replicas, settle

from aigre_policy.gate.log import verify_log

pytest.importorskip("uvicorn")  # the serve extra

REPLICAS = 3
CLIENTS = 6
COST = 0.5
BASELINE = ROOT / "policy_packs" / "aigre-baseline"


def _fleet(new_pack, postgres_url: str, tmp_path: Path, budget: float):
    pack = str(new_pack(POLICIES.format(budget=budget)))
    # a check may wait for the others' transactions: more than the default 5 s under load
    ledger = with_options(postgres_url, timeout=60, pool_max=2)
    logs = [tmp_path / f"replica-{i}.jsonl" for i in range(REPLICAS)]
    return pack, ledger, logs


def test_three_replicas_never_overspend_one_postgresql_budget(
    new_pack, postgres_url: str, tmp_path: Path
) -> None:
    checks, budget = 900, 225  # 900 checks of 0.5 ask for 450: exactly 450 may be admitted
    pack, ledger, logs = _fleet(new_pack, postgres_url, tmp_path, budget)
    actions = [race_action(n % CLIENTS, n, COST) for n in range(checks)]
    with replicas(pack, ledger, logs) as fleet:
        result = drive([r.url for r in fleet], actions, CLIENTS)
    assert result.counts == {"allow": 450, "deny": 450}, result.counts
    assert {a.replica for a in result.answers} == set(range(REPLICAS))
    settled = settle(
        result, actions=checks, cost=COST, budget=budget, ledger=postgres_url, fleet=fleet
    )
    assert settled.rows == settled.current == checks  # nothing resent, nothing superseded
    assert sum(settled.logged.values()) == checks


def test_a_replica_killed_mid_run_loses_nothing_and_admits_nothing_beyond_the_budget(
    new_pack, postgres_url: str, tmp_path: Path
) -> None:
    checks, budget = 450, 112.5  # exactly 225 of the 450 may be admitted
    pack, ledger, logs = _fleet(new_pack, postgres_url, tmp_path, budget)
    actions = [race_action(n % CLIENTS, n, COST) for n in range(checks)]
    killed = threading.Event()
    count = iter(range(checks + 1))
    guard = threading.Lock()
    after: list[int] = []  # the replicas that answered once the kill was done

    with replicas(pack, ledger, logs) as fleet:

        def answered(answer: Answer) -> None:
            with guard:  # replica 0 dies once a third of the checks are answered
                if killed.is_set():
                    after.append(answer.replica)
                elif next(count) == checks // 3:
                    fleet[0].kill()
                    killed.set()

        result = drive([r.url for r in fleet], actions, CLIENTS, answered)
        assert killed.is_set()
        assert fleet[0].process.returncode == -9
        settled = settle(
            result,
            actions=checks,
            cost=COST,
            budget=budget,
            ledger=postgres_url,
            fleet=fleet,
            killed=[0],
        )
        # the survivors took the rest: once dead, replica 0 answered nothing more (but for
        # an answer per client already received when the kill was made)
        assert len(after) > checks // 2 and after.count(0) < CLIENTS, after
        assert result.counts == {"allow": 225, "deny": 225}, result.counts

    # the killed replica's log: every entry up to its last complete line verifies (asserted
    # in settle); a replica started again on it repairs a torn tail and continues the chain
    before = logged_decisions(logs[0])
    with replicas(pack, ledger, logs[:1]) as again:
        (answer,) = client([again[0].url], [race_action(99, 0, COST)], 0)
    assert answer.status == 200 and answer.decision == "deny"  # the budget is spent
    report = verify_log(logs[0])
    assert report.ok, report
    assert logged_decisions(logs[0]) == {**before, answer.decision_id: "deny"}
    assert settled.verified[0] == "ok" or report.recoveries


def test_an_action_held_on_one_replica_is_listed_and_approved_on_another(
    postgres_url: str, tmp_path: Path
) -> None:
    """What docs/server.md says of a fleet: the decisions waiting for people live in the
    shared ledger with the approvals, so any replica lists them and any approves them."""
    config = ROOT / "examples" / "server" / "server.yaml"
    grant = json.loads((ROOT / "examples" / "server" / "grant.json").read_text())
    rui = {"Authorization": "Bearer demo-key-rui"}
    fay = {"Authorization": "Bearer demo-key-fay"}
    logs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    with replicas(str(BASELINE), postgres_url, logs, "--config", str(config)) as (a, b):
        asked = httpx.post(f"{a.url}/v1/check", json=grant, headers=rui, timeout=60).json()
        assert asked["decision"] == "require_approval"
        inbox = [
            httpx.get(f"{r.url}/v1/approvals?state=pending", headers=fay, timeout=60).json()
            for r in (a, b)
        ]
        assert [[p["decision_id"] for p in i["approvals"]] for i in inbox] == [
            [asked["decision_id"]],
            [asked["decision_id"]],
        ]
        assert inbox[1]["approvals"][0]["requested_by"] == "rui"
        approval = {"decision_id": asked["decision_id"], "group": "security"}
        elsewhere = httpx.post(f"{b.url}/v1/approvals", json=approval, headers=fay, timeout=60)
        assert elsewhere.status_code == 201, elsewhere.text
        assert elsewhere.json()["state"] == "approved"
        listed = httpx.get(f"{a.url}/v1/approvals?state=approved", headers=fay, timeout=60)
        assert [p["decision_id"] for p in listed.json()["approvals"]] == [asked["decision_id"]]
        retries = [
            httpx.post(f"{r.url}/v1/check", json=grant, headers=rui, timeout=60).json()
            for r in (a, b)
        ]
        after = httpx.get(f"{a.url}/v1/approvals?state=all", headers=fay, timeout=60).json()
    assert [r["decision"] for r in retries] == ["allow", "allow"]
    assert [c["by"] for c in retries[0]["gate"]["approvals"]["counted"]] == ["fay"]
    assert after["approvals"] == []  # the allowed re-check settled it on every replica


def test_readiness_does_not_wait_for_the_fleets_write_lock(postgres_url: str) -> None:
    """A load balancer probes ``/readyz`` on every replica every few seconds: the probe
    reads the ledger without taking the lock every check of the fleet takes, so it never
    queues behind them, and a lock held long (a frozen host) does not take every replica
    out of the pool, the pure evaluation APIs with them."""
    import psycopg

    from aigre_policy.gate.postgres import LOCK_CLASS
    from aigre_policy.server.config import ServerConfig
    from aigre_policy.server.runtime import Runtime

    runtime = Runtime(BASELINE, ServerConfig(ledger=with_options(postgres_url, timeout=1)))
    try:
        assert runtime.ledger_problem() is None  # the tables exist from here on
        with psycopg.connect(postgres_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s, hashtext(current_schema()))", (LOCK_CLASS,))
            started = time.monotonic()
            assert runtime.ledger_problem() is None
            assert time.monotonic() - started < 1
    finally:
        runtime.close()
