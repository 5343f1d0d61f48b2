"""Keyed envelope values (``lookup``): the solver's if-then-else chain is exact, overrides
replace the table and are type-checked, and every lookup has a value."""

from __future__ import annotations

import pytest
from conftest import write_pack

from aigre_policy import load_pack
from aigre_policy.diagnostics import CompileError

POLICY = """
envelope cost {
  max_action_usd: { default: 250, by_environment: { staging: 1000, production: 100.5 } }
}

rule costly {
  deny when action.cost.estimated_usd > lookup(cost.max_action_usd, action.environment)
}

invariant "production spends at most 100.5 USD" {
  when action.environment == "production" and action.cost.estimated_usd > 100.5
  expect deny
}

invariant "staging spends at most 500 USD" {
  when action.environment == "staging" and action.cost.estimated_usd > 500
  expect deny
}

invariant "elsewhere at most 250 USD" {
  when action.environment != "production" and action.environment != "staging"
    and action.cost.estimated_usd > 250
  expect deny
}

invariant "elsewhere at most 200 USD" {
  when action.environment == "development" and action.cost.estimated_usd > 200
  expect deny
}
"""


def test_the_solver_reads_a_keyed_value_exactly(tmp_path) -> None:
    pytest.importorskip("z3")
    from aigre_policy.solver.prove import prove_pack

    pack = load_pack(write_pack(tmp_path / "keyed", POLICY))
    results = {r.invariant.name: r for r in prove_pack(pack.checked, pack, timeout_s=60).results}
    assert results["production spends at most 100.5 USD"].status == "proved"
    assert results["elsewhere at most 250 USD"].status == "proved"
    staging = results["staging spends at most 500 USD"]
    assert staging.status == "refuted" and staging.decision == "allow"
    found = staging.counterexample
    assert found["action"]["environment"] == "staging"
    assert 500 < found["action"]["cost"]["estimated_usd"] <= 1000
    development = results["elsewhere at most 200 USD"]
    assert development.status == "refuted"
    assert 200 < development.counterexample["action"]["cost"]["estimated_usd"] <= 250
    for result in (staging, development):  # the counterexamples reproduce natively
        example = result.counterexample
        verdict = pack.evaluate(example["action"], example.get("context"), example.get("usage"))
        assert verdict.decision == "allow"


def test_an_override_replaces_the_table_and_keeps_its_type(tmp_path) -> None:
    root = write_pack(tmp_path / "keyed", POLICY)
    table = {"default": 10, "by_environment": {"production": 20.5}}
    pack = load_pack(root, envelopes={"cost": {"max_action_usd": table}})
    assert pack.envelopes["cost"]["max_action_usd"] == table
    for bad, words in [
        ({"default": 10}, "give {default: VALUE, by_environment"),
        ({"default": 10, "by_team": {"ml": 1}}, "give {default: VALUE, by_environment"),
        ({"default": "ten", "by_environment": {}}, "`default` is given 'ten'"),
        ({"default": 10, "by_environment": {"prod": 1}}, "the key 'prod' is never looked up"),
        (250, "give {default: VALUE"),
    ]:
        with pytest.raises(CompileError) as caught:
            load_pack(root, envelopes={"cost": {"max_action_usd": bad}})
        assert "E504" in str(caught.value) and words in str(caught.value), str(caught.value)


def test_a_key_the_input_cannot_name_is_still_answered(tmp_path) -> None:
    """Keys are matched as whole strings: a prefix, a case change or an empty key reads
    the default, never another entry and never nothing."""
    policy = """
envelope owners { team: { default: "platform", by_service: { checkout: "payments" } } }
rule r { warn when true because "{lookup(owners.team, action.target)}" }
"""
    for engine in ("native", "interpreter"):
        pack = load_pack(write_pack(tmp_path / engine, policy), engine=engine)
        for target, team in [
            ("checkout", "payments"),
            ("Checkout", "platform"),
            ("check", "platform"),
        ]:
            action = {
                "id": "a", "kind": "restart", "target": target, "environment": "staging",
                "actor": {"kind": "human", "id": "d", "trust": 4}, "change": {"type": "config"},
                "reversible": True, "blast_radius": {"users_share": 0},
                "cost": {"estimated_usd": 0}, "requested_at": "2025-03-11T14:02:10Z",
            }  # fmt: skip
            verdict = pack.evaluate(action, {"now": "2025-03-11T14:02:40Z"}, {})
            assert [w["message"] for w in verdict.warnings] == [team], (engine, target)


def test_a_bright_line_test_replaces_a_keyed_value_with_its_own_table(tmp_path) -> None:
    from aigre_policy.cli.main import main

    policy = (
        POLICY
        + """
test "a test's own table" {
  action {
    id: "a", kind: "scale", target: "checkout", environment: "staging",
    actor: { kind: "human", id: "d", trust: 4 }, change: { type: "infra" }, reversible: true,
    blast_radius: { users_share: 0 }, cost: { estimated_usd: 60 },
    requested_at: "2025-03-11T14:02:10Z"
  }
  context { now: "2025-03-11T14:02:40Z" }
  with cost.max_action_usd = { default: 1000, by_environment: { staging: 50 } }
  expect deny by costly
}
"""
    )
    assert main(["test", str(write_pack(tmp_path / "ok", policy)), "--no-invariants"]) == 0
    wrong = policy.replace("by_environment: { staging: 50 }", "by_team: { ml: 50 }")
    with pytest.raises(CompileError) as caught:
        load_pack(write_pack(tmp_path / "wrong", wrong))
    assert "E201" in str(caught.value) and "given a integer by team" in str(caught.value)
