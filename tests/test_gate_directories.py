"""Approver directories from a file (reloaded when it changes) and from approvers' verified
credentials (a JWT's groups claim on ``serve``); membership stays the gate's to check."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import gate_action, write_pack

from aigre_policy.gate import ApprovalRejected, FakeClock, Gate
from aigre_policy.gate.directories import AnyDirectory, ClaimedGroups, FileDirectory

POLICY = """
rule big-spend {
  require_approval by ["finops"] when action.cost.estimated_usd > 100
}
"""


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_file_directory_is_read_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text("finops: [fay]\n")
    ticks = Ticks()
    directory = FileDirectory(path, check_seconds=1.0, timer=ticks)
    assert directory.is_member("fay", "finops") and not directory.is_member("li", "finops")
    path.write_text("finops: [li]\nsecurity: [sue]\n")
    assert directory.is_member("fay", "finops")  # not looked at again within check_seconds
    ticks.now = 2.0
    assert directory.is_member("li", "finops") and not directory.is_member("fay", "finops")
    assert directory.is_member("sue", "security")


@pytest.mark.parametrize("text", ["finops: fay\n", "[1, 2]\n", "finops: [fay\n", "finops: ['']\n"])
def test_a_broken_directory_file_makes_nobody_a_member(tmp_path: Path, text: str) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text("finops: [fay]\n")
    ticks = Ticks()
    directory = FileDirectory(path, timer=ticks)
    path.write_text(text)
    ticks.now = 5.0
    assert not directory.is_member("fay", "finops")
    assert directory.error
    path.write_text("finops: [fay]\n")
    ticks.now = 10.0
    assert directory.is_member("fay", "finops") and directory.error is None


def test_a_missing_directory_file_makes_nobody_a_member(tmp_path: Path) -> None:
    directory = FileDirectory(tmp_path / "absent.json")
    assert not directory.is_member("fay", "finops") and directory.error


def test_groups_learnt_from_credentials_expire() -> None:
    ticks = Ticks()
    claimed = ClaimedGroups(60, timer=ticks)
    claimed.remember({"id": "fay", "kind": "human", "trust": 4, "groups": ["finops"]})
    claimed.remember({"id": "bot", "groups": "finops"})  # not a list: no groups
    assert claimed.is_member("fay", "finops") and not claimed.is_member("bot", "finops")
    ticks.now = 61
    assert not claimed.is_member("fay", "finops")


def test_approvals_follow_the_directory_file(tmp_path: Path, ledger_url: str) -> None:
    pack = write_pack(tmp_path / "pack", POLICY)
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"finops": ["fay"]}))
    directory = FileDirectory(path, check_seconds=0)
    gate = Gate.from_pack(
        pack,
        ledger=ledger_url,
        clock=FakeClock("2025-03-10T12:00:00Z"),
        directory=AnyDirectory([directory]),
    )
    with gate:
        claiming = gate_action(cost={"estimated_usd": 500})
        verdict = gate.check(claiming)
        with pytest.raises(ApprovalRejected, match="not a member"):
            gate.approve(verdict, by="li", group="finops")
        gate.approve(verdict, by="fay", group="finops")
        assert gate.check(claiming).decision == "allow"
        time.sleep(0.01)  # a new modification time
        path.write_text(json.dumps({"finops": []}))  # fay leaves finops
        again = gate.check(claiming)
        assert again.decision == "require_approval"
        assert again.gate["approvals"]["ignored"][0]["reason"] == "not a member of `finops`"
