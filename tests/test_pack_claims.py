"""A proposal's justification and its names cannot loosen the default pack's verdict.

The justification is the proposer's word: an alert or an incident counts only when
the attested context lists it (``context.alerts_firing``, ``context.incidents_open``).
Names are plain strings still: a look-alike of a frozen service is a known gap, kept
as an expected failure. Each case runs on the native evaluator and on both Rego engines.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from aigre_policy import load_pack
from aigre_policy.compiler import compile_pack
from aigre_policy.lint import lint_pack
from aigre_policy.lint.claims import claim_fields
from aigre_policy.models.action import ProposedAction, json_schema_of
from aigre_policy.pack import Pack
from aigre_policy.verdict import LATTICE as RANK
from aigre_policy.yamlio import read_document

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policy_packs" / "aigre-baseline"
ENGINES = ("native", "rego", "regorus")


@cache
def pack(engine: str) -> Pack:
    return load_pack(PACK, engine=engine)


def fixture(name: str) -> dict[str, Any]:
    doc, problems = read_document(ROOT / "fixtures" / "actions" / f"{name}.yaml")
    assert doc is not None, problems
    return copy.deepcopy(doc.data)


def decide(engine: str, case: dict[str, Any]):
    return pack(engine).evaluate(case["action"], case["context"], case.get("usage"))


# ---------------------------------------------------------------- the justification is a claim


def test_the_schema_marks_the_justification_a_claim():
    claims = claim_fields({"properties": {"action": json_schema_of(ProposedAction)}})
    assert ("action", "justification") in claims


UNPROMPTED = """rule r {
  severity: high
  escalate to ["sre-oncall"] when
    action.environment == "production"
    and not %s
  because "no signal"
}
"""


def l502(pack_dir: Path) -> list[str]:
    report = compile_pack(pack_dir)
    assert report.ok, [d.message for d in report.diagnostics]
    return [d.message for d in lint_pack(report).findings if d.code == "L502"]


def test_the_lint_flags_a_rule_that_trusts_the_justification(new_pack):
    trusting = new_pack({"r.aigre": UNPROMPTED % "has action.justification"})
    assert any("action.justification" in m for m in l502(trusting))
    attested = 'any(a in context.alerts_firing ?? []: (a.service ?? "") == action.target)'
    assert l502(new_pack({"r.aigre": UNPROMPTED % attested})) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_a_made_up_alert_does_not_lift_the_escalation(engine):
    case = fixture("unprompted-agent-deploy")
    case["action"]["justification"] = {"signal": "alert", "ref": "ALERT-00000"}
    verdict = decide(engine, case)
    assert not verdict.fail_closed, verdict.errors
    assert verdict.decision == "escalate"
    assert verdict.rule_ids == ["unprompted-agent-action"]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_alert_the_context_attests_lifts_the_escalation(engine):
    case = fixture("unprompted-agent-deploy")
    case["action"]["justification"] = {"signal": "alert", "ref": "ALERT-00000"}
    case["context"]["alerts_firing"] = [{"id": "ALERT-00000", "service": "search-api"}]
    verdict = decide(engine, case)
    assert not verdict.fail_closed, verdict.errors
    assert verdict.decision == "allow"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_made_up_incident_does_not_lift_the_escalation(engine):
    case = fixture("unprompted-agent-deploy")
    case["action"]["justification"] = {"signal": "incident", "ref": "INC-00000"}
    assert decide(engine, case).decision == "escalate"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_made_up_incident_does_not_soften_a_freeze(engine):
    case = fixture("payments-patch-during-freeze")
    case["action"]["justification"] = {"signal": "incident", "ref": "INC-00000"}
    verdict = decide(engine, case)
    assert not verdict.fail_closed, verdict.errors
    assert verdict.decision == "deny"
    assert "change-freeze" in verdict.rule_ids
    assert "emergency-change-in-freeze" not in verdict.rule_ids


@pytest.mark.parametrize("engine", ENGINES)
def test_an_incident_that_is_not_open_does_not_soften_a_freeze(engine):
    case = fixture("emergency-hotfix-during-freeze")
    assert decide(engine, case).decision == "require_approval"
    case["context"]["incidents_open"] = []
    assert decide(engine, case).decision == "deny"


@pytest.mark.parametrize("engine", ENGINES)
def test_an_incident_the_context_attests_goes_to_the_incident_commander(engine):
    case = fixture("payments-patch-during-freeze")
    case["action"]["justification"] = {"signal": "incident", "ref": "INC-4519"}
    case["context"]["incidents_open"] = [
        {"id": "INC-4519", "severity": "sev2", "services": ["payments-api"]}
    ]
    verdict = decide(engine, case)
    assert "emergency-change-in-freeze" in verdict.rule_ids
    assert "change-freeze" not in verdict.rule_ids


# ---------------------------------------------------------------- names (a known gap)


@pytest.mark.xfail(
    strict=True,
    reason="names are plain strings, compared exactly: a look-alike of a frozen service is "
    "another name (docs/packs.md, identifiers)",
)
def test_a_look_alike_of_a_frozen_service_does_not_slip_past_the_freeze():
    case = fixture("payments-patch-during-freeze")
    case["action"]["target"] = "payments-api "
    case["action"]["blast_radius"]["services"] = ["payments-api "]
    verdict = decide("native", case)
    assert RANK[verdict.decision] >= RANK["require_approval"]


def test_a_static_context_attests_firing_alerts_to_the_gate() -> None:
    from datetime import UTC, datetime

    from aigre_policy.gate import StaticContext

    alert = {"id": "ALERT-1", "service": "checkout"}
    now = datetime(2025, 3, 10, tzinfo=UTC)
    assert StaticContext(alerts_firing=(alert,))({}, now)["alerts_firing"] == [alert]
    assert "alerts_firing" not in StaticContext()({}, now)  # schemas without the field
