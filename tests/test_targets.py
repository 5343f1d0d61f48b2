"""What an engine cannot run is found once, by the check stage (aigre_policy/targets.py).

E604 (an input schema the Rego engines cannot check alike) refuses the pack on every
engine. ``%`` and ``/`` by a value that may be zero are no longer refused for Rego (E601,
E602, retired): every engine computes them as native does and fails closed where native
fails (a zero divisor, an overflow), with native's error record, naming the rule and the
expression. A guard (``x > 0 and y / x > 1``) spares the division where native's
short-circuit spares it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import load_pack
from aigre_policy.compiler import compile_pack
from aigre_policy.plain import as_plain
from aigre_policy.rego.attach import rego_program
from aigre_policy.rego.engine import RegopyEngine, RegorusEngine

ENGINES = ("native", "interpreter", "rego", "regorus")

GUARDED = {
    "and": "deny when action.change.lines > 0 and 80 / action.change.lines > 1",
    "or": "deny when action.change.lines == 0 or 80 / action.change.lines > 1",
    "not": "deny when not (action.change.lines <= 0) and 100 / action.change.lines > 1",
    "equal": "deny when action.change.lines == 4 and 100 / action.change.lines > 1",
    "constant": "deny when action.cost.estimated_usd / -0.5 < 1",
    "envelope": "deny when action.cost.estimated_usd / limits.per_line > 1",
    "message": 'deny when action.change.lines > 0 because "{10 / action.change.lines}"',
    "quantifier": "deny when any(s in [1, 2]: s > 0 and 10 / s > 1)",
    "any-stops": "deny when any(s in [4, 0]: 8 / s > 1)",
    "all-stops": "deny when all(s in [4, 0]: 8 / s > 3)",
}
# divisions native reaches with a zero divisor when action.change.lines is 0
UNGUARDED = {
    "plain": "deny when action.cost.estimated_usd / action.change.lines > 1",
    "or-wrong-side": "deny when action.change.lines > 0 or 1 / action.change.lines > 1",
    "guard-after": "deny when 1 / action.change.lines > 1 and action.change.lines > 0",
    "weak-guard": "deny when action.change.lines >= 0 and 1 / action.change.lines > 1",
    "fallback": "deny when (context.error_budget_remaining ?? (1 / action.change.lines)) > 0",
    "message": 'deny when true because "{10 / action.change.lines}"',
    "remainder": "deny when action.change.files % action.change.lines == 1",
    "in-any": "deny when any(s in [1, action.change.lines]: 4 / s > 5)",
    "in-all": "deny when all(s in [1, action.change.lines]: 4 / s > 1)",
    "nested": "deny when 1 / (2 / action.change.lines) > 0",
}
# remainders as native takes them: the sign of the dividend, exact on fractions
REMAINDERS = {
    "{action.change.lines % 7}": {0: "0", 4: "4", 40: "5"},
    "{0 - action.change.lines % 7}": {0: "0", 4: "-4", 40: "-5"},
    "{(0 - action.change.lines) % 7}": {0: "0", 4: "-4", 40: "-5"},
    "{action.change.lines % -7}": {0: "0", 4: "4", 40: "5"},
    "{(action.change.lines + 3.5) % 2}": {0: "1.5", 4: "1.5", 40: "1.5"},
    "{(action.change.lines + 0.3) % 0.1}": {
        0: "0.09999999999999998",
        4: "0.09999999999999959",
        40: "0.09999999999999493",
    },
    "{(0 - action.change.lines - 7.5) % 2}": {0: "-1.5", 4: "-1.5", 40: "-1.5"},
    "{action.change.lines * 182 % 7}": {0: "0", 4: "0", 40: "0"},
}
ENVELOPE = "envelope limits { per_line: 2 }\n"


def _pack(new_pack, condition: str):
    return new_pack(f"{ENVELOPE}rule r {{ {condition} }}\n")


def _outcome(verdict: Any) -> tuple[Any, ...]:
    messages = [r["message"] for r in [*verdict.fired, *verdict.warnings]]
    return verdict.decision, verdict.fail_closed, verdict.rule_ids, messages, verdict.errors


def _agree(root: Any, action: dict[str, Any], context: dict[str, Any], **kw: Any) -> Any:
    """The native verdict, once every engine and the Rego program itself on both Rego
    engines (its `decision` entrypoint, as OPA runs it) gave the same."""
    packs = {engine: load_pack(root, engine=engine, **kw) for engine in ENGINES}
    verdicts = {e: p.evaluate(action, context) for e, p in packs.items()}
    native = verdicts["native"]
    for engine, verdict in verdicts.items():
        assert _outcome(verdict) == _outcome(native), engine
    program = rego_program(packs["rego"])
    document = as_plain({"action": action, "context": context, "usage": {}})
    for runner in (RegopyEngine, RegorusEngine):
        decided = runner(program, validate_in_rego=True).decide(document)
        assert decided["fail_closed"] == native.fail_closed, runner.name
        assert decided["decision"] == native.decision, runner.name
        assert decided["errors"] == native.errors, runner.name
    return native


@pytest.mark.parametrize("name", GUARDED)
def test_a_guarded_division_runs_and_decides_alike_on_every_engine(
    new_pack, make_action, valid_context, name
):
    root = _pack(new_pack, GUARDED[name])
    for lines in (0, 4, 40):
        action = make_action(change={"type": "code", "lines": lines})
        assert not _agree(root, action, valid_context).fail_closed


@pytest.mark.parametrize("name", UNGUARDED)
def test_a_zero_divisor_fails_closed_alike_on_every_engine(
    new_pack, make_action, valid_context, name
):
    root = _pack(new_pack, UNGUARDED[name])
    for engine in ENGINES:
        assert compile_pack(root, engine=engine).ok, engine
    for lines in (0, 4, 40):
        action = make_action(change={"type": "code", "lines": lines, "files": 3})
        verdict = _agree(root, action, valid_context)
        assert verdict.fail_closed == (lines == 0)
    (record,) = (
        verdict.errors
        if verdict.fail_closed
        else _agree(
            root, make_action(change={"type": "code", "lines": 0, "files": 3}), valid_context
        ).errors
    )
    assert record["rule"] == "r" and record["kind"] == "engine"
    assert "ZeroDivisionError" in record["message"] and record["span"]["line"] == 2


@pytest.mark.parametrize("text", REMAINDERS)
def test_remainders_are_natives_on_every_engine(new_pack, make_action, valid_context, text):
    root = new_pack(f'rule r {{ warn when true because "{text}" }}\n')
    for lines, shown in REMAINDERS[text].items():
        action = make_action(change={"type": "code", "lines": lines})
        verdict = _agree(root, action, valid_context)
        assert [w["message"] for w in verdict.warnings] == [shown]


def test_an_overflowing_quotient_fails_closed_alike_on_every_engine(
    new_pack, make_action, valid_context
):
    root = new_pack("rule r { deny when action.cost.estimated_usd / 1e-300 > 1 }\n")
    verdict = _agree(root, make_action(cost={"estimated_usd": 1e10}), valid_context)
    assert verdict.fail_closed and "arithmetic overflow" in verdict.errors[0]["message"]
    assert not _agree(root, make_action(cost={"estimated_usd": 1e-10}), valid_context).fail_closed


def test_an_envelope_override_of_zero_fails_closed_alike_on_every_engine(
    new_pack, make_action, valid_context
):
    root = _pack(new_pack, GUARDED["envelope"])
    action = make_action(cost={"estimated_usd": 10})
    assert not _agree(root, action, valid_context).fail_closed
    verdict = _agree(root, action, valid_context, envelopes={"limits": {"per_line": 0}})
    assert verdict.fail_closed and verdict.errors[0]["rule"] == "r"


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
    for engine in ("native", "interpreter", "rego"):
        report = compile_pack(root, engine=engine)
        assert not report.ok
        assert [d.code for d in report.diagnostics] == ["E604"], engine


def test_the_rego_target_refuses_no_arithmetic(new_pack):
    root = _pack(new_pack, "deny when action.change.lines % 2 == 1 and 1 / action.change.files > 0")
    checked = compile_pack(root, engine=None).checked
    assert checked is not None
    assert checked.target_diagnostics["rego"] == ()
    assert rego_program(load_pack(root, engine="rego")).ok


# ---------------------------------------------------------------- random conditions


@st.composite
def _number(draw: Any, depth: int, item: bool) -> str:
    # dyadic values only: every quotient and remainder is exact, so rego-cpp's 16 figures
    # (docs/rego.md) print and compare them as the others do
    leaves = ["action.change.lines", "action.change.files", "4", "0", "0.5"]
    if item:
        leaves.append("n")
    if depth <= 0 or draw(st.booleans()):
        return draw(st.sampled_from(leaves))
    op = draw(st.sampled_from(["/", "%", "-", "+"]))
    left, right = draw(_number(depth - 1, item)), draw(_number(depth - 1, item))
    return f"({left} {op} {right})"


@st.composite
def _condition(draw: Any, depth: int, item: bool = False) -> str:
    form = draw(st.sampled_from(["compare", "and", "or", "not", "any", "all"]))
    if depth <= 0 or form == "compare":
        op = draw(st.sampled_from([">", "==", "<="]))
        return f"{draw(_number(2, item))} {op} {draw(_number(2, item))}"
    if form in ("and", "or"):
        return f"({draw(_condition(depth - 1, item))} {form} {draw(_condition(depth - 1, item))})"
    if form == "not":
        return f"not ({draw(_condition(depth - 1, item))})"
    if item:  # one quantifier deep: `n` is its item
        return draw(_condition(depth - 1, item))
    items = "[action.change.lines, 2, action.change.files]"
    return f"{form}(n in {items}: {draw(_condition(depth - 1, True))})"


@settings(max_examples=12, deadline=None, database=None, derandomize=True)
@given(
    _condition(3),
    _number(2, False),
    st.lists(st.tuples(*[st.sampled_from([0, 1, 2, 4])] * 2), min_size=3, max_size=3),
)
def test_random_arithmetic_fails_where_native_fails_on_every_engine(
    tmp_path_factory, condition, shown, sizes
):
    """Divisions and remainders behind `and`/`or`/`not` and inside `any`/`all`, divisors
    often zero: every engine, and the Rego program's own document, fail closed exactly
    where native does, with native's error record."""
    from conftest import CONTEXT, _action

    root = tmp_path_factory.mktemp("random")
    (root / "policies").mkdir()
    (root / "pack.yaml").write_text("name: r\nversion: 1.0.0\ndefault: allow\nfail_closed: deny\n")
    (root / "policies" / "main.aigre").write_text(
        f'rule r {{\n  deny when {condition}\n  because "{{{shown}}}"\n}}\n'
    )
    for lines, files in sizes:
        _agree(root, _action(change={"type": "code", "lines": lines, "files": files}), CONTEXT)
