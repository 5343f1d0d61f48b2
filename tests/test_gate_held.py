"""Held decisions (``gate.held``): ``require_approval`` verdicts kept in the ledger, in the
decision's own transaction, read and answered by any gate on the same ledger. Every test
runs on SQLite and on PostgreSQL (``ledger_url``)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from conftest import gate_action as act

from aigre_policy.gate import ApprovalRejected, FakeClock, Gate, StaticDirectory
from aigre_policy.gate.held import HeldDecisions
from aigre_policy.gate.ledger import open_ledger
from aigre_policy.gate.log import read_log

POLICIES = """
rule costly {
  require_approval by ["finops"] when action.cost.estimated_usd > 100
}
rule deletion {
  require_approval by ["sre-oncall", "dba"] when action.kind == "data_deletion"
}
"""
DIRECTORY = StaticDirectory({"finops": ["fay"], "sre-oncall": ["sam"], "dba": ["dee"]})


@pytest.fixture
def fleet(new_pack, tmp_path: Path, ledger_url: str):
    """``fleet(n)``: n gates, each with its own ledger store and log, on one ledger."""
    pack = new_pack(POLICIES)
    clock = FakeClock("2025-03-10T12:00:00Z")
    gates: list[Gate] = []

    def make(n: int = 2) -> list[tuple[Gate, HeldDecisions]]:
        made = []
        for _ in range(n):
            store = open_ledger(ledger_url)
            held = HeldDecisions(store)
            gate = Gate.from_pack(
                pack,
                ledger=store,
                log=tmp_path / f"log-{len(gates)}.jsonl",
                directory=DIRECTORY,
                clock=clock,
                held=held,
            )
            gates.append(gate)
            made.append((gate, held))
        return made

    yield make
    for gate in gates:
        gate.close()


def _ids(held: HeldDecisions) -> list[str]:
    return [h.verdict.decision_id for h in held.listed()]


def test_a_held_decision_is_listed_by_every_gate_on_the_ledger(fleet) -> None:
    (a, held_a), (_, held_b) = fleet(2)
    asked = a.check(act(cost={"estimated_usd": 500}), requested_by="bot-key")
    assert asked.decision == "require_approval"
    assert _ids(held_a) == _ids(held_b) == [asked.decision_id]
    entry = held_b.get(asked.decision_id)
    assert entry is not None and entry.requested_by == "bot-key" and entry.approvals == ()
    assert entry.verdict.action == asked.action
    assert entry.verdict.action_digest == asked.action_digest
    assert [r["id"] for r in entry.verdict.fired] == ["costly"]
    assert "inbox" not in asked.gate  # held without a fault


def test_decisions_that_do_not_wait_are_not_held(fleet) -> None:
    ((gate, held),) = fleet(1)
    assert gate.check(act(cost={"estimated_usd": 5})).decision == "allow"
    assert held.listed() == []


def test_an_approval_on_one_gate_shows_on_the_other_and_the_retry_is_allowed_on_either(
    fleet,
) -> None:
    (a, held_a), (b, held_b) = fleet(2)
    asked = a.check(act(cost={"estimated_usd": 500}))
    entry = held_b.get(asked.decision_id)
    assert entry is not None
    b.approve(entry.verdict, by="fay", group="finops")  # the verdict read back from the ledger
    (again,) = held_a.listed()
    assert [(g["by"], g["group"]) for g in again.approvals] == [("fay", "finops")]
    assert a.check(act(cost={"estimated_usd": 500})).decision == "allow"
    assert held_a.listed() == held_b.listed() == []  # the re-check settled it everywhere


def test_a_self_approval_of_a_held_decision_is_refused(fleet) -> None:
    (a, _), (b, held_b) = fleet(2)
    asked = a.check(
        act(cost={"estimated_usd": 500}), actor={"id": "fay", "kind": "human", "trust": 3}
    )
    entry = held_b.get(asked.decision_id)
    assert entry is not None
    with pytest.raises(ApprovalRejected):  # the attested actor kept in the held verdict
        b.approve(entry.verdict, by="fay", group="finops")


def test_checking_the_same_action_again_replaces_its_entry(fleet) -> None:
    ((gate, held),) = fleet(1)
    first = gate.check(act(cost={"estimated_usd": 500}))
    second = gate.check(act(cost={"estimated_usd": 500}))
    assert _ids(held) == [second.decision_id] and first.decision_id != second.decision_id
    assert held.get(first.decision_id) is None


def test_a_rejection_is_kept_in_the_transaction_that_logs_it(fleet, tmp_path: Path) -> None:
    (a, _), (b, held_b) = fleet(2)
    asked = a.check(act(kind="data_deletion", cost={"estimated_usd": 1}))

    def refused(verdict: Any) -> dict[str, Any]:
        return b.reject(verdict, by="fay", group="finops")  # not an approver group here

    with pytest.raises(ApprovalRejected):
        held_b.reject(asked.decision_id, refused)
    assert held_b.get(asked.decision_id).rejection is None  # nothing marked
    held_b.reject(asked.decision_id, lambda v: b.reject(v, by="dee", group="dba", note="no"))
    entry = held_b.get(asked.decision_id)
    assert entry.rejection is not None and entry.rejection["by"] == "dee"
    logged = [e.body for e in read_log(tmp_path / "log-1.jsonl") if e.kind == "approval"]
    assert [(e["status"], e.get("declined")) for e in logged] == [
        ("rejected", None),
        ("rejected", True),
    ]
    with pytest.raises(KeyError):
        held_b.reject("no-such-decision", lambda v: {})


def test_a_released_decision_is_not_listed(fleet, ledger_url: str) -> None:
    ((gate, held),) = fleet(1)
    asked = gate.check(act(cost={"estimated_usd": 500}))
    with open_ledger(ledger_url).session() as session:  # what a log that fails does
        session.release(asked.decision_id, 1)
    assert held.listed() == []


def test_past_the_limit_the_oldest_entries_go(fleet, monkeypatch) -> None:
    from aigre_policy.gate import held as held_module

    monkeypatch.setattr(held_module, "PRUNE_EVERY", 1)
    ((gate, held),) = fleet(1)
    held.limit = 2
    asked = [gate.check(act(n, cost={"estimated_usd": 500})) for n in range(4)]
    assert _ids(held) == [v.decision_id for v in asked[-2:]]


def test_a_hold_that_fails_leaves_the_decision_and_nothing_half_written(fleet, monkeypatch) -> None:
    """A fault while holding is kept beside the verdict and rolled back to the savepoint:
    the decision's own rows stay (it can be approved and the retry allowed), the held
    table keeps none of the failed write, and the next hold works."""
    ((gate, held),) = fleet(1)
    real_hold = HeldDecisions._hold

    def half_then_fail(self, conn, draft, verdict, row_id):
        real_hold(self, conn, draft, verdict, row_id)  # the entry is written, then:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(HeldDecisions, "_hold", half_then_fail)
    asked = gate.check(act(cost={"estimated_usd": 500}))
    assert asked.decision == "require_approval" and not asked.fail_closed
    assert asked.gate["inbox"]["error"] == "not held: RuntimeError: disk gone"
    monkeypatch.setattr(HeldDecisions, "_hold", real_hold)
    assert held.listed() == []  # the half-written entry went with the savepoint
    assert gate.approve(asked, by="fay", group="finops")  # the decision was kept
    again = gate.check(act(kind="data_deletion"))
    assert _ids(held) == [again.decision_id] and "inbox" not in again.gate


def test_a_savepoint_that_cannot_be_rolled_back_is_still_not_raised(fleet, monkeypatch) -> None:
    """Even the rollback failing stays beside the verdict: ``keep`` never raises."""
    from aigre_policy.gate.side_tables import SideTable

    ((gate, _),) = fleet(1)
    gate.check(act(cost={"estimated_usd": 5}))  # the ledger's tables exist

    @contextlib.contextmanager
    def broken(self, conn, name):
        raise RuntimeError("connection lost during rollback")
        yield

    monkeypatch.setattr(SideTable, "savepoint", broken)
    asked = gate.check(act(cost={"estimated_usd": 500}))
    assert asked.decision == "require_approval"
    assert asked.gate["inbox"]["error"].startswith("not held: RuntimeError: connection lost")


def test_after_one_group_approved_a_recheck_waits_only_on_the_other(fleet) -> None:
    """Two rules wait on two groups; FinOps approves; the re-check still waits on the
    on-call group. The held entry shows FinOps's approval and only the other group as
    missing, on the ledger's store and on the in-memory one alike."""
    from aigre_policy.server.approvals_store import PendingApprovals, SharedApprovals

    ((gate, held),) = fleet(1)
    both = act(kind="data_deletion", cost={"estimated_usd": 500})
    first = gate.check(both)
    assert sorted(r["id"] for r in first.fired) == ["costly", "deletion"]
    gate.approve(first, by="fay", group="finops")
    again = gate.check(both)
    assert again.decision == "require_approval"
    assert again.gate["approvals"]["pending_rules"] == ["deletion"]
    in_memory = PendingApprovals()
    in_memory.add(again, "bot")
    for store in (SharedApprovals(held), in_memory):
        entry = store.get(again.decision_id)
        assert entry is not None
        summary = entry.summary()
        assert summary["missing"] == [["sre-oncall", "dba"]], store
        assert [(a["by"], a["group"]) for a in summary["approvals"]] == [("fay", "finops")]
        assert summary["state"] == "pending"
