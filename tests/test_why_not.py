"""``eval --why-not`` and ``solver.whynot.counterfactual``: the smallest change to a proposal
that gives a decision, attested fields held, checked by evaluating it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("z3")

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.solver.whynot import ATTESTED, counterfactual, fewest

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = ROOT / "fixtures" / "actions"


@pytest.fixture(scope="module")
def baseline():
    return load_pack(BASELINE)


def case(name: str) -> dict:
    return yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))


def held(document: dict) -> list:
    out = []
    for prefix in ATTESTED:
        value = document
        for step in prefix:
            value = value.get(step) if isinstance(value, dict) else None
        out.append(value)
    return out


@pytest.mark.parametrize("name", ["bot-scale-past-cost-cap.yaml", "admin-role-grant.yaml"])
def test_the_change_found_gives_the_decision_and_keeps_what_is_attested(baseline, name):
    given = case(name)
    before = baseline.evaluate(given["action"], given.get("context"), given.get("usage"))
    assert before.decision != "allow"
    answer = counterfactual(baseline, given["action"], given.get("context"), given.get("usage"))
    assert answer.status == "found" and answer.changes
    after = baseline.evaluate(
        answer.input["action"], answer.input["context"], answer.input["usage"]
    )
    assert after.decision == "allow" and not after.fail_closed
    original = {"context": given.get("context") or {}, "usage": given.get("usage") or {}}
    assert held(answer.input) == held({**original, "action": given["action"]})
    assert all(change.path.startswith("action.") for change in answer.changes)


def test_a_threshold_moves_to_the_nearest_value_that_passes(baseline):
    given = case("bot-scale-past-cost-cap.yaml")
    answer = counterfactual(baseline, given["action"], given.get("context"), given.get("usage"))
    (change,) = answer.changes
    cap = baseline.envelopes["cost"]["max_action_usd"]
    assert change.path == "action.cost.estimated_usd" and change.new == cap


def test_no_change_to_the_proposal_lifts_a_self_approval(baseline):
    given = case("agent-approved-by-its-principal.yaml")
    answer = counterfactual(
        baseline, given["action"], given.get("context"), given.get("usage"), "allow"
    )
    assert answer.decision == "deny"
    assert answer.status == "impossible" and "context.approvals" in answer.reason


def test_eval_why_not_prints_the_change(capsys):
    fixture = str(FIXTURES / "bot-scale-past-cost-cap.yaml")
    code = main(["eval", str(BASELINE), "--action", fixture, "--why-not", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 4 and out["verdict"]["decision"] == "require_approval"
    assert out["why_not"]["status"] == "found"
    assert [c["path"] for c in out["why_not"]["changes"]] == ["action.cost.estimated_usd"]
    assert main(["eval", str(BASELINE), "--action", fixture, "--why-not", "deny"]) == 4
    text = capsys.readouterr().out
    assert "why not deny? change" in text and "checked: the pack then decides deny" in text


def test_changes_that_only_make_sense_together_go_back_together():
    proposal = {"action": {"cost": 310, "why": {"signal": "alert", "ref": "A-1"}}}
    found = {"action": {"cost": 250, "why": {"signal": "incident", "ref": None}}}

    def reaches(candidate: dict) -> bool:  # the cost decides; a half-put-back reason is invalid
        why = candidate["action"]["why"]
        return candidate["action"]["cost"] <= 250 and (why["signal"] == "alert") == (
            why["ref"] is not None
        )

    assert fewest(found, proposal, reaches) == {
        "action": {"cost": 250, "why": {"signal": "alert", "ref": "A-1"}}
    }


def test_items_the_solver_added_to_a_list_are_dropped_and_the_proposals_own_kept():
    proposal = {"action": {"services": ["api"]}, "context": {}}
    found = {
        "action": {"services": ["api", "x", "y"]},
        "context": {"freezes": [{"services": ["a", "b", "y"]}, {"services": []}]},
    }

    def reaches(candidate: dict) -> bool:  # a freeze on `y` that the action reaches
        freezes = candidate["context"].get("freezes") or []
        frozen = {s for f in freezes for s in f["services"]}
        return "y" in frozen and "y" in candidate["action"]["services"]

    assert fewest(found, proposal, reaches) == {
        "action": {"services": ["api", "y"]},
        "context": {"freezes": [{"services": ["y"]}]},
    }


def test_two_changes_that_only_work_together_go_back_together():
    proposal = {"action": {"cost": 310, "ref": "A-1"}, "context": {"alerts": [{"id": "A-1"}]}}
    found = {"action": {"cost": 250, "ref": "x"}, "context": {"alerts": [{"id": "x"}]}}

    def reaches(candidate: dict) -> bool:  # the cited alert must be firing
        firing = {a["id"] for a in candidate["context"]["alerts"]}
        return candidate["action"]["cost"] <= 250 and candidate["action"]["ref"] in firing

    assert fewest(found, proposal, reaches) == {
        "action": {"cost": 250, "ref": "A-1"},
        "context": {"alerts": [{"id": "A-1"}]},
    }


def test_eval_why_not_names_rule_locations_as_eval_does(capsys, monkeypatch):
    """One convention for paths: from the current directory, with or without --why-not."""
    monkeypatch.chdir(BASELINE.parent.parent)
    pack = str(BASELINE.relative_to(BASELINE.parent.parent))
    fixture = str(FIXTURES / "bot-scale-past-cost-cap.yaml")
    main(["--no-color", "eval", pack, "--action", fixture])
    plain = capsys.readouterr().out
    main(["--no-color", "eval", pack, "--action", fixture, "--why-not", "deny"])
    asked = capsys.readouterr().out
    location = f"{pack}/policies/"
    assert location in plain
    assert asked.count(location) == plain.count(location) > 0
