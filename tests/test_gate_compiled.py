"""Usage expressions compiled to closures give what the reference interpreter gives.

Random IR trees (every node kind, paths that may be absent or hold the wrong type,
schema defaults, timestamps, envelopes) over random rows: the compiled function and
``interpreter.evaluate`` return the same value or raise the same exception with the
same message. Then the gate's contributions, computed with the closures, against the
ones the interpreter computes, for packs whose usage declarations use them.
"""

from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path
from typing import Any

from conftest import write_pack
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import interpreter, ir, load_pack
from aigre_policy.gate.compiled import compile_node
from aigre_policy.gate.usage import UsageCalculator

ENVELOPES = {"cost": {"limit": 100, "kinds": ["scale", "restart"]}, "empty": {}}
PATHS = [
    ("action", ("cost", "estimated_usd")),
    ("action", ("kind",)),
    ("action", ("actor", "kind")),
    ("action", ("requested_at",)),
    ("action", ("services",)),
    ("action", ("missing", "deeper")),
    ("decision", ()),
]

leaves = st.one_of(
    st.builds(
        ir.Const,
        st.one_of(
            st.integers(-5, 5),
            st.floats(allow_nan=False, width=32),
            st.sampled_from(["deny", "allow", "scale", "2025-03-10T12:00:00Z", ""]),
            st.booleans(),
            st.none(),
        ),
    ),
    st.builds(
        lambda where, defaults: ir.Path(where[0], where[1], defaults=defaults),
        st.sampled_from(PATHS),
        st.sampled_from([(), ((0, 7),), ((1, "llm"),)]),
    ),
    st.builds(
        ir.EnvelopeRef,
        st.sampled_from(["cost", "empty", "nowhere"]),
        st.sampled_from(["limit", "kinds"]),
    ),
)


def _tree(children: st.SearchStrategy[ir.Node]) -> st.SearchStrategy[ir.Node]:
    ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    return st.one_of(
        st.builds(lambda items: ir.ListOf(tuple(items)), st.lists(children, max_size=3)),
        st.builds(ir.Not, children),
        st.builds(ir.Neg, children),
        st.builds(ir.BoolOp, st.sampled_from(["and", "or"]), children, children),
        st.builds(
            lambda op, a, b, kind: ir.Compare(op, a, b, kind, 0, "t"),
            ops,
            children,
            children,
            st.sampled_from(["value", "time"]),
        ),
        st.builds(
            lambda negated, a, b, kind: ir.Member(negated, a, b, 0, "t", kind),
            st.booleans(),
            children,
            children,
            st.sampled_from(["value", "time"]),
        ),
        st.builds(
            lambda op, a, b: ir.Arith(op, a, b, f"number{op}number"),
            st.sampled_from(["+", "-", "*", "/"]),
            children,
            children,
        ),
        st.builds(
            lambda where, fallback: ir.Default(ir.Path(where[0], where[1]), fallback),
            st.sampled_from(PATHS),
            children,
        ),
        st.builds(lambda where: ir.Has(ir.Path(where[0], where[1])), st.sampled_from(PATHS)),
        st.builds(
            lambda function, arg: ir.Call(function, (arg,)),
            st.sampled_from(["len", "lower", "sum", "hour"]),
            children,
        ),
        st.builds(
            lambda kind, items, body: ir.Quantifier(kind, "s", items, body),
            st.sampled_from(["any", "all"]),
            st.sampled_from(
                [ir.Path("action", ("services",)), ir.ListOf((ir.Const("a"), ir.Const(1)))]
            ),
            st.sampled_from(
                [
                    ir.Compare("==", ir.Path("s", (), local=True), ir.Const("a"), "value", 0, "t"),
                    ir.Path("s", (), local=True),
                ]
            ),
        ),
    )


trees = st.recursive(leaves, _tree, max_leaves=8)

values = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["scale", "llm", "2025-03-10T12:00:00Z", "not a time", ""]),
    st.lists(st.sampled_from(["a", "b", 1]), max_size=3),
    st.fixed_dictionaries({"kind": st.sampled_from(["llm", "human"])}),
)
rows = st.fixed_dictionaries(
    {},
    optional={
        "cost": st.one_of(values, st.fixed_dictionaries({}, optional={"estimated_usd": values})),
        "kind": values,
        "actor": st.one_of(values, st.fixed_dictionaries({}, optional={"kind": values})),
        "requested_at": values,
        "services": values,
    },
)


def outcome(run: Any) -> tuple[str, Any]:
    try:
        value = run()
    except Exception as exc:  # the same exception, with the same message
        return ("raised", f"{type(exc).__name__}: {exc}")
    if isinstance(value, float) and math.isnan(value):
        return ("value", "nan")
    return ("value", (type(value).__name__, repr(value)))


@settings(max_examples=400, deadline=None)
@given(trees, rows, st.sampled_from(["allow", "deny", "escalate"]))
def test_a_compiled_expression_gives_what_the_interpreter_gives(node, action, decision) -> None:
    scope = {"action": action, "decision": decision}
    compiled = compile_node(node, ENVELOPES)
    expected = outcome(lambda: interpreter.evaluate(node, scope, ENVELOPES))
    assert outcome(lambda: compiled(scope)) == expected


USAGES = """
usage agents = count() over last 1h where action.actor.kind != "human" and decision != "deny"
usage spend = sum(action.cost.estimated_usd) over calendar_month where decision != "deny"
usage biggest = max(action.cost.estimated_usd) over calendar_day
usage scaled = count() over calendar_day where action.kind in ["scale", "restart"]
"""


@functools.cache
def calculator() -> UsageCalculator:
    pack = load_pack(write_pack(Path(tempfile.mkdtemp()) / "pack", USAGES))
    assert len(pack.program.usages) == 4
    return UsageCalculator(pack.program.usages, pack.envelopes)


@settings(max_examples=100, deadline=None)
@given(rows, st.sampled_from(["allow", "deny", "require_approval"]))
def test_the_gate_contributions_match_the_interpreter(action, decision) -> None:
    given_ = calculator().contributions(action, decision, 7)
    assert given_ == calculator().interpreted(action, decision, 7)


def test_the_baseline_pack_contributions_match_the_interpreter() -> None:
    pack = load_pack(Path(__file__).parent.parent / "policy_packs" / "aigre-baseline")
    calculator = UsageCalculator(pack.program.usages, pack.envelopes)
    for action in (
        {"cost": {"estimated_usd": 12.5}},
        {"cost": {"estimated_usd": "twelve"}},
        {"cost": {}},
        {},
    ):
        for decision in ("allow", "deny"):
            got = calculator.contributions(action, decision, 1)
            assert got == calculator.interpreted(action, decision, 1)


def test_an_expression_that_cannot_be_compiled_is_left_to_the_interpreter() -> None:
    unknown = ir.Usage("odd", "count", None, "last 1h", 3600, ir.Call("no_such", ()))
    calculator = UsageCalculator([unknown], {})  # built: the fault is the row's, not the gate's
    (contribution,) = calculator.contributions({}, "allow", 3).values()
    assert contribution.error == "cannot read ledger row 3: KeyError: 'no_such'"
    assert calculator.interpreted({}, "allow", 3) == calculator.contributions({}, "allow", 3)
