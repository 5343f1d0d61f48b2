"""Tests for aigre_policy.validation: the fast and the slow validator must never disagree.

The realistic schema is the evaluation input composed from the project's models. Hypothesis
generates valid inputs from it (``testing.json_schema``), breaks them in the ways inputs really
break, and throws arbitrary JSON at it; every time, the compiled fast path must give the
verdict a reference jsonschema validator gives, and ``errors`` must explain every rejection.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from aigre_policy.models.action import Context, ProposedAction, json_schema_of
from aigre_policy.testing.json_schema import from_schema
from aigre_policy.validation import (
    DATE_TIME_PATTERN,
    DRAFT_2020_12,
    InputError,
    InputValidator,
    is_rfc3339_date_time,
)

# --- the realistic schema and input -------------------------------------------------------


def input_schema() -> dict[str, Any]:
    """The evaluation input schema: action and context from the models, plus usage.

    Both model schemas refer to ``#/$defs/Name``, so their ``$defs`` merge at the root.
    """
    action = json_schema_of(ProposedAction)
    context = json_schema_of(Context)
    defs: dict[str, Any] = {}
    for part in (action, context):
        part.pop("$schema", None)  # only the root names the dialect
        for name, definition in part.pop("$defs", {}).items():
            assert defs.setdefault(name, definition) == definition, f"$defs clash on {name}"
    return {
        "$schema": DRAFT_2020_12,
        "type": "object",
        "properties": {
            "action": action,
            "context": context,
            "usage": {
                "type": "object",
                "properties": {"spend_usd": {"type": "number"}},
                "required": ["spend_usd"],
                "additionalProperties": False,
            },
        },
        "required": ["action", "context", "usage"],
        "additionalProperties": False,
        "$defs": defs,
    }


INPUT_SCHEMA = input_schema()
valid_inputs = from_schema(input_schema())

VALID_INPUT: dict[str, Any] = {
    "action": {
        "id": "act-7",
        "kind": "rollback",
        "target": "checkout",
        "environment": "production",
        "actor": {"kind": "llm", "id": "agent-1", "model": "ops-model", "trust": 3},
        "change": {"type": "code", "lines": 12, "files": 2},
        "reversible": True,
        "rollback": {"plan": "redeploy v41", "tested": True, "estimated_minutes": 5},
        "blast_radius": {"users_share": 0.2, "services": ["checkout"], "regions": ["eu-west-1"]},
        "cost": {"estimated_usd": 3.5},
        "approvals": [{"by": "ana", "group": "sre-oncall", "at": "2026-03-02T09:15:00Z"}],
        "justification": {"signal": "slo_burn", "ref": "INC-1042"},
        "requested_at": "2026-03-02T09:20:00+01:00",
    },
    "context": {
        "now": "2026-03-02T09:20:05.250Z",
        "change_freezes": [
            {
                "name": "quarter-end",
                "starts_at": "2026-03-28T00:00:00Z",
                "ends_at": "2026-04-02T00:00:00Z",
                "environments": ["production"],
            }
        ],
        "error_budget_remaining": 0.4,
        "incidents_open": [{"id": "INC-1042", "severity": "sev2", "services": ["checkout"]}],
    },
    "usage": {"spend_usd": 40},
}


def reference(schema: dict[str, Any]) -> Draft202012Validator:
    """jsonschema as the referee: draft 2020-12, date-time checked by the shared check only."""
    checker = FormatChecker(formats=())
    checker.checks("date-time")(is_rfc3339_date_time)
    return Draft202012Validator(schema, format_checker=checker)


VALIDATOR = InputValidator(INPUT_SCHEMA)
REFERENCE = reference(INPUT_SCHEMA)


def with_change(path: tuple[str | int, ...], value: Any = None, *, drop: bool = False) -> Any:
    """A copy of VALID_INPUT with the value at ``path`` replaced (or dropped)."""
    instance = copy.deepcopy(VALID_INPUT)
    parent = instance
    for step in path[:-1]:
        parent = parent[step]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return instance


def assert_agree(validator: InputValidator, referee: Draft202012Validator, instance: Any) -> None:
    fast = validator.is_valid(instance)
    assert fast == referee.is_valid(instance), json.dumps(instance, default=repr)[:2000]
    assert bool(validator.errors(instance)) != fast


# --- strategies ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

# Values that are wrong (or nearly right) somewhere in the schema: misspelt enum members,
# timestamps that are not RFC 3339, booleans and integral floats where integers go, bounds.
TRICKY_VALUES: list[Any] = [
    "prodution",
    "production",
    "rollback",
    "sev2",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T00:00:00",
    "2026-01-01 00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:60Z",
    "2026-01-01T00:00:00+05:60",
    "2026-01-01t00:00:00z",
    "2026-01-01T00:00:00.123456789-08:00",
    "",
    "x",
    True,
    False,
    None,
    0,
    -1,
    1.0,
    3.0,
    1.5,
    5,
    6,
    1,
    -0.0,
    10**30,
    [],
    {},
    ["checkout"],
    [{"by": "ana", "group": "sre-oncall", "at": "2026-01-01T00:00:00Z"}],
]
EXTRA_KEYS = ["colour", "kind", "at", "now", "spend_usd", "", "a b"]


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every location in a JSON value, the root included."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


BAD_TIMESTAMPS = [value for value in TRICKY_VALUES if isinstance(value, str) and "T" in value]
NOT_QUITE_INTEGERS = [True, False, 1.0, 3.0, 1.5, -1, 6, "3", None]


@st.composite
def mutated_inputs(draw: st.DrawFn) -> Any:
    """A valid input broken in one to three places.

    Besides blind edits anywhere (replace a value, drop it, add a key), two aimed ones: swap a
    timestamp for a near miss, and a number for a boolean, a float or an out-of-range value.
    """
    instance = copy.deepcopy(draw(st.one_of(st.just(VALID_INPUT), valid_inputs)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(instance)
        how = draw(st.sampled_from(["replace", "drop", "extra", "timestamp", "number"]))
        aimed = {
            "timestamp": [p for p in paths if is_timestamp(_at(instance, p))],
            "number": [p for p in paths if is_number(_at(instance, p))],
        }.get(how)
        if aimed:
            path = draw(st.sampled_from(aimed))
            pool = BAD_TIMESTAMPS if how == "timestamp" else NOT_QUITE_INTEGERS
            new = draw(st.sampled_from(pool))
        else:
            path = draw(st.sampled_from(paths))
            new = copy.deepcopy(draw(st.sampled_from(TRICKY_VALUES) | json_values))
        target = _at(instance, path)
        if how == "extra" and isinstance(target, dict):
            target[draw(st.sampled_from(EXTRA_KEYS))] = new
        elif not path:
            instance = new
        elif how == "drop":
            del _at(instance, path[:-1])[path[-1]]
        else:
            _at(instance, path[:-1])[path[-1]] = new
    return instance


def _at(value: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and "T" in value and is_rfc3339_date_time(value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


SLOW_GENERATION = [HealthCheck.too_slow, HealthCheck.data_too_large]


# --- (1) valid inputs are accepted --------------------------------------------------------


def test_the_realistic_input_is_valid() -> None:
    ProposedAction.model_validate(VALID_INPUT["action"])  # the models agree it is an action
    Context.model_validate(VALID_INPUT["context"])
    assert VALIDATOR.is_valid(VALID_INPUT)
    assert VALIDATOR.errors(VALID_INPUT) == []
    assert REFERENCE.is_valid(VALID_INPUT)


@settings(max_examples=50, deadline=None, suppress_health_check=SLOW_GENERATION)
@given(valid_inputs)
def test_generated_valid_inputs_are_accepted(instance: Any) -> None:
    assert VALIDATOR.is_valid(instance)
    assert VALIDATOR.errors(instance) == []


# --- (2) the fast path agrees with jsonschema on everything -------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=SLOW_GENERATION)
@given(mutated_inputs())
def test_fast_path_agrees_on_broken_inputs(instance: Any) -> None:
    assert_agree(VALIDATOR, REFERENCE, instance)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fast_path_agrees_on_arbitrary_json(instance: Any) -> None:
    assert_agree(VALIDATOR, REFERENCE, instance)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("action", "environment"), "prodution"),
        (("action", "requested_at"), "2026-13-01T00:00:00Z"),
        (("action", "requested_at"), "2026-01-01T00:00:00"),
        (("action", "requested_at"), "2026-02-29T00:00:00Z"),
        (("context", "now"), "2024-02-29T23:59:59.5-00:00"),
        (("action", "actor", "trust"), True),
        (("action", "actor", "trust"), 3.0),
        (("action", "actor", "trust"), 3.5),
        (("action", "actor", "trust"), 6),
        (("action", "change", "lines"), False),
        (("action", "reversible"), 1),
        (("action", "cost", "estimated_usd"), True),
        (("action", "blast_radius", "users_share"), 1.0000001),
        (("action", "id"), ""),
        (("action", "approvals", 0, "at"), "2026-01-01 00:00:00Z"),
        (("usage", "spend_usd"), "40"),
        (("usage", "extra"), 1),
    ],
)
def test_fast_path_agrees_on_known_traps(path: tuple[str | int, ...], value: Any) -> None:
    assert_agree(VALIDATOR, REFERENCE, with_change(path, value))


# Small schemas, each aimed at one place where fastjsonschema and jsonschema used to differ.
TRAP_SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer"},
    {"type": "number", "minimum": 1, "maximum": 5},
    {"minimum": 1},  # no type: booleans must not be compared as numbers
    {"enum": [1, "a", None]},
    {"enum": [True, [0], {"a": 1.0}]},
    {"const": False},
    {"uniqueItems": True},
    {"type": ["integer", "null"]},
    {"format": "email"},  # only date-time is checked, by both
    {"format": "date-time"},
    {"contentEncoding": "base64", "contentMediaType": "application/json"},  # annotations only
    {"pattern": "^a$"},  # "a\n": $ matches before a final newline in re.search
    {"pattern": "[$]b"},
    {"pattern": "a\\$"},
    {"$defs": {"S": {"type": "string"}}, "$ref": "#/$defs/S", "minLength": 3},  # $ref + sibling
    {"properties": {"x": {"type": "integer"}}, "additionalProperties": {}, "required": ["y"]},
    {"items": {"type": "integer"}, "contains": {"const": 2}},
    {"properties": {"a": False}, "propertyNames": {"maxLength": 1}},
    {  # recursive: stays a $ref for fastjsonschema, every other $ref is inlined
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "children": {"items": {"$ref": "#/$defs/node"}},
                },
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    },
    {"type": ["object", "integer"], "properties": {"a": {"$ref": "#"}}, "minimum": 2},
    {"$defs": {"a/b": {"type": "integer"}}, "items": {"$ref": "#/$defs/a~1b"}},
    # integral float bounds reach the fast validator as integers: the same comparisons
    {"maximum": 1e12, "minimum": -1e12},
    {"exclusiveMaximum": 5.0, "exclusiveMinimum": 2.0},
    {"maximum": 2.5, "minimum": 1e20},  # a fraction stays a float; 1e20, past 2 ** 53, is exact
    {"maximum": 9007199254740992.0},
]
TRAP_VALUES = st.sampled_from(
    [
        *(True, False, 0, 1, 1.0, 2, 2.0, 3.5, 10**30, None),
        *(5, 5.0, 4.999999999999999, 10**12, 10**12 + 1, 1e12, 1000000000000.0001),
        *(-(10**12) - 1, -1e12, 2**53 + 1, 9007199254740994.0, 10**20 + 1, 1e20),
        *("a", "a\n", "ab\n", "abc", "$b", "a$", "nope", ""),
        *("2026-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00"),
        *([], [1, True], [1, 1.0], [0], [False], [2], [2.5, 2]),
        *({}, {"a": 1}, {"a": 1.0}, {"x": 1.0}, {"a": {"a": 3}}, {"a": {"a": 1}}),
        {"v": 1, "children": [{"v": 2, "children": []}]},
        {"v": 1, "children": [{"v": True}]},
    ]
)


@pytest.mark.parametrize("schema", TRAP_SCHEMAS, ids=lambda schema: json.dumps(schema))
@settings(max_examples=40, deadline=None)
@given(instance=TRAP_VALUES | json_values)
def test_fast_path_agrees_on_trap_schemas(schema: dict[str, Any], instance: Any) -> None:
    assert_agree(InputValidator(schema), reference(schema), instance)


def test_validation_never_mutates_the_input() -> None:
    instance = with_change(("action", "change"), {"type": "code"})  # lines, files have defaults
    before = copy.deepcopy(instance)
    assert VALIDATOR.is_valid(instance)
    assert VALIDATOR.errors(instance) == []
    assert instance == before


def test_building_a_validator_never_mutates_the_schema() -> None:
    schema = input_schema()
    before = copy.deepcopy(schema)
    validator = InputValidator(schema)
    assert schema == before
    schema["properties"]["usage"]["required"] = []  # later edits by the caller change nothing
    assert not validator.is_valid(with_change(("usage", "spend_usd"), drop=True))
    assert validator.errors(with_change(("usage", "spend_usd"), drop=True))


# --- date-time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-02T09:15:00Z",
        "2026-03-02T09:15:00+01:00",
        "2026-03-02T09:15:00.5-08:00",
        "2026-03-02T09:15:00.123456789Z",
        "2026-03-02t09:15:00z",
        "2024-02-29T00:00:00-00:00",
        "2026-12-31T23:59:59+23:59",
    ],
)
def test_rfc3339_accepts(text: str) -> None:
    assert is_rfc3339_date_time(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-13-01T00:00:00Z",  # month 13
        "2026-02-29T00:00:00Z",  # not a leap year
        "2026-04-31T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-01-01T00:00:00",  # no offset
        "2026-01-01 00:00:00Z",  # space, not T
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:60Z",  # leap second: no datetime holds it
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+05:60",
        "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00.Z",
        "20260101T000000Z",
        "2026-W01-1T00:00:00Z",
        "2026-01-01",
        "2026-01-01T00:00:00Z\n",
        "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # full-width digits
        "",
    ],
)
def test_rfc3339_rejects(text: str) -> None:
    assert not is_rfc3339_date_time(text)


def test_rfc3339_leaves_non_strings_to_type() -> None:
    assert is_rfc3339_date_time(20260101)
    assert is_rfc3339_date_time(None)


_DATE_TIME_ONLY = InputValidator(
    {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}
)


def _fast_and_slow(text: str) -> tuple[bool, bool]:
    instance = {"at": text}
    return _DATE_TIME_ONLY.is_valid(instance), not _DATE_TIME_ONLY.errors(instance)


def test_the_compiled_date_time_check_accepts_the_same_calendar() -> None:
    """Every day of years around each leap-year rule (4, 100, 400, year 1, year 0), and
    days 0 and 29 to 32 of every month: the compiled validator's pattern and the Python
    check agree, case and offsets included."""
    import re

    pattern = re.compile(DATE_TIME_PATTERN)
    years = [0, 1, 4, 100, 200, 400, 1600, 1900, 2000, 2023, 2024, 2100, 2400, 9996, 9999]
    for year in years:
        for month in range(14):
            for day in range(33):
                for t, offset in (("T", "Z"), ("t", "z"), ("T", "+23:59"), ("T", "-00:00")):
                    text = f"{year:04d}-{month:02d}-{day:02d}{t}12:34:56.5{offset}"
                    python = is_rfc3339_date_time(text)
                    assert bool(pattern.fullmatch(text)) == python, text
                    if day in (0, 1, 28, 29, 30, 31) or python is False:
                        assert _fast_and_slow(text) == (python, python), text


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?"
        r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?\n?",
        fullmatch=True,
    )
    | st.text(max_size=30)
)
def test_the_compiled_date_time_check_agrees_on_near_misses(text: str) -> None:
    python = is_rfc3339_date_time(text)
    assert _fast_and_slow(text) == (python, python)


def test_a_valid_input_is_checked_without_calling_into_python() -> None:
    """Date-times are matched inside the compiled validator: no Python function runs
    while a valid input with many timestamps is checked."""
    import sys

    validator = InputValidator(INPUT_SCHEMA)
    calls: list[str] = []

    def record(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls.append(frame.f_code.co_name)

    sys.setprofile(record)
    try:
        valid = validator.is_valid(VALID_INPUT)
    finally:
        sys.setprofile(None)
    assert valid
    assert calls == ["is_valid"]  # the method itself, and nothing it calls


# --- (3) errors: paths and messages -------------------------------------------------------


def test_error_for_a_misspelt_enum_member() -> None:
    instance = with_change(("action", "environment"), "prodution")
    assert not VALIDATOR.is_valid(instance)
    assert VALIDATOR.errors(instance) == [
        InputError(
            "action.environment",
            "'prodution' is not one of 'production', 'staging', 'development', 'sandbox'",
            "enum",
        )
    ]


def test_error_for_a_missing_required_property() -> None:
    instance = with_change(("action", "cost", "estimated_usd"), drop=True)
    assert VALIDATOR.errors(instance) == [
        InputError("action.cost", "'estimated_usd' is a required property", "required")
    ]


def test_error_for_a_bad_timestamp_inside_a_list() -> None:
    instance = with_change(("action", "approvals", 0, "at"), "2026-13-01T00:00:00Z")
    assert VALIDATOR.errors(instance) == [
        InputError(
            "action.approvals[0].at", "'2026-13-01T00:00:00Z' is not a 'date-time'", "format"
        )
    ]


def test_error_for_a_boolean_where_an_integer_goes() -> None:
    instance = with_change(("action", "actor", "trust"), True)
    assert VALIDATOR.errors(instance) == [
        InputError("action.actor.trust", "True is not of type 'integer'", "type")
    ]


def test_error_for_an_unexpected_property() -> None:
    instance = with_change(("action", "colour"), "blue")
    assert VALIDATOR.errors(instance) == [
        InputError(
            "action",
            "Additional properties are not allowed ('colour' was unexpected)",
            "additionalProperties",
        )
    ]


def test_every_error_is_listed_sorted_by_path() -> None:
    instance = with_change(("action", "environment"), "prodution")
    instance["action"]["approvals"][0]["at"] = "2026-01-01T00:00:00"
    instance["action"]["actor"]["trust"] = -1
    del instance["context"]["now"]
    instance["usage"]["spend_usd"] = "40"
    assert VALIDATOR.errors(instance) == [
        InputError("action.actor.trust", "-1 is less than the minimum of 0", "minimum"),
        InputError(
            "action.approvals[0].at", "'2026-01-01T00:00:00' is not a 'date-time'", "format"
        ),
        InputError(
            "action.environment",
            "'prodution' is not one of 'production', 'staging', 'development', 'sandbox'",
            "enum",
        ),
        InputError("context", "'now' is a required property", "required"),
        InputError("usage.spend_usd", "'40' is not of type 'number'", "type"),
    ]


def test_error_at_the_root() -> None:
    assert VALIDATOR.errors(42) == [InputError("", "42 is not of type 'object'", "type")]
    assert VALIDATOR.errors({}) == [
        InputError("", "'action' is a required property", "required"),
        InputError("", "'context' is a required property", "required"),
        InputError("", "'usage' is a required property", "required"),
    ]


def test_error_messages_stay_short_and_on_one_line() -> None:
    (error,) = VALIDATOR.errors(with_change(("action",), "line one\n" + "x" * 500))
    assert error == InputError(
        "action", "'line one\\n" + "x" * 66 + "... is not of type 'object'", "type"
    )


def test_error_paths_quote_odd_keys_and_sort_indices_as_numbers() -> None:
    schema = {
        "type": "object",
        "properties": {"a b": {"type": "array", "items": {"type": "integer"}}},
    }
    errors = InputValidator(schema).errors({"a b": ["x"] * 11})
    assert [error.path for error in errors] == [f'["a b"][{index}]' for index in range(11)]


def test_error_as_dict() -> None:
    error = InputError("action.kind", "'jump' is not one of 'rollback'", "enum")
    assert error.to_dict() == {
        "path": "action.kind",
        "message": "'jump' is not one of 'rollback'",
        "keyword": "enum",
    }


# --- schemas the validator refuses --------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "strin"}, "invalid input schema at #/type: "),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "must be draft 2020-12"),
        ({"prefixItems": [{"type": "integer"}]}, "'prefixItems' at #/prefixItems is not supported"),
        ({"properties": {"a": {"multipleOf": 0.1}}}, "'multipleOf' at #/properties/a/multipleOf"),
        ({"$ref": "https://example.com/schema.json"}, "only local $ref"),
        ({"$ref": "#/$defs/Missing"}, "$ref '#/$defs/Missing' at #/$ref points at nothing"),
        ({"$defs": {"a": {"$anchor": "x"}}, "$ref": "#x"}, "'$anchor' at #/$defs/a/$anchor"),
        ({"pattern": "(?m)^a$"}, "multiline flag is not supported"),
    ],
)
def test_invalid_schemas_raise_a_clear_value_error(schema: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError) as raised:
        InputValidator(schema)
    assert reason in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.__suppress_context__ or raised.value.__context__ is None
