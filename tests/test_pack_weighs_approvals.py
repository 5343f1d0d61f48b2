"""A rule that reads ``context.approvals`` has the last word on the approvals it weighed.

The gate resolves a fired ``require_approval`` rule when it holds an approval from one
of the rule's groups. A rule that reads ``context.approvals`` has already weighed those
approvals (how old, how many, from whom) and fired all the same: the gate must not turn
its ``require_approval`` into ``allow`` by its own, looser test, and replay of the log
against the same pack must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aigre_policy.gate import FakeClock, Gate, StaticDirectory
from aigre_policy.gate.replay import replay_log
from aigre_policy.pack import load_pack

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
GRANT = ROOT / "fixtures" / "actions" / "admin-role-grant.yaml"


def _grant() -> dict[str, Any]:
    return yaml.safe_load(GRANT.read_text())


def _gate(tmp_path: Path, envelopes: dict[str, dict[str, Any]], clock: FakeClock) -> Gate:
    fixture = _grant()
    return Gate(
        load_pack(BASELINE, envelopes),
        ledger=tmp_path / "ledger.db",
        log=tmp_path / "decisions.jsonl",
        clock=clock,
        directory=StaticDirectory({"security": ["sec.ann"]}),
        identity=fixture["context"]["actor"],
    )


def test_an_approval_older_than_the_pack_allows_does_not_resolve_its_rule(tmp_path: Path) -> None:
    fixture = _grant()
    clock = FakeClock(fixture["context"]["now"])
    # the pack counts approvals for 1 hour; the gate keeps them for its default 24 hours
    with _gate(tmp_path, {"approval": {"max_age": "1h"}}, clock) as gate:
        first = gate.check(fixture["action"])
        assert first.decision == "require_approval"
        gate.approve(first, by="sec.ann", group="security")
        assert gate.check(fixture["action"]).decision == "allow"
        clock.advance(seconds=2 * 3600)
        late = gate.check(fixture["action"])
    assert late.pack_decision == "require_approval"
    assert late.rule_ids == ["admin-role-grant"]
    assert late.decision == "require_approval"  # was `allow`: the gate's 24 h overrode the pack


def test_replay_against_the_pack_agrees_with_the_gate(tmp_path: Path) -> None:
    fixture = _grant()
    clock = FakeClock(fixture["context"]["now"])
    envelopes = {"approval": {"max_age": "1h"}}
    with _gate(tmp_path, envelopes, clock) as gate:
        gate.approve(gate.check(fixture["action"]), by="sec.ann", group="security")
        gate.check(fixture["action"])
        clock.advance(seconds=2 * 3600)
        gate.check(fixture["action"])
    report = replay_log(BASELINE, tmp_path / "decisions.jsonl", envelopes=envelopes)
    assert (report.replayed, report.changed) == (3, 0), report.transitions
