"""Mutation testing: planted faults in the compiled rules, and whether the tests catch them."""

from __future__ import annotations

import json

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.testing.cases import load_cases
from aigre_policy.testing.mutation import MutantEvaluator, mutants, run_mutants
from aigre_policy.testing.runner import PackEvaluator, run_case

CAP = """
envelope cost { max_action_usd: 250 }

rule costly {
  require_approval by ["finops"] when
    action.actor.kind != "human" and action.cost.estimated_usd > cost.max_action_usd
}
"""


def _test(name: str, usd: float, decision: str, kind: str = "automation") -> str:
    return f"""
- name: {name}
  action:
    id: act-1
    kind: scale
    target: checkout
    environment: production
    actor: {{kind: {kind}, id: bot, trust: 3}}
    change: {{type: infra}}
    reversible: true
    blast_radius: {{users_share: 0.1}}
    cost: {{estimated_usd: {usd}}}
    requested_at: '2025-03-11T14:02:10Z'
  context: {{now: '2025-03-11T14:02:40Z'}}
  expect: {{decision: {decision}}}
"""


PINNED = (
    "tests:" + _test("on the cap", 250, "allow") + _test("just past it", 251, "require_approval")
)
LOOSE = "tests:" + _test("cheap", 10, "allow") + _test("dear", 5000, "require_approval")
PEOPLE = "tests:" + _test("a person past it", 5000, "allow", kind="human")


def _report(new_pack, *tests: str):
    files = {f"tests/t{i}.yaml": text for i, text in enumerate(tests)}
    pack = load_pack(new_pack(CAP, files=files))
    cases, diagnostics = load_cases(pack)
    assert diagnostics == []
    return run_mutants(pack, cases)


def _changes(report, operator: str | None = None, survived: bool | None = None) -> set[str]:
    return {
        r.mutant.change
        for r in report.results
        if (operator is None or r.mutant.operator == operator)
        and (survived is None or r.killed != survived)
    }


def test_a_shifted_threshold_is_caught_by_tests_that_pin_the_limit(new_pack):
    report = _report(new_pack, PINNED, PEOPLE)
    shifts = [r for r in report.results if r.mutant.operator == "shift"]
    assert {r.mutant.change for r in shifts} == {
        "`cost.max_action_usd` shifted up to 251 in "
        "`action.cost.estimated_usd > cost.max_action_usd`",
        "`cost.max_action_usd` shifted down to 249 in "
        "`action.cost.estimated_usd > cost.max_action_usd`",
    }
    assert all(r.killed for r in shifts)
    assert report.score == 1.0 and report.survivors == []


def test_a_shifted_threshold_survives_tests_far_from_the_limit_and_says_where(new_pack):
    report = _report(new_pack, LOOSE, PEOPLE)
    survivors = [r for r in report.survivors if r.mutant.operator == "shift"]
    assert len(survivors) == 2
    location = survivors[0].mutant.location
    assert location.endswith("policies/main.aigre:5:66")  # the envelope value in the rule
    assert ">` to `>=`" in " ".join(_changes(report, "flip", survived=True))
    assert report.score < 1.0


def test_every_kind_of_mutant_is_made(new_pack):
    pack = load_pack(new_pack(CAP))
    made = {(m.operator, m.change) for m in mutants(pack)}
    operators = {operator for operator, _ in made}
    assert operators == {"flip", "shift", "drop", "negate", "weaken"}
    assert ("weaken", "verdict `require_approval` to `escalate`") in made
    assert ("drop", 'dropped the conjunct `action.actor.kind != "human"`') in made
    assert ("flip", '`!=` to `==` in `action.actor.kind != "human"`') in made
    assert ("negate", "negated the whole condition") in made


def test_a_mutant_dies_at_the_first_failing_test(new_pack):
    report = _report(new_pack, PINNED, PEOPLE)
    weaken = next(r for r in report.results if r.mutant.operator == "weaken")
    assert weaken.killed_by == "just past it"


GUARDED = """
rule untested-rollback {
  warn when has action.rollback and not action.rollback.tested
}

rule public-personal-data {
  deny when has action.data and (action.data.personal_data ?? false)
}
"""


def test_guards_and_equivalent_drops_are_left_alone(new_pack):
    pack = load_pack(new_pack(GUARDED))
    changes = {m.change for m in mutants(pack)}
    # dropping or negating `has` would read an absent field; dropping the second `has`
    # changes nothing, since `?? false` is false without the data
    assert not any("`has action.rollback`" in c for c in changes)
    assert not any("`has action.data`" in c for c in changes)
    assert "dropped the conjunct `not action.rollback.tested`" in changes
    assert "verdict `deny` to `require_approval`" in changes


def test_an_unchanged_rule_through_the_mutant_path_gives_the_packs_verdicts(
    new_pack, make_action, valid_context
):
    pack = load_pack(new_pack(CAP))
    base = PackEvaluator(pack)
    evaluator = MutantEvaluator(base, pack, pack.program.rules[0])
    for usd in (0, 250, 251, 10_000):
        action = make_action(
            actor={"kind": "llm", "id": "a", "trust": 3}, cost={"estimated_usd": usd}
        )
        ours = evaluator(action, valid_context, {}, {})
        theirs = pack.evaluate(action, valid_context, {})
        assert (ours.decision, ours.rule_ids) == (theirs.decision, theirs.rule_ids)
        assert ours.to_dict()["fired"] == theirs.to_dict()["fired"]


def test_mutants_see_a_tests_envelope_overrides(new_pack):
    overridden = PINNED.replace(
        "- name: on the cap", "- name: on the cap\n  with: {cost: {max_action_usd: 250}}"
    )
    report = _report(new_pack, overridden, PEOPLE)
    assert report.score == 1.0


def test_the_default_pack_reaches_a_mutation_score_of_90_percent():
    pack = load_pack("policy_packs/aigre-baseline")
    cases, diagnostics = load_cases(pack)
    assert diagnostics == []
    assert any("mutation-" in case.location.file for case in cases)
    assert all(run_case(case, PackEvaluator(pack)).passed for case in cases)
    report = run_mutants(pack, cases)
    assert len(report.results) > 400
    assert report.score >= 0.9, [r.mutant.change for r in report.survivors]


def test_cli_mutate_reports_the_score_and_each_survivor(new_pack, capsys, plain_console):
    root = new_pack(CAP, files={"tests/loose.yaml": LOOSE})
    code = main(["test", str(root), "--mutate", "--no-invariants"])
    out = capsys.readouterr().out
    assert code == 0  # no minimum asked for
    assert "mutation score" in out
    assert "survived" in out and "main.aigre:5:66" in out
    assert "shifted up to 251" in out


def test_cli_min_score_fails_below_it(new_pack, capsys, plain_console):
    root = new_pack(CAP, files={"tests/loose.yaml": LOOSE})
    code = main(["test", str(root), "--mutate", "--min-score", "0.99", "--format", "json"])
    assert code == 1
    document = json.loads(capsys.readouterr().out)
    text = json.dumps(document)
    assert '"survivors"' in text and '"score"' in text
