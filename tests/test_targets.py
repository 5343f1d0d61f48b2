"""What an engine cannot run is found once, by the check stage (aigre_policy/targets.py).

E604 (an input schema the Rego engines cannot check alike) refuses the pack on every
engine. E601 and E602 travel with the CheckedPack to the Rego backend, which refuses the
pack with them; a divisor the condition proves not zero (``x > 0 and y / x > 1``) is
no E602, so such a pack runs, and decides alike, on every engine.
"""

from __future__ import annotations

import pytest

from aigre_policy import load_pack
from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import CompileError

ENGINES = ("native", "interpreter", "rego")

GUARDED = {
    "and": "deny when action.change.lines > 0 and 80 / action.change.lines > 1",
    "or": "deny when action.change.lines == 0 or 80 / action.change.lines > 1",
    "not": "deny when not (action.change.lines <= 0) and 100 / action.change.lines > 1",
    "equal": "deny when action.change.lines == 4 and 100 / action.change.lines > 1",
    "constant": "deny when action.cost.estimated_usd / -0.5 < 1",
    "envelope": "deny when action.cost.estimated_usd / limits.per_line > 1",
    "message": 'deny when action.change.lines > 0 because "{10 / action.change.lines}"',
    "quantifier": "deny when any(s in [1, 2]: s > 0 and 10 / s > 1)",
}
# (condition, the division's left operand: where E602 points)
UNGUARDED = {
    "plain": ("deny when action.cost.estimated_usd / action.change.lines > 1", "action.cost"),
    "or-wrong-side": ("deny when action.change.lines > 0 or 1 / action.change.lines > 1", "1 /"),
    "guard-after": ("deny when 1 / action.change.lines > 1 and action.change.lines > 0", "1 /"),
    "weak-guard": ("deny when action.change.lines >= 0 and 1 / action.change.lines > 1", "1 /"),
    "fallback": (
        "deny when (context.error_budget_remaining ?? (1 / action.change.lines)) > 0",
        "1 /",
    ),
    "message": ('deny when true because "{10 / action.change.lines}"', "10 /"),
}
ENVELOPE = "envelope limits { per_line: 2 }\n"


def _pack(new_pack, condition: str):
    return new_pack(f"{ENVELOPE}rule r {{ {condition} }}\n")


@pytest.mark.parametrize("name", GUARDED)
def test_a_guarded_division_runs_and_decides_alike_on_every_engine(
    new_pack, make_action, valid_context, name
):
    root = _pack(new_pack, GUARDED[name])
    packs = {engine: load_pack(root, engine=engine) for engine in ENGINES}
    for lines in (0, 4, 40):
        action = make_action(change={"type": "code", "lines": lines})
        verdicts = {e: p.evaluate(action, valid_context) for e, p in packs.items()}
        seen = {(v.decision, v.fail_closed, tuple(v.rule_ids)) for v in verdicts.values()}
        assert len(seen) == 1, (lines, verdicts)
        assert not verdicts["native"].fail_closed


@pytest.mark.parametrize("name", UNGUARDED)
def test_a_divisor_that_may_be_zero_is_refused_by_the_rego_target_alone(new_pack, name):
    condition, operand = UNGUARDED[name]
    root = _pack(new_pack, condition)
    for engine in ("native", "interpreter"):
        assert compile_pack(root, engine=engine).ok
    with pytest.raises(CompileError) as refused:
        load_pack(root, engine="rego")
    found = [(d.code, d.span.line, d.span.column) for d in refused.value.diagnostics]
    # line 2: the envelope is line 1; "rule r { " takes 9 columns
    assert found == [("E602", 2, 10 + condition.index(operand))]


def test_an_envelope_override_of_zero_makes_its_divisor_one_that_may_be_zero(new_pack):
    root = _pack(new_pack, GUARDED["envelope"])
    load_pack(root, engine="rego")
    with pytest.raises(CompileError, match="E602"):
        load_pack(root, {"limits": {"per_line": 0}}, engine="rego")


def test_a_schema_the_rego_engines_cannot_check_is_refused_on_every_engine(new_pack):
    schema = {
        "type": "object",
        "required": ["action", "context"],
        "properties": {
            "action": {"type": "object", "properties": {"tags": {"uniqueItems": True}}},
            "context": {"type": "object"},
        },
    }
    root = new_pack(
        "rule r { deny when true }\n",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": schema},
    )
    for engine in ENGINES:
        report = compile_pack(root, engine=engine)
        assert not report.ok
        assert [d.code for d in report.diagnostics] == ["E604"], engine


def test_the_checked_pack_carries_what_the_rego_target_cannot_run(new_pack):
    root = _pack(new_pack, "deny when action.change.lines % 2 == 1")
    checked = compile_pack(root, engine=None).checked
    assert checked is not None
    assert [d.code for d in checked.target_diagnostics["rego"]] == ["E601"]
