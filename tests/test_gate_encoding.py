"""The decision entry the gate writes from bytes it already encoded is the canonical entry.

The recorder encodes the input once (reusing the action's canonical JSON from intake)
and takes the verdict's input digest of that encoding; these tests check that every
line it writes is exactly ``canonical_json`` of its parsed body, that the digest is
the digest of the logged input, and that a pack with sensitive fields still gets its
redaction.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy.gate import FakeClock, FunctionReviewer, Gate, StaticDirectory
from aigre_policy.gate.chain import _string
from aigre_policy.gate.log import read_log, verify_log
from aigre_policy.gate.review import ReviewAnswer
from aigre_policy.verdict import canonical_json, digest

POLICIES = """
usage spend_day = sum(action.cost.estimated_usd) over calendar_day where decision != "deny"

rule budget {
  deny when usage.spend_day + action.cost.estimated_usd > 1000
  because "spend would reach {usage.spend_day + action.cost.estimated_usd}"
}
rule grants {
  require_approval by ["security"] when action.kind == "iam_grant"
}
rule per-line {
  escalate when action.cost.estimated_usd / action.change.lines > 100
}
"""


def act(n: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"act-{n}",
        "kind": "restart",
        "target": 'chéckout ✓ "quoted" \\ \u2028',
        "environment": "production",
        "actor": {"kind": "llm", "id": "agent-7", "trust": 3},
        "change": {"type": "config", "lines": 1},
        "reversible": True,
        "blast_radius": {"users_share": 0.1},
        "cost": {"estimated_usd": 10.25},
        "requested_at": "2025-03-10T11:59:00Z",
    }
    base.update(overrides)
    return base


@pytest.fixture
def gate(new_pack, tmp_path) -> Gate:
    pack = new_pack(POLICIES, manifest={"sensitive": {"action.target": "mask"}}, name="masked")
    reviewer = FunctionReviewer("t", lambda request: ReviewAnswer("allow", "fine"))
    return Gate.from_pack(
        new_pack(POLICIES),
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
        log=tmp_path / "d.jsonl",
        clock=FakeClock("2025-03-10T12:00:00Z"),
        reviewers=[reviewer],
        identity={"kind": "llm", "id": "agent-7", "trust": 3},
        directory=StaticDirectory({"security": ["alice"]}),
        shadow=pack,
    )


def test_each_decision_line_is_the_canonical_form_of_its_body(gate: Gate, tmp_path: Path) -> None:
    verdicts = [
        gate.check(act(1)),  # allow
        gate.check(act(2, cost={"estimated_usd": 995})),  # deny, with evidence
        gate.check(act(3, kind="iam_grant")),  # require_approval
        gate.check(act(4, cost={"estimated_usd": 500})),  # escalate, reviewed
    ]
    approved = verdicts[2]
    gate.approve(approved, by="alice", group="security")
    verdicts.append(gate.check(act(3, kind="iam_grant")))  # approvals counted
    gate.close()
    assert [v.decision for v in verdicts] == [
        "allow",
        "deny",
        "require_approval",
        "allow",
        "allow",
    ]
    assert verdicts[-1].gate["approvals"]["counted"]
    path = tmp_path / "d.jsonl"
    assert verify_log(path).ok
    entries = {e.id: e for e in read_log(path) if e.kind == "decision"}
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    for verdict in verdicts:
        entry = entries[verdict.decision_id]
        assert entry.body["verdict"]["input_digest"] == verdict.input_digest
        assert verdict.input_digest == digest(entry.body["input"]) == digest(verdict.input)
        (line,) = [line for line in lines if line["id"] == verdict.decision_id]
        raw = path.read_bytes().splitlines()[lines.index(line)]
        start = raw.index(b'"body":') + len(b'"body":')
        assert raw[start:].startswith(canonical_json(entry.body) + b',"hash":')


def test_a_pack_with_sensitive_fields_still_redacts_the_decision(new_pack, tmp_path: Path) -> None:
    pack = new_pack(POLICIES, manifest={"sensitive": {"action.target": "mask"}})
    with Gate.from_pack(
        pack, ledger=f"sqlite:///{tmp_path / 'l.db'}", log=tmp_path / "d.jsonl"
    ) as gate:
        verdict = gate.check(act(1))
    text = (tmp_path / "d.jsonl").read_text()
    assert "chéckout" not in text and verify_log(tmp_path / "d.jsonl").ok
    (entry,) = [e for e in read_log(tmp_path / "d.jsonl") if e.kind == "decision"]
    assert entry.body["verdict"]["input_digest"] == verdict.input_digest == digest(verdict.input)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_the_log_quotes_a_string_as_canonical_json_does(text: str) -> None:
    try:
        expected = canonical_json(text)
    except ValueError:  # a lone surrogate: neither writes it
        with pytest.raises(ValueError):
            _string(text)
        return
    assert _string(text) == expected


def test_decision_ids_are_distinct_version_4_uuids(gate: Gate) -> None:
    ids = [gate.check(act(n)).decision_id for n in range(50)]
    assert len(set(ids)) == 50
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
