"""Invariants: a search over the input schema for an input that breaks each invariant."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
import yaml
from conftest import write_pack
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.testing.cases import load_cases
from aigre_policy.testing.invariants import check_invariant, check_invariants, holds
from aigre_policy.testing.proof import counterexample_yaml, nearest_allowed
from aigre_policy.testing.runner import run_suite
from aigre_policy.testing.strategies import collect_hints, documents, step

BASELINE = "policy_packs/aigre-baseline"

# The rule holds costs past 500, the invariant promises a deny past 300: 301..500 breaks it.
PLANTED = """
envelope cost { max_action_usd: 500 }

rule costly {
  deny when action.cost.estimated_usd > cost.max_action_usd
}

invariant "nothing over 300 USD runs" {
  when action.cost.estimated_usd > 300
  expect deny
}

invariant "agents are never escalated" {
  when action.actor.kind != "human"
  expect not escalate
}

invariant "nothing costs less than nothing" {
  when action.cost.estimated_usd < 0
  expect allow
}
"""


@pytest.fixture(scope="module")
def baseline():
    return load_pack(BASELINE)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return load_pack(write_pack(tmp_path_factory.mktemp("planted"), PLANTED))


@pytest.fixture(scope="module")
def breach(planted):
    return check_invariant(planted, planted.program.invariants[0], seed=0, examples=30)


def test_every_invariant_of_the_default_pack_holds(baseline):
    results = check_invariants(baseline, seed=0, examples=25)
    assert len(results) == len(baseline.program.invariants) >= 9
    assert [r.status for r in results if r.status == "broken"] == []
    assert sum(r.applicable for r in results) > 0


def test_invariants_reach_the_ir_with_their_condition_and_expectation(baseline):
    names = {i.name: i for i in baseline.program.invariants}
    remit = names["an LLM never runs a kind outside its remit in production"]
    assert (remit.relation, remit.decision) == ("is", "deny")
    assert remit.condition is not None
    assert remit.span.file.endswith("autonomy.aigre")
    freeze = next(i for i in baseline.program.invariants if "freeze" in i.name)
    assert (freeze.relation, freeze.decision) == ("at least", "require_approval")


def test_a_planted_breach_yields_a_counterexample_that_really_breaks_it(planted, breach):
    result = breach
    assert result.status == "broken"
    printed = counterexample_yaml(result)
    assert printed is not None and printed.startswith("# breaks invariant")
    test = yaml.safe_load(printed)["tests"][0]
    assert test["expect"] == {"decision": "deny"}
    verdict = planted.evaluate(test["action"], test["context"], test["usage"])
    assert not verdict.fail_closed
    assert test["action"]["cost"]["estimated_usd"] == 301  # shrunk to just past the line
    assert verdict.decision == "allow" == result.decision


def test_the_printed_counterexample_runs_as_a_failing_regression_test(breach, new_pack):
    root = new_pack(PLANTED, files={"tests/regressions.yaml": counterexample_yaml(breach)})
    pack = load_pack(root)
    cases, diagnostics = load_cases(pack)
    assert diagnostics == []
    suite = run_suite(pack, cases)
    [outcome] = suite.results
    assert outcome.status == "failed"
    assert outcome.mismatches[0].what == "decision"


def test_the_same_seed_gives_the_same_result(planted, breach):
    again = check_invariant(planted, planted.program.invariants[0], seed=0, examples=30)
    assert again == breach
    assert again.counterexample == breach.counterexample


def test_an_invariant_no_input_can_meet_is_vacuous_not_held(planted):
    result = check_invariant(planted, planted.program.invariants[2], seed=0, examples=30)
    assert (result.status, result.applicable) == ("vacuous", 0)


def test_an_invariant_that_holds_reports_how_many_inputs_met_it(planted):
    result = check_invariant(planted, planted.program.invariants[1], seed=0, examples=50)
    assert result.status == "held"
    assert 0 < result.applicable <= result.examples == 50


@pytest.mark.parametrize(
    ("relation", "wanted", "decision", "ok"),
    [
        ("is", "deny", "deny", True),
        ("is", "deny", "require_approval", False),
        ("not", "allow", "escalate", True),
        ("not", "allow", "allow", False),
        ("at least", "require_approval", "deny", True),
        ("at least", "require_approval", "escalate", False),
        ("at most", "escalate", "allow", True),
        ("at most", "escalate", "deny", False),
    ],
)
def test_relations_follow_the_lattice(relation, wanted, decision, ok, planted):
    invariant = planted.program.invariants[0].__class__("x", None, relation, wanted)
    assert holds(invariant, decision) is ok


def test_a_regression_test_expects_the_nearest_allowed_decision():
    assert nearest_allowed("is", "deny", "allow") == "deny"
    assert nearest_allowed("not", "allow", "allow") == "escalate"
    assert nearest_allowed("at least", "require_approval", "allow") == "require_approval"
    assert nearest_allowed("at most", "escalate", "deny") == "escalate"


def test_hints_carry_thresholds_and_the_values_just_past_them(baseline):
    hints = collect_hints(baseline.program, baseline.envelopes)
    assert {249, 250, 251, 0.24, 0.25, 0.26} <= set(hints.numbers)
    assert {900, 901, 899, 86400, 86401} <= set(hints.offsets)  # 15m and 24h, in seconds
    assert "production" in hints.by_path[("action", "environment")]
    assert ("context", "approvals", "[]", "by") in hints.linked
    assert step(0.25) == pytest.approx(0.01) and step(40) == 1


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_generated_documents_are_valid_inputs_of_the_pack(data):
    pack = _baseline()
    doc = data.draw(documents(pack.input_schema, collect_hints(pack.program, pack.envelopes)))
    assert pack.validator.is_valid(doc), doc


_CACHE: dict[str, object] = {}


def _baseline():
    if "pack" not in _CACHE:
        _CACHE["pack"] = load_pack(BASELINE)
    return _CACHE["pack"]


def test_cli_reports_a_breach_with_its_counterexample_and_exits_1(new_pack, capsys, plain_console):
    root = new_pack(PLANTED)
    code = main(["test", str(root), "--no-prove", "--seed", "3", "--examples", "30"])
    out = capsys.readouterr().out
    assert code == 1
    assert "BROKEN nothing over 300 USD runs" in out
    assert "expected deny, got allow" in out
    assert "name: 'invariant: nothing over 300 USD runs'" in out
    assert "vacuous nothing costs less than nothing" in out
    assert "searched 30 inputs, none met its condition; raise --examples" in out


def test_cli_proves_by_default_and_says_per_invariant_how(new_pack, capsys, plain_console):
    """With z3 installed, `test` puts each invariant to the solver first: the breach is
    refuted with a counterexample, the others proved (the condition no input meets among
    them), and each line says which it was."""
    pytest.importorskip("z3")
    root = new_pack(PLANTED)
    code = main(["test", str(root)])
    out = capsys.readouterr().out
    assert code == 1
    assert "BROKEN nothing over 300 USD runs" in out and "refuted by the solver" in out
    assert "name: 'invariant: nothing over 300 USD runs'" in out
    assert "proved agents are never escalated" in out
    assert "proved nothing costs less than nothing" in out
    assert "(3 settled by the solver)" in out
    assert "searched" not in out.split("invariants:")[0]


def test_without_z3_test_searches_and_says_why(new_pack, capsys, plain_console, monkeypatch):
    monkeypatch.setitem(sys.modules, "aigre_policy.solver.prove", None)  # the import fails
    root = new_pack(PLANTED)
    assert main(["test", str(root), "--examples", "30"]) == 1
    out = capsys.readouterr().out
    assert "searched 30 inputs" in out and "z3 is not installed" in out
    assert "BROKEN nothing over 300 USD runs" in out


def test_an_invariant_the_solver_cannot_settle_is_searched_and_says_so(
    new_pack, capsys, plain_console, monkeypatch
):
    pytest.importorskip("z3")
    from aigre_policy.solver import prove

    real = prove.prove_pack

    def unsettled(checked, pack, **kwargs):
        report = real(checked, pack, **kwargs)
        report.results = [
            dataclasses.replace(r, status="unknown", reason="timeout") for r in report.results
        ]
        return report

    monkeypatch.setattr(prove, "prove_pack", unsettled)
    root = new_pack(PLANTED)
    assert main(["test", str(root), "--examples", "30", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    invariants = report["packs"][0]["invariants"]["invariants"]
    assert {i["method"] for i in invariants} == {"search"}
    assert all("the solver did not settle it: timeout" in i["fallback"] for i in invariants)


def test_cli_skips_invariants_on_request(new_pack, capsys, plain_console):
    root = new_pack(PLANTED)
    assert main(["test", str(root), "--no-invariants"]) == 0
    assert "invariants:" not in capsys.readouterr().out


def test_cli_json_carries_the_invariant_results(new_pack, capsys, plain_console):
    root = new_pack(PLANTED)
    code = main(
        ["test", str(root), "--no-prove", "--seed", "3", "--examples", "30", "--format", "json"]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    text = json.dumps(document)
    assert '"status": "broken"' in text and '"counterexample"' in text


def test_cli_rejects_a_non_positive_example_count(new_pack, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["test", str(new_pack(PLANTED)), "--examples", "0"])
    assert exit_info.value.code == 2
