"""The language's run-time meaning: lattice, defaults, guards, messages, time, evidence."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aigre_policy import EvaluationError, load_pack
from aigre_policy.models.verdict import VerdictDocument


def make_pack(
    root: Path,
    policy: str,
    *,
    default: str = "allow",
    fail_closed: str = "deny",
    envelopes: str = "",
) -> Path:
    (root / "policies").mkdir(parents=True, exist_ok=True)
    manifest = f"name: t\nversion: 1.0.0\ndefault: {default}\nfail_closed: {fail_closed}\n"
    (root / "pack.yaml").write_text(manifest + envelopes)
    (root / "policies" / "main.aigre").write_text(textwrap.dedent(policy))
    return root


def action(**overrides):
    base = {
        "id": "act-1",
        "kind": "rollback",
        "target": "checkout",
        "environment": "production",
        "actor": {"kind": "llm", "id": "agent-7", "trust": 3},
        "change": {"type": "code", "lines": 40},
        "reversible": True,
        "blast_radius": {"users_share": 0.2, "services": ["checkout"]},
        "cost": {"estimated_usd": 10},
        "requested_at": "2026-11-20T10:00:00Z",
    }
    base.update(overrides)
    return base


CONTEXT = {"now": "2026-11-20T10:00:00Z"}

LATTICE_POLICY = """
rule d { deny when action.kind == "scale" }
rule a { require_approval by ["sre"] when action.environment == "production" }
rule e { escalate to ["judge"] when action.change.type == "code" }
rule w { warn when action.cost.estimated_usd > 5 because "costly: {action.cost.estimated_usd}" }
"""


@pytest.mark.parametrize(
    ("overrides", "decision", "fired"),
    [
        ({"kind": "scale"}, "deny", ["d", "a", "e"]),
        ({}, "require_approval", ["a", "e"]),
        ({"environment": "staging"}, "escalate", ["e"]),
        ({"environment": "staging", "change": {"type": "config"}}, "allow", []),
    ],
)
def test_most_restrictive_fired_rule_wins(tmp_path, overrides, decision, fired):
    pack = load_pack(make_pack(tmp_path, LATTICE_POLICY))
    verdict = pack.evaluate(action(**overrides), CONTEXT)
    assert verdict.decision == decision
    assert verdict.rule_ids == fired
    assert [w["id"] for w in verdict.warnings] == ["w"]
    assert verdict.warnings[0]["message"] == "costly: 10"


def test_approvers_and_tiers_come_from_the_deciding_rules(tmp_path):
    pack = load_pack(make_pack(tmp_path, LATTICE_POLICY))
    approval = pack.evaluate(action(), CONTEXT)
    assert approval.approvers == ["sre"]
    assert approval.escalate_to == []
    escalation = pack.evaluate(action(environment="staging"), CONTEXT)
    assert escalation.escalate_to == ["judge"]
    assert escalation.approvers == []


PERMIT_POLICY = """
rule routine { permit when action.kind in ["rollback", "restart"] }
rule never-prod-restart {
  deny when action.kind == "restart" and action.environment == "production"
}
rule pricey { warn when action.cost.estimated_usd > 5 }
"""


def test_deny_default_needs_a_permit(tmp_path):
    pack = load_pack(make_pack(tmp_path, PERMIT_POLICY, default="deny"))
    granted = pack.evaluate(action(), CONTEXT)
    assert granted.decision == "allow" and not granted.default_applied
    assert granted.rule_ids == ["routine"]
    ungranted = pack.evaluate(action(kind="scale"), CONTEXT)
    assert ungranted.decision == "deny" and ungranted.default_applied
    assert ungranted.fired == [] and [w["id"] for w in ungranted.warnings] == ["pricey"]
    overruled = pack.evaluate(action(kind="restart"), CONTEXT)
    assert overruled.decision == "deny"
    assert overruled.rule_ids == ["routine", "never-prod-restart"]


def test_allow_default_is_marked_when_nothing_fires(tmp_path):
    pack = load_pack(make_pack(tmp_path, PERMIT_POLICY))
    verdict = pack.evaluate(action(kind="scale"), CONTEXT)
    assert verdict.decision == "allow" and verdict.default_applied


GUARDS = """
rule budget-burnt {
  deny when (context.error_budget_remaining ?? 1) < 0.1
  because "budget left {context.error_budget_remaining ?? 1}"
}
rule untested-rollback {
  escalate when has action.rollback and not action.rollback.tested
  because "rollback plan '{action.rollback.plan}' is untested"
}
rule no-plan {
  require_approval by ["sre"] when not has action.rollback or action.rollback.plan == ""
}
"""


def test_defaults_and_guards(tmp_path):
    pack = load_pack(make_pack(tmp_path, GUARDS))
    bare = pack.evaluate(action(), CONTEXT)
    assert bare.rule_ids == ["no-plan"]
    burnt = pack.evaluate(action(), {**CONTEXT, "error_budget_remaining": 0.05})
    assert burnt.decision == "deny"
    assert burnt.fired[0]["message"] == "budget left 0.05"
    untested = pack.evaluate(action(rollback={"plan": "helm rollback"}), CONTEXT)
    assert untested.rule_ids == ["untested-rollback"]
    assert untested.fired[0]["message"] == "rollback plan 'helm rollback' is untested"


TIME = """
envelope freeze { evening_hour: 16  max_age: 15m }
rule friday-evening {
  require_approval by ["sre"]
    when weekday(context.now) == "friday" and hour(context.now) >= freeze.evening_hour
}
rule stale { deny when context.now - action.requested_at > freeze.max_age }
rule in-freeze {
  deny when any(f in context.change_freezes ?? []:
                f.starts_at <= context.now and context.now < f.ends_at
                and (len(f.services ?? []) == 0 or action.target in f.services ?? []))
  because "frozen"
}
"""


@pytest.mark.parametrize(
    ("now", "requested", "fired"),
    [
        ("2026-11-20T15:59:59Z", "2026-11-20T15:50:00Z", []),  # a Friday, before 16:00 UTC
        ("2026-11-20T16:00:00Z", "2026-11-20T15:50:00Z", ["friday-evening"]),
        ("2026-11-20T17:59:59+02:00", "2026-11-20T15:50:00Z", []),  # 15:59:59 UTC
        ("2026-11-20T10:15:00Z", "2026-11-20T10:00:00Z", []),  # exactly 15m: not past the line
        ("2026-11-20T10:15:01Z", "2026-11-20T10:00:00Z", ["stale"]),
    ],
)
def test_time_is_input_and_read_in_utc(tmp_path, now, requested, fired):
    pack = load_pack(make_pack(tmp_path, TIME))
    verdict = pack.evaluate(action(requested_at=requested), {"now": now})
    assert [f["id"] for f in verdict.fired] == fired


def test_freeze_windows_compare_instants(tmp_path):
    pack = load_pack(make_pack(tmp_path, TIME))
    freeze = {
        "name": "black-friday",
        "starts_at": "2026-11-20T00:00:00Z",
        "ends_at": "2026-11-21T00:00:00+00:00",
        "services": ["checkout"],
    }
    inside = {"now": "2026-11-20T10:05:00Z", "change_freezes": [freeze]}
    verdict = pack.evaluate(action(requested_at="2026-11-20T10:00:00Z"), inside)
    assert verdict.rule_ids == ["in-freeze"]
    other = pack.evaluate(action(target="search", requested_at="2026-11-20T10:00:00Z"), inside)
    assert other.rule_ids == []
    after = {"now": "2026-11-21T00:00:00Z", "change_freezes": [freeze]}
    assert pack.evaluate(action(requested_at="2026-11-20T23:59:00Z"), after).rule_ids == []


EVIDENCE = """
envelope cost { max_action_usd: 25 }
rule over-cap {
  title: "Per-action cap"
  category: cost
  severity: high
  tags: ["finops"]
  deny when action.cost.estimated_usd > cost.max_action_usd and action.kind not in ["rollback"]
  because "{action.kind} costs {action.cost.estimated_usd} USD, cap {cost.max_action_usd}"
}
"""


def test_evidence_names_values_read_and_comparison_operands(tmp_path):
    pack = load_pack(make_pack(tmp_path, EVIDENCE))
    verdict = pack.evaluate(action(kind="scale", cost={"estimated_usd": 40.5}), CONTEXT)
    (fired,) = verdict.fired
    assert fired["message"] == "scale costs 40.5 USD, cap 25"
    assert fired["bindings"] == {
        "action.cost.estimated_usd": 40.5,
        "action.kind": "scale",
        "cost.max_action_usd": 25,
    }
    assert fired["comparisons"] == [
        {
            "expression": "action.cost.estimated_usd > cost.max_action_usd",
            "left": 40.5,
            "op": ">",
            "right": 25,
            "result": True,
        },
        {
            "expression": 'action.kind not in ["rollback"]',
            "left": "scale",
            "op": "not in",
            "right": ["rollback"],
            "result": True,
        },
    ]
    assert fired["location"]["line"] == 3
    assert fired["title"] == "Per-action cap" and fired["tags"] == ["finops"]
    VerdictDocument.model_validate(verdict.to_dict())


def test_envelope_overrides_change_limits_not_rules(tmp_path):
    root = make_pack(tmp_path, EVIDENCE, envelopes="envelopes:\n  cost: {max_action_usd: 50}\n")
    over = action(kind="scale", cost={"estimated_usd": 40.5})
    assert load_pack(root).evaluate(over, CONTEXT).decision == "allow"
    tight = load_pack(root, envelopes={"cost": {"max_action_usd": 40}})
    assert tight.evaluate(over, CONTEXT).decision == "deny"
    assert tight.digest != load_pack(root).digest


def test_invalid_input_fails_closed_with_every_schema_error(tmp_path):
    pack = load_pack(make_pack(tmp_path, EVIDENCE, fail_closed="require_approval"))
    bad = action(environment="prodution")
    del bad["cost"]
    verdict = pack.evaluate(bad, {"now": "yesterday"})
    assert verdict.decision == "require_approval" and verdict.fail_closed
    paths = sorted(e["path"] for e in verdict.errors)
    assert paths == ["action", "action.environment", "context.now"]
    with pytest.raises(EvaluationError) as raised:
        pack.evaluate(bad, CONTEXT, strict=True)
    assert raised.value.verdict.fail_closed


def test_engine_fault_fails_closed(tmp_path):
    policy = "rule r { deny when action.cost.estimated_usd / action.change.lines > 1 }"
    pack = load_pack(make_pack(tmp_path, policy, fail_closed="require_approval"))
    fine = pack.evaluate(action(change={"type": "code", "lines": 100}), CONTEXT)
    assert fine.decision == "allow"
    broken = pack.evaluate(action(change={"type": "code", "lines": 0}), CONTEXT)
    assert broken.decision == "require_approval" and broken.fail_closed
    assert broken.errors[0]["kind"] == "engine"
    assert "division by zero" in broken.errors[0]["message"]


def test_pydantic_models_are_accepted(tmp_path):
    from aigre_policy import Context, ProposedAction

    pack = load_pack(make_pack(tmp_path, EVIDENCE))
    model = ProposedAction.model_validate(action(kind="scale", cost={"estimated_usd": 30}))
    verdict = pack.evaluate(model, Context.model_validate(CONTEXT))
    assert verdict.decision == "deny"


def test_replays_give_the_same_answer(tmp_path):
    pack = load_pack(make_pack(tmp_path, LATTICE_POLICY))
    first = pack.evaluate(action(), CONTEXT).to_dict()
    second = pack.evaluate(action(), CONTEXT).to_dict()
    for volatile in ("decision_id", "elapsed_us"):
        first.pop(volatile)
        second.pop(volatile)
    assert first == second


def test_arithmetic_and_functions(tmp_path):
    policy = """
    rule r {
      deny when len(action.blast_radius.services ?? []) * 2 + 7 % 4 == 5
            and starts_with(lower(action.target), "check") and ends_with(action.target, "out")
            and contains(upper(action.target), "KOU") and sum([1, 2.5]) == 3.5
            and date(action.requested_at) == "2026-11-20" and minute(action.requested_at) == 0
            and -7 % 3 == -1 and 7 / 2 == 3.5
      because "{len(action.blast_radius.services ?? [])} services, {[1, 2]}, {true}, {1.0 * 3}"
    }
    """
    pack = load_pack(make_pack(tmp_path, policy))
    verdict = pack.evaluate(action(), CONTEXT)
    assert verdict.rule_ids == ["r"]
    assert verdict.fired[0]["message"] == "1 services, 1, 2, true, 3"


def test_names_starting_with_any_or_all_are_names(tmp_path):
    policy = """
    envelope allowlist { kinds: ["rollback"] }
    envelope anything { n: 1 }
    rule r { deny when action.kind not in allowlist.kinds and anything.n == 1 }
    """
    pack = load_pack(make_pack(tmp_path, policy))
    assert pack.evaluate(action(kind="scale"), CONTEXT).rule_ids == ["r"]
    assert pack.evaluate(action(), CONTEXT).rule_ids == []


def test_has_on_a_schema_defaulted_field_reads_the_default(tmp_path):
    policy = "rule big { deny when has action.change.lines and action.change.lines > 300 }"
    pack = load_pack(make_pack(tmp_path, policy))
    verdict = pack.evaluate(action(change={"type": "code"}), CONTEXT)
    assert verdict.decision == "allow" and not verdict.fail_closed
    assert pack.evaluate(action(change={"type": "code", "lines": 301}), CONTEXT).rule_ids == ["big"]


def test_verdict_records_do_not_share_containers(tmp_path):
    pack = load_pack(make_pack(tmp_path, EVIDENCE))
    first = pack.evaluate(action(kind="scale", cost={"estimated_usd": 40}), CONTEXT)
    first.fired[0]["tags"].append("edited")
    second = pack.evaluate(action(kind="scale", cost={"estimated_usd": 40}), CONTEXT)
    assert second.fired[0]["tags"] == ["finops"]


# ------------------------------------------------------------------ fail-closed routing, metadata

ROUTED_POLICY = """
rule costly {
  description: "Spend past the per-action limit"
  owner: "finops"
  require_approval by ["finops", "sre"] when action.cost.estimated_usd > 5
  because "spend {action.cost.estimated_usd}"
}
rule big { escalate to ["judge"] when action.change.lines > 1000 }
"""


def test_a_fail_closed_require_approval_names_the_packs_approvers(tmp_path):
    pack = load_pack(make_pack(tmp_path, ROUTED_POLICY, fail_closed="require_approval"))
    verdict = pack.evaluate({"kind": "nonsense"}, CONTEXT)
    assert verdict.fail_closed and verdict.decision == "require_approval"
    assert verdict.approvers == ["finops", "sre"]
    VerdictDocument.model_validate(verdict.to_dict())


def test_pack_yaml_names_the_fail_closed_approvers(tmp_path):
    extra = "fail_closed_approvers: [sre-oncall]\n"
    root = make_pack(tmp_path, ROUTED_POLICY, fail_closed="require_approval", envelopes=extra)
    verdict = load_pack(root).evaluate({"kind": "nonsense"}, CONTEXT)
    assert verdict.approvers == ["sre-oncall"] and verdict.escalate_to == []


def test_fired_records_carry_metadata_and_a_pack_relative_location(tmp_path):
    pack = load_pack(make_pack(tmp_path, ROUTED_POLICY))
    record = pack.evaluate(action(), CONTEXT).fired[0]
    assert record["description"] == "Spend past the per-action limit"
    assert record["owner"] == "finops"
    assert record["location"] == {"file": "policies/main.aigre", "line": 2, "column": 6}
    costly = pack.rules[0]
    assert (costly.description, costly.owner) == ("Spend past the per-action limit", "finops")


def test_records_are_fresh_per_verdict_and_rendered_from_captured_values(tmp_path):
    pack = load_pack(make_pack(tmp_path, ROUTED_POLICY))
    given = action()
    first = pack.evaluate(given, CONTEXT)
    given["cost"]["estimated_usd"] = 1  # the caller reuses its dict
    record = first.fired[0]
    assert record["bindings"] == {"action.cost.estimated_usd": 10}
    assert record["message"] == "spend 10"
    record["tags"].append("edited")
    assert pack.evaluate(action(), CONTEXT).fired[0]["tags"] == []


def test_verdict_derives_groups_errors_and_messages_on_first_read(tmp_path):
    from aigre_policy.verdict import Verdict

    pack = load_pack(make_pack(tmp_path, ROUTED_POLICY))
    verdict = pack.evaluate(action(cost={"estimated_usd": 7.5}), CONTEXT)
    assert verdict.decision == "require_approval" and not verdict.fail_closed
    assert verdict.approvers == ["finops", "sre"] and verdict.escalate_to == []
    assert verdict.errors == [] and verdict.errors is verdict.errors  # one list, kept
    assert verdict.fired[0]["message"] == "spend 7.5"  # formatted from the captured value
    assert verdict.fired is verdict.fired and verdict.decision_id == verdict.decision_id
    # a verdict with a stated outcome and groups (fail-closed and engine verdicts)
    given = Verdict.given("deny", {}, {}, fail_closed=True, errors=[{"kind": "x"}])
    assert given.fail_closed and given.errors == [{"kind": "x"}] and given.approvers == []
    routed = Verdict.given("require_approval", {}, {}, approvers=["sre"], escalate_to=[])
    assert routed.approvers == ["sre"] and routed.fired == [] and routed.input_digest
