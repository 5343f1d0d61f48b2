"""The schema-to-strategy generator: every value it draws is valid against its schema.

Checked with both referees: jsonschema (draft 2020-12, date-time as RFC 3339) and the
gate's own input validator, over the repo's schemas (the built-in proposed action and
context, the published ones in docs/schemas, every pack's composed input schema) and
small schemas aimed at each keyword.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import write_pack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from aigre_policy import load_pack
from aigre_policy.inputs import builtin_schema
from aigre_policy.testing.invariants import check_invariants
from aigre_policy.testing.json_schema import UnsupportedSchema, from_schema
from aigre_policy.testing.strategies import Hints, collect_hints, documents
from aigre_policy.validation import InputValidator, is_rfc3339_date_time

REPO = Path(__file__).resolve().parent.parent
PACKS = sorted(p.parent for p in (REPO / "policy_packs").glob("*/pack.yaml"))
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# A custom input schema whose action holds a plain `{type: object}` field: the shape that
# crashed `aigre-policy test` when such fields went to hypothesis-jsonschema.
CUSTOM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {
            "type": "object",
            "properties": {
                "kind": {"type": "string"},
                "labels": {"type": "object"},
                "anything": {},
            },
            "required": ["kind", "labels"],
        },
        "context": {
            "type": "object",
            "properties": {"now": {"type": "string", "format": "date-time"}},
            "required": ["now"],
        },
    },
    "required": ["action", "context"],
}


@cache
def _referees(key: str) -> tuple[Draft202012Validator, InputValidator | None]:
    """jsonschema and, for an object schema it accepts, the gate's input validator."""
    schema = json.loads(key)
    checker = FormatChecker(formats=())
    checker.checks("date-time")(is_rfc3339_date_time)
    reference = Draft202012Validator(schema, format_checker=checker)
    uses_multiple_of = "multipleOf" in key  # the input validator refuses it
    ours = InputValidator(schema) if isinstance(schema, dict) and not uses_multiple_of else None
    return reference, ours


def assert_valid(schema: Any, value: Any) -> None:
    text = json.dumps(value)  # every value is plain JSON
    assert json.loads(text) == value
    reference, ours = _referees(json.dumps(schema, sort_keys=True))
    errors = [e.message for e in reference.iter_errors(value)]
    assert errors == [], (errors, text[:1000])
    if ours is not None:
        assert ours.errors(value) == [], text[:1000]


@cache
def _pack(root: Path) -> Any:
    return load_pack(root)


def _published(name: str) -> dict[str, Any]:
    return json.loads((REPO / "docs" / "schemas" / name).read_text(encoding="utf-8"))


REPO_SCHEMAS = {
    "builtin": builtin_schema("builtin:proposed-action/v1"),
    "docs-proposed-action": _published("proposed-action.schema.json"),
    "docs-context": _published("context.schema.json"),
    "custom-plain-object": CUSTOM_SCHEMA,
    **{f"pack-{root.name}": _pack(root).input_schema for root in PACKS},
}


@pytest.mark.parametrize("name", sorted(REPO_SCHEMAS))
@SETTINGS
@given(data=st.data())
def test_values_drawn_from_the_repo_schemas_are_valid(name: str, data: st.DataObject) -> None:
    schema = REPO_SCHEMAS[name]
    assert_valid(schema, data.draw(from_schema(schema)))


@pytest.mark.parametrize("root", PACKS, ids=lambda root: root.name)
@SETTINGS
@given(data=st.data())
def test_invariant_documents_of_every_pack_are_valid(root: Path, data: st.DataObject) -> None:
    pack = _pack(root)
    strategy = documents(pack.input_schema, collect_hints(pack.program, pack.envelopes))
    assert_valid(pack.input_schema, data.draw(strategy))


@SETTINGS
@given(data=st.data())
def test_invariant_documents_fill_a_plain_object_field(data: st.DataObject) -> None:
    schema = {**CUSTOM_SCHEMA, "additionalProperties": False}
    schema["properties"] = {**CUSTOM_SCHEMA["properties"], "usage": {"type": "object"}}
    document = data.draw(documents(schema, Hints()))
    assert isinstance(document["action"]["labels"], dict)
    assert_valid(schema, document)


def test_invariants_run_on_a_pack_whose_schema_holds_a_plain_object(tmp_path: Path) -> None:
    root = write_pack(
        tmp_path / "custom",
        """
        rule no-drop {
          deny when action.kind == "drop"
        }
        invariant "drops are denied" {
          when action.kind == "drop"
          expect deny
        }
        """,
        manifest={"input_schema": "input.schema.json"},
        files={"input.schema.json": CUSTOM_SCHEMA},
    )
    (result,) = check_invariants(load_pack(root), examples=30)
    assert result.status == "held"
    assert result.applicable > 0


# Small schemas, one or two keywords each.
KEYWORD_SCHEMAS: list[Any] = [
    True,
    {},
    {"type": "null"},
    {"type": ["integer", "null"]},
    {"type": ["number", "integer"], "minimum": 2.5},
    {"type": "integer", "minimum": -3, "maximum": 3},
    {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    {"type": "number", "minimum": 0, "exclusiveMaximum": 1e-300},
    {"type": "integer", "multipleOf": 5, "minimum": 1, "maximum": 40},
    {"type": "number", "multipleOf": 0.5, "maximum": 10},
    {"minimum": 1},  # no type: any value, numbers at least 1
    {"enum": [1, "a", None, [1], {"b": 2}]},
    {"enum": ["a", "bb", "ccc"], "minLength": 2},
    {"const": {"x": [1, 2]}},
    {"type": "string", "minLength": 3, "maxLength": 5},
    {"type": "string", "pattern": "^[a-z]{2}-[0-9]+$"},
    {"type": "string", "pattern": "ab", "maxLength": 6},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "duration"},
    {"type": "string", "format": "email"},  # an annotation: any string
    {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
    {"type": "array", "items": {"enum": [1, 1.5, True, "1"]}, "uniqueItems": True},
    {"type": "array", "contains": {"const": 7}, "maxItems": 3},
    {"type": "array", "items": False},
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": {"type": "boolean"},
    },
    {"type": "object", "patternProperties": {"^x-": {"type": "string"}}},
    {"type": "object", "propertyNames": {"maxLength": 2}, "maxProperties": 2},
    {"type": "object", "minProperties": 1, "additionalProperties": {"type": "integer"}},
    {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "nullable"},
    {"type": "string", "nullable": True},  # OpenAPI's keyword: no null in 2020-12
    {"oneOf": [{"type": "integer"}, {"minimum": 0}]},
    {"allOf": [{"type": "integer"}, {"minimum": 3}, {"maximum": 9}]},
    {"allOf": [{"minimum": 3}, {"minimum": 5}], "type": "integer"},
    # additionalProperties sees only its own part's properties: `a` is extra to it
    {"allOf": [{"properties": {"a": {"type": "integer"}}}, {"additionalProperties": False}]},
    {"not": {"type": "string"}},
    {"if": {"type": "integer"}, "then": {"minimum": 10}, "else": {"type": "string"}},
    {"$defs": {"S": {"type": "string"}}, "$ref": "#/$defs/S", "minLength": 3},
    {"definitions": {"a/b": {"type": "integer"}}, "items": {"$ref": "#/definitions/a~1b"}},
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["v"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    },
    {
        "$defs": {
            "list": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/pair"}]},
            "pair": {"type": "array", "items": {"$ref": "#/$defs/list"}, "minItems": 1},
        },
        "$ref": "#/$defs/list",
    },
]


@pytest.mark.parametrize("schema", KEYWORD_SCHEMAS, ids=lambda s: json.dumps(s)[:60])
@SETTINGS
@given(data=st.data())
def test_values_drawn_from_keyword_schemas_are_valid(schema: Any, data: st.DataObject) -> None:
    assert_valid(schema, data.draw(from_schema(schema)))


def test_a_nullable_flag_never_yields_null() -> None:
    strategy = from_schema({"type": "string", "nullable": True})

    @settings(max_examples=50, database=None)
    @given(strategy)
    def check(value: Any) -> None:
        assert isinstance(value, str)

    check()


def test_a_plain_object_field_yields_varied_objects() -> None:
    seen: list[dict[str, Any]] = []

    @settings(max_examples=60, database=None)
    @given(from_schema({"type": "object"}))
    def collect(value: Any) -> None:
        assert isinstance(value, dict)
        seen.append(value)

    collect()
    assert any(seen) and {} in seen


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"$ref": "https://example.com/s.json"}, "only local $ref"),
        ({"$ref": "#/$defs/Missing"}, "points at nothing"),
        ({"prefixItems": [{"type": "integer"}]}, "'prefixItems'"),
    ],
)
def test_a_schema_outside_the_subset_is_refused_by_name(schema: Any, reason: str) -> None:
    with pytest.raises(UnsupportedSchema, match=reason.replace("$", r"\$")):
        from_schema(schema)


def test_an_invariant_over_a_schema_no_value_meets_is_vacuous(tmp_path: Path) -> None:
    # three required properties, none of which may hold a value: no object meets it
    labels = {
        "type": "object",
        "required": ["a", "b", "c"],
        "properties": {"a": {"enum": []}, "b": {"enum": []}, "c": {"enum": []}},
    }
    schema = json.loads(json.dumps(CUSTOM_SCHEMA))
    schema["properties"]["action"]["properties"]["labels"] = labels
    root = write_pack(
        tmp_path / "narrow",
        'invariant "drops are denied" {\n  when action.kind == "drop"\n  expect deny\n}\n',
        manifest={"input_schema": "input.schema.json"},
        files={"input.schema.json": schema},
    )
    (result,) = check_invariants(load_pack(root), examples=20)
    assert result.status == "vacuous"
    assert result.applicable == 0
