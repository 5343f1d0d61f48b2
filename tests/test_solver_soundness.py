"""What the solver claims is checked natively: packs it calls equivalent agree on random
inputs, mutants it calls equivalent too, and every witness it gives reproduces (else
``SoundnessError``, raised by the diff itself)."""

from __future__ import annotations

import pytest
from conftest import write_pack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solver_inputs import disagreements

pytest.importorskip("z3")

from aigre_policy import load_pack
from aigre_policy.solver.diff import diff_packs
from aigre_policy.testing.mutation import MutantEvaluator, mutants
from aigre_policy.testing.runner import PackEvaluator

SAMPLES = 2000

ATOMS = [
    "action.cost.estimated_usd > 250",
    "action.cost.estimated_usd >= 250.5",
    "usage.spent + action.cost.estimated_usd > 5000",
    'action.environment == "production"',
    'action.kind in ["deploy", "rollback"]',
    "action.reversible",
    "action.change.lines > 10",
    "(context.error_budget_remaining ?? 1) < 0.1",
    "has action.rollback and action.rollback.tested",
    "len(action.blast_radius.services ?? []) > 2",
    '"api" in (action.blast_radius.services ?? [])',
    "context.now - action.requested_at > 15m",
    "hour(context.now) >= 16",
    'weekday(context.now) == "friday"',
    'starts_with(action.target, "pay")',
    'contains(lower(action.target), "admin")',
    'any(a in context.approvals ?? []: a.group == "sre" and a.by != (context.actor.id ?? ""))',
    "action.cost.estimated_usd / (action.change.lines + 1) > 2",
]
VERDICTS = ["deny", 'require_approval by ["sre"]', "escalate", "warn", "permit"]

conditions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda c: f"not ({c})"),
    ),
    max_leaves=4,
)


def rewritten(condition: str, how: int) -> str:
    """The same condition written another way (equivalent, failures included), or changed."""
    if how == 0:
        return f"not (not ({condition}))"
    if how == 1:
        return (
            condition.replace("> 250", ">= 251")
            if "estimated_usd > 250" in condition
            else condition
        )
    if how == 2:
        return condition.replace(" >= 16", " > 15")
    return condition.replace("> 10", "> 11")  # changed: lines of 11 decide otherwise


def pack_text(rules: list[tuple[str, str]], mapping=lambda c: c) -> str:
    body = "usage spent = sum(action.cost.estimated_usd) over calendar_month\n"
    for i, (verdict, condition) in enumerate(rules):
        body += f"rule r{i} {{ {verdict} when {mapping(condition)} }}\n"
    return body


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rules=st.lists(st.tuples(st.sampled_from(VERDICTS), conditions), min_size=1, max_size=3),
    how=st.integers(0, 3),
    default=st.sampled_from(["allow", "deny"]),
    closed=st.sampled_from(["deny", "require_approval"]),
)
def test_packs_the_solver_calls_equivalent_agree_on_random_inputs(
    tmp_path_factory, rules, how, default, closed
):
    manifest = {"default": default, "fail_closed": closed}
    base = tmp_path_factory.mktemp("pair")
    old = load_pack(write_pack(base / "old", pack_text(rules), manifest=manifest))
    new_text = pack_text(rules, lambda c: rewritten(c, how))
    new = load_pack(write_pack(base / "new", new_text, manifest=manifest))
    report = diff_packs(old.checked, old, new.checked, new, timeout_s=20)
    if report.status == "equivalent":
        assert disagreements(old, new, SAMPLES) == []
    for change in report.changes:  # each witness reproduced inside diff_packs; check again
        assert change.witness and change.old != change.new


MUTATED = """
usage spent = sum(action.cost.estimated_usd) over calendar_month
envelope cost { cap: 250, budget: 5000 }
rule costly { require_approval by ["finops"] when action.cost.estimated_usd > cost.cap
              and not any(a in context.approvals ?? []: a.group == "finops") }
rule budget { deny when usage.spent + action.cost.estimated_usd > cost.budget }
rule friday { escalate when action.environment == "production" and hour(context.now) >= 16 }
rule large { deny when action.change.lines > 10 and action.change.lines > 5 }
rule shadowed { escalate when action.change.lines > 10 }
"""


def test_mutants_the_solver_calls_equivalent_agree_on_random_inputs(tmp_path):
    pack = load_pack(write_pack(tmp_path / "guard", MUTATED))
    base = PackEvaluator(pack)
    verdicts = {"equivalent": 0, "changed": 0}
    for mutant in mutants(pack):
        mutated = MutantEvaluator(base, pack, mutant.replacement).pack_for(None)
        report = diff_packs(pack.checked, pack, mutated.checked, mutated, timeout_s=20)
        assert report.status != "unknown", (mutant.change, report.reason)
        verdicts[report.status] += 1
        if report.status == "equivalent":
            assert disagreements(pack, mutated, SAMPLES) == [], mutant.change
    assert verdicts["changed"] > 0 and verdicts["equivalent"] > 0, verdicts
