"""One meaning for every input: a caller's value is judged as its JSON data, or fails closed.

``Pack.evaluate`` (and so ``Gate.check``) takes any Python value. Whatever container or
subclass holds the data, every engine must judge exactly what its JSON round trip holds; a
value JSON cannot carry, or an input past the evaluation bounds, gets the pack's fail-closed
verdict naming its path. Never an exception, never a looser verdict.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from collections import OrderedDict, UserDict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from enum import IntEnum, StrEnum
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from conftest import fixture_input
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy import interpreter
from aigre_policy.diagnostics import CompileError
from aigre_policy.gate import FakeClock, Gate, StaticContext
from aigre_policy.inputs import builtin_schema
from aigre_policy.pack import EvaluationError, Pack, load_pack
from aigre_policy.testing.strategies import collect_hints, documents

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))
BUCKET = ROOT / "fixtures" / "actions" / "bucket-made-public.yaml"


@cache
def native() -> Pack:
    return load_pack(BASELINE)


@cache
def rego() -> Pack:
    return load_pack(BASELINE, engine="rego")


@pytest.fixture(scope="module", autouse=True)
def _release_engines() -> Iterator[None]:
    """Free the Rego engine while the interpreter is whole (regopy cleans up in __del__)."""
    yield
    rego.cache_clear()


def judged(verdict: Any) -> dict[str, Any]:
    """What a verdict decides and why, without ids and timings."""
    return {
        "decision": verdict.decision,
        "fail_closed": verdict.fail_closed,
        "default_applied": verdict.default_applied,
        "fired": verdict.fired,
        "warnings": verdict.warnings,
        "approvers": verdict.approvers,
        "escalate_to": verdict.escalate_to,
        "errors": verdict.errors,
        "input_digest": verdict.input_digest,
    }


def evaluate(pack: Pack, document: Mapping[str, Any]) -> Any:
    return pack.evaluate(document["action"], document["context"], document["usage"])


# -- wrappers: the same JSON data in other Python clothes ---------------------------------------


class Text(str):
    pass


class Whole(int):
    pass


class Real(float):
    pass


class Items(list):
    pass


class Members(Mapping):
    """A read-only mapping that is no dict at all."""

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


MAPPINGS: tuple[Callable[[dict[str, Any]], Any], ...] = (
    dict,
    OrderedDict,
    MappingProxyType,
    UserDict,
    Members,
)
SEQUENCES: tuple[Callable[[list[Any]], Any], ...] = (list, tuple, Items)


def wrapped(value: Any, pick: Callable[[tuple[Any, ...]], Any]) -> Any:
    """``value`` with every container and scalar in a wrapper ``pick`` chooses."""
    if isinstance(value, dict):
        members = {pick((str, Text))(k): wrapped(v, pick) for k, v in value.items()}
        return pick(MAPPINGS)(members)
    if isinstance(value, list):
        return pick(SEQUENCES)([wrapped(v, pick) for v in value])
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return pick((str, Text))(value)
    if isinstance(value, int):
        return pick((int, Whole))(value)
    if isinstance(value, float):
        return pick((float, Real))(value)
    raise AssertionError(f"not JSON data: {value!r}")


def only(kind: Callable[..., Any]) -> Callable[[tuple[Any, ...]], Any]:
    """A ``pick`` that wraps every mapping in ``kind`` and leaves the rest as it is."""
    return lambda choices: kind if choices is MAPPINGS else choices[0]


# -- the measured fail-open: a mapping that is not exactly dict ---------------------------------


def test_an_ordered_dict_inside_the_action_is_judged_as_its_data() -> None:
    document = fixture_input(BUCKET)
    plain = evaluate(native(), document)
    assert plain.decision == "deny"
    action = {**document["action"], "data": OrderedDict(document["action"]["data"])}
    verdict = native().evaluate(action, document["context"], document["usage"])
    assert judged(verdict) == judged(plain)


@pytest.mark.parametrize("mapping", MAPPINGS[1:], ids=lambda m: m.__name__)
def test_every_fixture_gets_the_same_verdict_whatever_mapping_holds_it(mapping) -> None:
    looser = []
    for path in FIXTURES:
        document = fixture_input(path)
        plain = evaluate(native(), document)
        verdict = evaluate(native(), wrapped(document, only(mapping)))
        if judged(verdict) != judged(plain):
            looser.append((path.stem, plain.decision, verdict.decision))
    assert looser == []


# -- each value JSON cannot carry fails closed, naming its path ---------------------------------


def bucket_with(change: Callable[[dict[str, Any]], None]) -> tuple[dict, dict, dict]:
    document = copy.deepcopy(fixture_input(BUCKET))
    change(document["action"])
    return document["action"], document["context"], document["usage"]


def assert_fails_closed_at(verdict: Any, path: str) -> None:
    assert verdict.decision == native().fail_closed
    assert verdict.fail_closed
    assert [(e["kind"], e["path"]) for e in verdict.errors] == [("input", path)]
    json.loads(verdict.to_json())  # the verdict has a JSON form


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def self_referencing() -> list[Any]:
    value: list[Any] = ["checkout-api"]
    value.append(value)
    return value


NOT_JSON: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "datetime": (
        lambda a: a.__setitem__("requested_at", datetime(2026, 1, 1, tzinfo=UTC)),
        "action.requested_at",
    ),
    "date": (lambda a: a.__setitem__("requested_at", date(2026, 1, 1)), "action.requested_at"),
    "set": (
        lambda a: a["blast_radius"].__setitem__("services", {"x"}),
        "action.blast_radius.services",
    ),
    "bytes": (lambda a: a.__setitem__("target", b"assets"), "action.target"),
    "integer key": (lambda a: a["data"].__setitem__(1, "x"), "action.data"),
    "self-referencing list": (
        lambda a: a["blast_radius"].__setitem__("services", self_referencing()),
        "action.blast_radius.services[1]",
    ),
    "nan": (
        lambda a: a["cost"].__setitem__("estimated_usd", float("nan")),
        "action.cost.estimated_usd",
    ),
    "infinity": (
        lambda a: a["cost"].__setitem__("estimated_usd", float("inf")),
        "action.cost.estimated_usd",
    ),
    "integer of 4301 digits": (
        lambda a: a["cost"].__setitem__("estimated_usd", 10**4300),
        "action.cost.estimated_usd",
    ),
    "an object": (lambda a: a.__setitem__("target", object()), "action.target"),
}


@pytest.mark.parametrize("case", NOT_JSON, ids=str)
def test_a_value_json_cannot_carry_fails_closed_naming_its_path(case: str) -> None:
    change, path = NOT_JSON[case]
    assert_fails_closed_at(native().evaluate(*bucket_with(change)), path)


@pytest.mark.parametrize("case", NOT_JSON, ids=str)
def test_strict_mode_raises_the_fail_closed_verdict_instead(case: str) -> None:
    change, path = NOT_JSON[case]
    with pytest.raises(EvaluationError) as raised:
        native().evaluate(*bucket_with(change), strict=True)
    assert raised.value.verdict.errors[0]["path"] == path


def test_a_1000_deep_nesting_fails_closed_past_the_depth_bound() -> None:
    verdict = native().evaluate(*bucket_with(lambda a: a["data"].__setitem__("x", nested(1000))))
    assert verdict.fail_closed
    assert verdict.errors[0]["path"].startswith("action.data.x[0][0]")
    assert "deeper than 32" in verdict.errors[0]["message"]
    json.loads(verdict.to_json())


def test_a_100000_deep_nesting_fails_closed_and_does_not_crash_the_process() -> None:
    """The compiled schema validator overflows its stack on it: it must never see such input."""
    script = (
        "import sys, yaml\n"
        "from aigre_policy import load_pack\n"
        "case = yaml.safe_load(open(sys.argv[1]))\n"
        "deep = []\n"
        "for _ in range(100_000):\n"
        "    deep = [deep]\n"
        "case['action']['data']['x'] = deep\n"
        "v = load_pack(sys.argv[2]).evaluate(case['action'], case['context'], case.get('usage'))\n"
        "print(v.decision, v.fail_closed)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(BUCKET), str(BASELINE)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"{native().fail_closed} True")


class Flavour(StrEnum):
    PUBLIC = "public"


class Level(IntEnum):
    TEN = 10


SUBCLASSES: dict[str, Callable[[dict[str, Any]], None]] = {
    "str subclass": lambda a: a.__setitem__("target", Text(a["target"])),
    "StrEnum": lambda a: a.__setitem__("environment", Text(a["environment"])),
    "int subclass": lambda a: a["actor"].__setitem__("trust", Whole(a["actor"]["trust"])),
    "IntEnum": lambda a: a["cost"].__setitem__("estimated_usd", Level.TEN),
    "float subclass": lambda a: a["cost"].__setitem__("estimated_usd", Real(10.0)),
    "tuple": lambda a: a["blast_radius"].__setitem__(
        "services", tuple(a["blast_radius"]["services"])
    ),
}


@pytest.mark.parametrize("case", SUBCLASSES, ids=str)
def test_a_subclass_is_judged_as_the_value_json_writes_for_it(case: str) -> None:
    action, context, usage = bucket_with(SUBCLASSES[case])
    as_json = json.loads(json.dumps({"action": action, "context": context, "usage": usage}))
    verdict = native().evaluate(action, context, usage)
    assert judged(verdict) == judged(evaluate(native(), as_json))
    assert not verdict.fail_closed


def test_the_callers_value_is_left_as_it_was() -> None:
    action, context, usage = bucket_with(lambda a: a.__setitem__("data", OrderedDict(a["data"])))
    before = repr(action)
    native().evaluate(action, context, usage)
    assert repr(action) == before and type(action["data"]) is OrderedDict


def test_a_fault_in_the_schema_validator_fails_closed() -> None:
    pack = load_pack(BASELINE)

    def broken(document: Any) -> bool:
        raise ValueError("Unsupported type: 'thing'")

    pack._is_valid = broken  # type: ignore[method-assign]
    verdict = pack.evaluate(*bucket_with(lambda a: None))
    assert verdict.fail_closed and verdict.decision == pack.fail_closed
    assert [e["kind"] for e in verdict.errors] == ["engine"]
    with pytest.raises(EvaluationError):
        pack.evaluate(*bucket_with(lambda a: None), strict=True)


def test_strict_mode_still_names_schema_errors() -> None:
    with pytest.raises(EvaluationError, match="input breaks the schema"):
        native().evaluate(*bucket_with(lambda a: a.pop("target")), strict=True)


# -- the evaluation bounds --------------------------------------------------------------------


def test_twenty_thousand_services_against_an_incident_fail_closed_fast() -> None:
    """Measured at 14 s a decision before the bound: 20k x 20k comparisons."""
    services = [f"svc-{i}" for i in range(20_000)]
    action, context, usage = bucket_with(
        lambda a: a.update(
            kind="config_change",
            environment="production",
            actor={"kind": "llm", "id": "agent-7", "trust": 3},
            blast_radius={"users_share": 0.5, "services": services},
        )
    )
    context = {
        **context,
        "incidents_open": [
            {"id": "INC-1", "severity": "sev1", "services": [f"inc-{i}" for i in range(20_000)]}
        ],
    }
    for pack in (native(), rego()):
        started = time.perf_counter()
        verdict = pack.evaluate(action, context, usage)
        assert time.perf_counter() - started < 30  # unbounded, this took 14 s per engine
        assert verdict.fail_closed
        assert verdict.errors[0]["path"] == "action.blast_radius.services"
        assert verdict.errors[0]["keyword"] == "bounds"
    with pytest.raises(ValueError, match="evaluation bound"):
        interpreter.fired(native().program, native().envelopes, action, context, usage)


def unbounded_baseline(tmp_path: Path) -> Pack:
    """The default pack on its schema with no ``maxItems`` on the services touched, so
    that only the engine-wide evaluation bound limits the list."""
    root = tmp_path / "unbounded"
    shutil.copytree(BASELINE, root)
    schema = copy.deepcopy(builtin_schema("builtin:proposed-action/v1"))
    for part in schema.get("$defs", {}).values():
        part.get("properties", {}).get("services", {}).pop("maxItems", None)
    (root / "schema.json").write_text(json.dumps(schema))
    manifest = (root / "pack.yaml").read_text()
    manifest = manifest.replace(
        "input_schema: builtin:proposed-action/v1", "input_schema: schema.json"
    )
    (root / "pack.yaml").write_text(manifest)
    return load_pack(root)


def test_a_list_at_the_bound_is_judged_and_one_past_it_fails_closed(tmp_path: Path) -> None:
    def services(n: int) -> Callable[[dict[str, Any]], None]:
        return lambda a: a["blast_radius"].__setitem__("services", [f"s{i}" for i in range(n)])

    pack = unbounded_baseline(tmp_path)
    assert not pack.evaluate(*bucket_with(services(1000))).fail_closed
    assert_fails_closed_at(
        pack.evaluate(*bucket_with(services(1001))), "action.blast_radius.services"
    )
    # the default pack's own schema bounds the list well before the engine does
    assert_fails_closed_at(
        native().evaluate(*bucket_with(services(129))), "action.blast_radius.services"
    )


# -- every engine, any wrapper ----------------------------------------------------------------


def interpreted(pack: Pack, document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The reference interpreter's fired rules and their messages."""
    args = (pack.envelopes, document["action"], document["context"], document["usage"])
    return [
        (pack.rules[i].id, interpreter.message(pack.rules[i], *args))
        for i in interpreter.fired(pack.program, *args)
    ]


PLAIN_DOCUMENTS = [fixture_input(path) for path in FIXTURES]


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.sampled_from(PLAIN_DOCUMENTS), st.data())
def test_wrapped_fixtures_get_the_plain_verdict_on_every_engine(document, data) -> None:
    clothed = wrapped(document, lambda choices: data.draw(st.sampled_from(choices)))
    assert judged(evaluate(native(), clothed)) == judged(evaluate(native(), document))
    assert judged(evaluate(rego(), clothed)) == judged(evaluate(rego(), document))
    assert interpreted(native(), clothed) == interpreted(native(), document)


def short_numbers(value: Any) -> Any:
    """Numbers rego-cpp reads and prints exactly (as in test_rego_equivalence)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return round(max(-1e9, min(1e9, value)) * 4) / 4
    if isinstance(value, int):
        return max(-(10**12), min(10**12, value))
    if isinstance(value, dict):
        return {k: short_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [short_numbers(v) for v in value]
    return value


@cache
def generated_documents() -> st.SearchStrategy[dict[str, Any]]:
    hints = collect_hints(native().program, native().envelopes)
    return documents(native().input_schema, hints).map(short_numbers)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_wrapped_generated_inputs_get_the_plain_verdict_on_every_engine(data) -> None:
    document = data.draw(generated_documents())
    clothed = wrapped(document, lambda choices: data.draw(st.sampled_from(choices)))
    plain = evaluate(native(), document)
    assert judged(evaluate(native(), clothed)) == judged(plain)
    assert judged(evaluate(rego(), clothed)) == judged(evaluate(rego(), document))
    if not plain.fail_closed:
        assert interpreted(native(), clothed) == interpreted(native(), document)


# -- the gate ---------------------------------------------------------------------------------


def gate_verdict(document: Mapping[str, Any], action: Any, log: Path) -> Any:
    context = {k: v for k, v in document["context"].items() if k != "now"}
    gate = Gate(
        native(),
        ledger="sqlite:///:memory:",
        log=log,
        clock=FakeClock(document["context"]["now"]),
        context=StaticContext(
            change_freezes=tuple(context.get("change_freezes", ())),
            error_budget_remaining=context.get("error_budget_remaining"),
            incidents_open=tuple(context.get("incidents_open", ())),
        ),
    )
    return gate.check(action)


@pytest.mark.parametrize(
    "mapping", [OrderedDict, MappingProxyType, Members], ids=lambda m: m.__name__
)
def test_the_gate_judges_a_wrapped_action_as_the_plain_one(mapping, tmp_path: Path) -> None:
    differ = []
    for path in FIXTURES:
        document = fixture_input(path)
        plain = gate_verdict(document, document["action"], tmp_path / f"{path.stem}.jsonl")
        clothed = gate_verdict(
            document, wrapped(document["action"], only(mapping)), tmp_path / f"{path.stem}-w.jsonl"
        )
        if (clothed.decision, clothed.rule_ids) != (plain.decision, plain.rule_ids):
            differ.append((path.stem, plain.decision, clothed.decision))
    assert differ == []


def test_the_gate_judges_a_wrapped_context_as_the_plain_one(tmp_path: Path) -> None:
    """A context provider is the embedding tool's code: whatever mapping it returns reads
    as its JSON data, for the pack and for the log alike."""
    differ = []
    for path in FIXTURES:
        document = fixture_input(path)
        world = {k: v for k, v in document["context"].items() if k != "now"}
        verdicts = []
        for n, provided in enumerate((world, wrapped(world, only(MappingProxyType)))):
            gate = Gate(
                native(),
                ledger="sqlite:///:memory:",
                log=tmp_path / f"{path.stem}-{n}.jsonl",
                clock=FakeClock(document["context"]["now"]),
                context=lambda action, now, provided=provided: provided,
            )
            verdicts.append(gate.check(document["action"]))
        plain, clothed = verdicts
        if (clothed.decision, clothed.rule_ids) != (plain.decision, plain.rule_ids):
            differ.append((path.stem, plain.decision, clothed.decision))
    assert differ == []


RECURSIVE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["action", "context"],
    "$defs": {"node": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
    "properties": {
        "action": {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"type": "string"}, "tree": {"$ref": "#/$defs/node"}},
        },
        "context": {"type": "object"},
    },
}


def test_a_recursive_schema_is_refused_before_its_validator_could_overflow(new_pack) -> None:
    """The compiled validator follows a recursive ``$ref`` as deep as the input goes and
    overflowed its stack (a segfault) at about 100 000 levels. A recursive ``$ref`` is now
    refused when the pack compiles (E604: the Rego engines cannot check it alike), so no
    pack's validator ever meets such an input; the evaluation bounds stop deep input first
    for every schema that compiles (tests above)."""
    pack = new_pack(
        'rule t {\n  deny when action.kind == "drop"\n}\n',
        manifest={"input_schema": "schema.json"},
        files={"schema.json": RECURSIVE_SCHEMA},
    )
    with pytest.raises(CompileError) as refused:
        load_pack(pack)
    assert [d.code for d in refused.value.diagnostics] == ["E604"]
