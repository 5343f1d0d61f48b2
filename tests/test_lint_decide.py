"""The never/always-holds decision agrees with brute-force evaluation.

For conditions over one field — comparisons with constants, combined with
``and``/``or``/``not`` — the linter's search (``formula.find``) must agree with
the reference interpreter: a condition it calls never-true is false on every
value the schema admits (sampled, with every constant and its neighbours), one
it calls always-true is true on every such value, and when it finds a witness
value, the interpreter gives the wanted truth on that value.
"""

from __future__ import annotations

import math
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import interpreter
from aigre_policy.check import _envelopes
from aigre_policy.lint.formula import Translator, find
from aigre_policy.parser import parse_expression, parse_module
from aigre_policy.schema_types import input_type
from aigre_policy.typecheck import ExprChecker, Scope

ENVELOPES = {"limits": {"low": 2, "names": ["b", "c"]}}
ENVELOPE_SOURCE = 'envelope limits { low: 2 names: ["b", "c"] }'


@st.composite
def field_schemas(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["integer", "number", "enum", "string", "boolean"]))
    if kind in ("integer", "number"):
        schema: dict[str, Any] = {"type": kind}
        low = draw(st.one_of(st.none(), st.integers(-5, 5)))
        high = draw(st.one_of(st.none(), st.integers(-5, 5)))
        if low is not None:
            schema["minimum"] = low
        if high is not None:
            schema["maximum"] = max(high, low) if low is not None else high
        return schema
    if kind == "enum":
        values = draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=4, unique=True))
        return {"type": "string", "enum": values}
    return {"type": kind}


def constants_for(schema: dict[str, Any]):
    match schema.get("type"), "enum" in schema:
        case (("integer" | "number"), _):
            number = st.one_of(st.integers(-7, 7), st.sampled_from([-0.5, 0.5, 1.5, 2.5, -2.5]))
            return number.map(_show)
        case "string", True:
            return st.sampled_from(schema["enum"]).map(lambda v: f'"{v}"')
        case "string", False:
            return st.sampled_from("abc").map(lambda v: f'"{v}"')
    return st.sampled_from(["true", "false"])


@st.composite
def atoms(draw, schema: dict[str, Any], read: str) -> str:
    kind = schema["type"]
    constant = constants_for(schema)
    if kind == "boolean":
        return draw(st.sampled_from([read, f"not {read}", f"{read} == {draw(constant)}"]))
    if kind in ("integer", "number") and draw(st.booleans()):
        op = draw(st.sampled_from(["<", "<=", ">", ">="]))
        other = draw(st.one_of(constant, st.just("limits.low")))
        return f"{read} {op} {other}"
    if draw(st.booleans()):
        items = draw(st.lists(constant, min_size=0, max_size=3))
        negated = draw(st.booleans())
        if kind == "string" and "enum" not in schema and draw(st.booleans()):
            return f"{read} {'not in' if negated else 'in'} limits.names"
        if not items:
            items = [draw(constant)]
        return f"{read} {'not in' if negated else 'in'} [{', '.join(items)}]"
    return f"{read} {draw(st.sampled_from(['==', '!=']))} {draw(constant)}"


@st.composite
def conditions(draw, schema: dict[str, Any], read: str, depth: int = 0) -> str:
    if depth >= 2 or draw(st.booleans()):
        return draw(atoms(schema, read))
    shape = draw(st.sampled_from(["and", "or", "not"]))
    left = draw(conditions(schema, read, depth + 1))
    if shape == "not":
        return f"not ({left})"
    right = draw(conditions(schema, read, depth + 1))
    return f"({left}) {shape} ({right})"


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _input_schema(field: dict[str, Any], required: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "action": {
                "type": "object",
                "properties": {"x": field},
                "required": ["x"] if required else [],
            },
            "context": {"type": "object"},
        },
        "required": ["action", "context"],
    }


def _samples(field: dict[str, Any], text: str) -> list[Any]:
    """Values the schema admits: bounds, every number in the text and its neighbours, a few more."""
    if field["type"] == "boolean":
        return [True, False]
    if "enum" in field:
        return list(field["enum"])
    if field["type"] == "string":
        return ["a", "b", "c", "d", "", "zz"]
    found = [float(t) for t in text.replace("(", " ").replace(")", " ").split() if _number(t)]
    found += [2, field.get("minimum", -9), field.get("maximum", 9)]
    values = {v + d for v in found for d in (-1, -0.5, -0.25, 0, 0.25, 0.5, 1)}
    values |= {int(v) for v in values}
    admitted = [v for v in values if _admits(field, v)]
    return admitted if field["type"] == "number" else [int(v) for v in admitted if v == int(v)]


def _number(token: str) -> bool:
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


def _admits(field: dict[str, Any], value: Any) -> bool:
    return jsonschema.Draft202012Validator(field).is_valid(value)


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_decision_agrees_with_brute_force(data):
    field = data.draw(field_schemas())
    fallback = data.draw(st.one_of(st.none(), constants_for(field)))
    read = "action.x" if fallback is None else f"(action.x ?? ({fallback}))"
    text = data.draw(conditions(field, read))

    expr, problems = parse_expression(text)
    assert expr is not None, problems
    types = input_type(_input_schema(field, required=fallback is None))
    module = parse_module(ENVELOPE_SOURCE, "<env>").module
    envelope_types, _ = _envelopes([module], [])  # envelope types as the compiler builds them
    diagnostics: list = []
    node = ExprChecker(types, envelope_types, {}, diagnostics).condition(expr, Scope(), "c")
    errors = [d for d in diagnostics if d.severity == "error"]
    if node is None or errors:
        return  # ill-typed combination (a float against an integer list, say): not linted

    formula = Translator(types, ENVELOPES).formula(node)
    documents = [{"x": v} for v in _samples(field, text)]
    if fallback is not None:
        documents.append({})  # absent: the fallback applies

    def truth(action: dict[str, Any]) -> bool:
        scope = {"action": action, "context": {}, "usage": {}}
        return bool(interpreter.evaluate(node, scope, ENVELOPES))

    for want in (True, False):
        witness = find(formula, want)
        if witness is None:
            assert all(truth(doc) is not want for doc in documents), (text, field, want)
            continue
        values = list(witness.values())
        if not values:  # settled without reading the field: a constant condition
            assert all(truth(doc) is want for doc in documents), (text, field, want)
            continue
        (value,) = values
        if _admits(field, value):
            doc = {"x": value}
        else:
            assert fallback is not None and value == _constant(fallback), (text, value)
            doc = {}
        assert truth(doc) is want, (text, field, value, want)


def _constant(text: str) -> Any:
    return {"true": True, "false": False}.get(text, text.strip('"') if '"' in text else float(text))


def test_integer_gaps_are_exact():
    """``> 2 and < 3`` has no integer but has a number: decided per the schema's type."""
    for kind, expected_never in (("integer", True), ("number", False)):
        types = input_type(_input_schema({"type": kind}, required=True))
        expr, _ = parse_expression("action.x > 2 and action.x < 3")
        node = ExprChecker(types, {}, {}, []).condition(expr, Scope(), "c")
        formula = Translator(types, {}).formula(node)
        assert (find(formula, True) is None) is expected_never
