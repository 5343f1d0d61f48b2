# ruff: noqa: E501 - the schema reads one property a line
"""``_valid`` holds exactly when ``errors`` is empty, and both say what the validator says.

``decision`` asks ``_valid`` first and evaluates ``errors`` only when it fails, so a
``_valid`` that fails a valid input would fail it closed with no error, and one that
holds for an invalid input would judge it. The inputs here are valid documents with
one value replaced, dropped or added anywhere, for the default pack's schema and for
a schema using every keyword the Rego target checks.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import regopy
import yaml
from conftest import write_pack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from regopy.rego_shared import LogLevel

from aigre_policy.pack import load_pack
from aigre_policy.rego.attach import rego_program
from aigre_policy.rego.engine import set_input

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))

VALUES = st.sampled_from(
    [None, -1, 0, 0.5, 7, 2.5e9, "", "x", "production", "sev1", True, False, [], [1], ["x"],
     {}, {"by": "a", "group": "g", "at": "2025-03-12T10:00:00Z"}, "2025-02-30T10:00:00Z",
     "2025-03-12T10:00:00.123+02:00", "2025-03-12 10:00:00Z", "2024-02-29T23:59:59z"]
)  # fmt: skip


class Judge:
    """The program's ``_valid`` and ``errors``, and the pack's own validator."""

    def __init__(self, pack_path: Path):
        self.pack = load_pack(pack_path)
        program = rego_program(self.pack)
        base = program.roots[0]
        self.entrypoints = (f"{base}/_valid", f"{base}/errors")
        self.rego = regopy.Interpreter()
        self.rego.log_level = LogLevel.NONE
        for path, source in program.modules.items():
            self.rego.add_module(path, source)
        self.rego.add_data(program.data)
        self.bundle = self.rego.build(None, list(self.entrypoints))

    def query(self, entrypoint: str) -> Any:
        text = str(self.rego.query_bundle_entrypoint(self.bundle, entrypoint))
        return None if text == "undefined" else json.loads(text)["expressions"][0]

    def judge(self, document: dict[str, Any]) -> tuple[bool, bool, bool]:
        """Whether ``_valid`` holds, ``errors`` is empty, and the validator finds nothing."""
        set_input(self.rego, document)
        valid = self.query(self.entrypoints[0]) is True
        errors = self.query(self.entrypoints[1])
        native = self.pack.evaluate(document["action"], document["context"], document["usage"])
        return valid, not errors, not (native.fail_closed and native.errors)


class RegorusJudge(Judge):
    """The same questions asked of regorus, which raises where a builtin gets a wrong
    type (rego-cpp is undefined there): a raise fails the test."""

    def __init__(self, pack_path: Path):
        import regorus

        self.pack = load_pack(pack_path)
        program = rego_program(self.pack)
        self.entrypoints = tuple(f"data.{program.package}.{name}" for name in ("_valid", "errors"))
        self.engine = regorus.Engine()
        for path, source in program.modules.items():
            self.engine.add_policy(path, source)
        self.engine.add_data_json(json.dumps(program.data))

    def judge(self, document: dict[str, Any]) -> tuple[bool, bool, bool]:
        self.engine.set_input_json(json.dumps(document))
        valid = json.loads(self.engine.eval_rule_as_json(self.entrypoints[0])) is True
        errors = json.loads(self.engine.eval_rule_as_json(self.entrypoints[1]))
        native = self.pack.evaluate(document["action"], document["context"], document["usage"])
        expected = native.errors if native.fail_closed else []
        # the same errors, listed by path in the native validator's order
        assert {(e["path"], e["keyword"]) for e in errors} == {
            (e["path"], e["keyword"]) for e in expected
        }
        assert list(dict.fromkeys(e["path"] for e in errors)) == list(
            dict.fromkeys(e["path"] for e in expected)
        )
        return valid, not errors, not (native.fail_closed and native.errors)


@cache
def judge(pack_path: Path, engine: str = "rego") -> Judge:
    return RegorusJudge(pack_path) if engine == "regorus" else Judge(pack_path)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a document: keys and indices from the top."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def mutate(document: dict[str, Any], data) -> dict[str, Any]:
    """One value replaced, one key dropped or one key added, anywhere below the roots."""
    document = copy.deepcopy(document)
    places = [p for p in paths(document) if len(p) >= 2]
    where = data.draw(st.sampled_from(places))
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    match data.draw(st.sampled_from(["replace", "drop", "add"])):
        case "replace":
            parent[where[-1]] = data.draw(VALUES)
        case "drop" if isinstance(parent, dict):
            del parent[where[-1]]
        case _ if isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["extra", "id", "kind", "at"]))] = data.draw(VALUES)
        case _:
            parent.append(data.draw(VALUES))
    return document


def fixture(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    return {
        "action": data["action"],
        "context": data.get("context") or {},
        "usage": data.get("usage") or {},
    }


def test_every_fixture_is_valid_in_rego():
    judged = {f.stem: judge(BASELINE).judge(fixture(f)) for f in FIXTURES}
    assert judged == dict.fromkeys(judged, (True, True, True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), st.data())
def test_valid_holds_exactly_when_errors_is_empty(path, data):
    valid, no_errors, native_valid = judge(BASELINE).judge(mutate(fixture(path), data))
    assert valid == no_errors == native_valid


# ---------------------------------------------------------------- every keyword

SCHEMA = {
    "$defs": {
        "Level": {"type": "integer", "minimum": 1, "maximum": 5},
        "Tagged": {"type": "object", "required": ["tag"], "properties": {"tag": {"const": "t"}}},
    },
    "type": "object",
    "required": ["action", "context", "usage"],
    "properties": {
        "action": {
            "type": "object",
            "required": ["kind", "level"],
            "additionalProperties": False,
            "properties": {
                "kind": {"type": "string", "enum": ["a", "b"]},
                "level": {"$ref": "#/$defs/Level"},
                "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]+$", "maxLength": 8},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "note": {"type": ["string", "null"]},
                "count": {"type": ["integer", "string"]},
                "size": {"minimum": 2},
                "words": {"items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 3},
                "tagged": {"allOf": [{"$ref": "#/$defs/Tagged"}, {"properties": {"n": {"type": "number"}}}]},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
                "never": False,
                "loose": {"required": ["x"], "properties": {"x": {"type": "boolean"}}},
                "at": {"type": "string", "format": "date-time"},
            },
        },
        "context": {"type": "object"},
        "usage": {"type": "object"},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def keywords_pack(tmp_path_factory) -> Path:
    return write_pack(
        tmp_path_factory.mktemp("keywords") / "pack",
        'rule r {\n  deny when action.kind == "a"\n  because "kind a"\n}\n',
        manifest={"name": "keywords", "input_schema": "schema.json"},
        files={"schema.json": SCHEMA},
    )


def test_every_keyword_has_a_positive_rego_test(keywords_pack):
    program = rego_program(load_pack(keywords_pack))
    assert program.ok, program.diagnostics


VALID = {
    "action": {
        "kind": "a",
        "level": 3,
        "code": "AB-12",
        "ratio": 0.5,
        "note": None,
        "count": "7",
        "size": "text",
        "words": ["w"],
        "tagged": {"tag": "t", "n": 1},
        "labels": {"x": "abc"},
        "loose": {"x": True},
        "at": "2025-03-12T10:00:00Z",
    },
    "context": {},
    "usage": {},
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_valid_follows_every_keyword(keywords_pack, data):
    document = VALID
    for _ in range(data.draw(st.integers(0, 2))):
        document = mutate(document, data)
    valid, no_errors, native_valid = judge(keywords_pack).judge(document)
    assert valid == no_errors == native_valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_keyword_on_regorus_says_what_the_validator_says(keywords_pack, data):
    """Wrong types at every keyword: no builtin raises, and errors come in native order."""
    document = VALID
    for _ in range(data.draw(st.integers(0, 3))):
        document = mutate(document, data)
    valid, no_errors, native_valid = judge(keywords_pack, "regorus").judge(document)
    assert valid == no_errors == native_valid


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), st.data())
def test_the_default_schema_on_regorus_says_what_the_validator_says(path, data):
    valid, no_errors, native_valid = judge(BASELINE, "regorus").judge(mutate(fixture(path), data))
    assert valid == no_errors == native_valid


def test_valid_documents_are_valid_in_rego(keywords_pack):
    optional = (
        "code",
        "ratio",
        "note",
        "count",
        "size",
        "words",
        "tagged",
        "labels",
        "loose",
        "at",
    )
    bare = {**VALID, "action": {k: v for k, v in VALID["action"].items() if k not in optional}}
    variants = [
        VALID,
        bare,  # absent optional values read as values that pass
        {**VALID, "action": {**VALID["action"], "note": "n", "count": 2, "size": 2.5}},
        {**VALID, "action": {**VALID["action"], "words": ["a", "b", "c"], "labels": {}}},
        {**VALID, "action": {**VALID["action"], "tagged": {"tag": "t"}, "loose": {"x": False}}},
    ]
    assert [judge(keywords_pack).judge(v) for v in variants] == [(True, True, True)] * len(variants)
