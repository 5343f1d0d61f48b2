"""Rego any Rego engine loads: every bundle in rego-cpp (regopy) and Microsoft's regorus.

The emitted program must load unchanged in both, agree with native on every fixture,
print numbers as native does, list input errors in native's order, never lean on a
builtin error being undefined (regorus raises, as OPA does with strict builtin errors),
and fail closed on numbers an engine cannot hold exactly.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import regopy
import regorus
import yaml
from conftest import comparable_verdict as comparable
from hypothesis import given, settings
from hypothesis import strategies as st
from regopy.rego_shared import LogLevel

from aigre_policy.pack import Pack, load_pack
from aigre_policy.rego.attach import rego_program
from aigre_policy.rego.bundle import PackIdentity, read_bundle, write_bundle
from aigre_policy.rego.emit import RegoProgram
from aigre_policy.rego.engine import EXACT, TINY, RegopyEngine, RegorusEngine
from aigre_policy.rego.layout import MAX_COLUMNS
from aigre_policy.rego.lib import library
from aigre_policy.runtime import fmt

ROOT = Path(__file__).resolve().parent.parent
PACKS = sorted(p.parent for p in (ROOT / "policy_packs").glob("*/pack.yaml"))
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))
ENGINES = ("rego", "regorus")


def case(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    return {
        "action": data["action"],
        "context": data.get("context") or {},
        "usage": data.get("usage") or {},
    }


@cache
def packs(path: Path) -> dict[str, Pack]:
    return {engine: load_pack(path, engine=engine) for engine in ("native", *ENGINES)}


# ---------------------------------------------------------------- a pack that stretches lines

LONG_WORDS = " ".join(f"word{i}" for i in range(400))  # about 3,600 characters
LONG_TAGS = [f"tag-{i:03d}" for i in range(150)]


def long_pack(new_pack) -> Path:
    """Long messages, titles and enums: the lines regorus would refuse unbroken."""
    kinds = [f"kind-{i:03d}-{'x' * 20}" for i in range(80)]
    schema = {
        "type": "object",
        "required": ["action", "context", "usage"],
        "properties": {
            "action": {
                "type": "object",
                "required": ["kind", "note"],
                "properties": {
                    "kind": {"type": "string", "enum": kinds},
                    "note": {"type": "string"},
                    "size": {"type": "number"},
                },
            },
            "context": {"type": "object"},
            "usage": {"type": "object"},
        },
    }
    policy = f"""
    rule long-one {{
      title: "{LONG_WORDS}"
      category: risk
      tags: {json.dumps(LONG_TAGS)}
      deny when action.kind in {json.dumps(kinds[:60])} and action.note != "{LONG_WORDS}"
      because "{LONG_WORDS} {{action.kind}} {{action.size ?? 0}} {LONG_WORDS}"
    }}
    """
    return new_pack(
        policy,
        manifest={"input_schema": "schema.json"},
        files={"schema.json": schema},
        name="long",
    )


LONG_INPUT = {
    "action": {"kind": "kind-007-xxxxxxxxxxxxxxxxxxxx", "note": "n", "size": 1.25},
    "context": {},
    "usage": {},
}


# ---------------------------------------------------------------- loading


def every_program(new_pack) -> list[RegoProgram]:
    from test_rego_equivalence import CONSTRUCTS

    paths = [*PACKS, new_pack(CONSTRUCTS, name="constructs"), long_pack(new_pack)]
    return [rego_program(load_pack(path)) for path in paths]


def bundle_modules(program: RegoProgram) -> tuple[dict[str, str], dict[str, Any]]:
    """The modules and data as the built bundle holds them (what OPA would load)."""
    blob = write_bundle(program, PackIdentity("p", "1.0.0", "digest"), "test")
    bundle = read_bundle(blob)
    return {m.path: m.source for m in bundle.modules}, bundle.data


def test_every_bundle_loads_unchanged_in_rego_cpp_and_regorus(new_pack):
    document = case(FIXTURES[0])
    for program in every_program(new_pack):
        modules, data = bundle_modules(program)
        query = program.query
        engine = regorus.Engine()
        for path, source in modules.items():
            engine.add_policy(path, source)
        engine.add_data_json(json.dumps(data))
        engine.set_input_json(json.dumps(document))
        by_regorus = json.loads(engine.eval_rule_as_json(query))
        rego = regopy.Interpreter()
        rego.log_level = LogLevel.NONE
        for path, source in modules.items():
            rego.add_module(path, source)
        rego.add_data(data)
        rego.set_input_term(json.dumps(document))
        by_rego_cpp = json.loads(str(rego.query(query)))["expressions"][0]
        assert isinstance(by_regorus, dict) and "decision" in by_regorus, program.package
        assert by_regorus["decision"] == by_rego_cpp["decision"], program.package


def test_no_emitted_line_is_over_1024_columns(new_pack):
    programs = every_program(new_pack)
    longest = max(
        (len(line), path)
        for program in programs
        for path, source in program.modules.items()
        for line in source.splitlines()
    )
    assert longest[0] <= MAX_COLUMNS, longest
    assert len(LONG_WORDS) > MAX_COLUMNS  # the long pack's lines had to be broken


def test_broken_lines_mean_what_the_long_ones_meant(new_pack):
    path = long_pack(new_pack)
    native = load_pack(path)
    expected = native.evaluate(LONG_INPUT["action"], LONG_INPUT["context"], LONG_INPUT["usage"])
    assert expected.decision == "deny" and LONG_WORDS in expected.fired[0]["message"]
    for engine in ENGINES:
        verdict = load_pack(path, engine=engine).evaluate(
            LONG_INPUT["action"], LONG_INPUT["context"], LONG_INPUT["usage"]
        )
        assert comparable(verdict) == comparable(expected), engine
    # the title folded in the METADATA block reads back whole
    source = next(
        text for p, text in rego_program(native).modules.items() if p.endswith("main.rego")
    )
    block = re.search(r"# METADATA\n((?:#.*\n)+)", source)
    assert block is not None
    metadata = yaml.safe_load(re.sub(r"^# ?", "", block.group(1), flags=re.MULTILINE))
    assert metadata["title"] == LONG_WORDS
    assert metadata["custom"]["tags"] == LONG_TAGS


_RULE_HEAD = re.compile(r"^(?:default\s+)?([a-z_][a-z0-9_]*)\b", re.MULTILINE)
_IMPORT = re.compile(r"^import\s+data\.[\w.]*?\.?(\w+)(?:\s+as\s+(\w+))?\s*$", re.MULTILINE)
_SOME = re.compile(r"\b(?:some|every)\s+([a-z_]\w*)(?:\s*,\s*([a-z_]\w*))?")
_ASSIGNED = re.compile(r"(?<![\w.\]\"])([a-z_]\w*)\s*:=")
_HEAD = re.compile(r"^(?:default\s+)?[a-z_]\w*(?:\([^)]*\))?(?:\[[^\]]*\])?\s*(?::=|=|contains)")
_PARAMS = re.compile(r"^([a-z_]\w*)\(([^)]*)\)", re.MULTILINE)


def _code(source: str) -> str:
    """``source`` without comments and string literals (names in them are not code)."""
    source = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', source)
    return re.sub(r"#.*", "", source)


def locals_and_names(source: str) -> tuple[set[str], set[str]]:
    """The rule and function names a module defines, and the local names it declares."""
    code = _code(source)
    names = {m.group(1) for m in _RULE_HEAD.finditer(code)} - {"package", "import", "default"}
    names |= {m.group(2) or m.group(1) for m in _IMPORT.finditer(code)}
    declared = {name for m in _SOME.finditer(code) for name in m.groups() if name}
    for line in code.splitlines():
        body = _HEAD.sub("", line)  # a rule's own name is no local
        declared |= {m.group(1) for m in _ASSIGNED.finditer(body)}
    for m in _PARAMS.finditer(code):
        params = (p.strip() for p in m.group(2).split(","))
        declared |= {p for p in params if re.fullmatch(r"[a-z_]\w*", p)}
    return names, declared - {"_"}


def test_the_scanner_sees_a_local_shadowing_a_function():
    source = "package x\n\nt(x) := x\n\nf(types) := [1 | some t in types]\n"
    names, declared = locals_and_names(source)
    assert "t" in names & declared


def test_no_local_name_shadows_a_rule_or_function_of_its_package(new_pack):
    for program in every_program(new_pack):
        by_package: dict[str, set[str]] = {}
        sources = {p: s for p, s in program.modules.items() if "/custom/" not in p}
        for source in sources.values():
            package = re.search(r"^package\s+(\S+)", source, re.MULTILINE).group(1)
            by_package.setdefault(package, set()).update(locals_and_names(source)[0])
        for path, source in sources.items():
            package = re.search(r"^package\s+(\S+)", source, re.MULTILINE).group(1)
            _, declared = locals_and_names(source)
            assert not declared & by_package[package], (path, declared & by_package[package])


# ---------------------------------------------------------------- agreement on the fixtures


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path", PACKS, ids=lambda p: p.name)
def test_every_fixture_agrees_with_native(path, engine):
    native, other = packs(path)["native"], packs(path)[engine]
    for fixture in FIXTURES:
        document = case(fixture)
        expected = native.evaluate(**document)
        verdict = other.evaluate(**document)
        assert comparable(verdict) == comparable(expected), fixture.name


# ---------------------------------------------------------------- the number formatter


@cache
def formatter(engine: str) -> Any:
    modules = {
        "lib.rego": "package t.lib\n" + library(["lib.num(x)"]),
        "q.rego": "package t\n\nimport data.t.lib\n\nout := lib.num(input.v)\n",
    }
    if engine == "regorus":
        regorus_engine = regorus.Engine()
        for path, source in modules.items():
            regorus_engine.add_policy(path, source)
        return regorus_engine
    rego = regopy.Interpreter()
    rego.log_level = LogLevel.NONE
    for path, source in modules.items():
        rego.add_module(path, source)
    return rego


def printed(engine: str, value: float) -> str | None:
    """What ``lib.num`` prints for ``value`` on ``engine``; ``None`` when it has no value."""
    document = json.dumps({"v": value})
    if engine == "regorus":
        found = formatter(engine)
        found.set_input_json(document)
        result = json.loads(found.eval_rule_as_json("data.t.out"))
        return None if result == "<undefined>" else result
    rego = formatter(engine)
    rego.set_input_term(document)
    output = rego.query("data.t.out")
    return None if str(output) == "undefined" else json.loads(str(output))["expressions"][0]


NUMBERS = [
    0, -0.0, 7, -7, 12.0, 999999999999999, -999999999999999, 0.5, -2.5, 0.1, -0.1, 0.2,
    1 / 3, -2 / 3, 0.0001, 0.00012, 1e-05, -1.5e-05, 1.234e-10, 1e-300, 123456.789,
    -0.001, 999999999999999.9, 1234567890123.5, 3.14159, 2.5e-07, 100.25,
]  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_the_formatter_prints_numbers_as_native_messages_do(engine):
    for value in NUMBERS:
        assert printed(engine, value) == fmt(value), value


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("value", [1e15, -1e15, 2**52, 1e15 + 2])
def test_an_integral_number_past_10_to_15_has_no_text(engine, value):
    """Native prints an integer with every digit, a float as 1000000000000000.0 or 1e+16:
    no engine knows which it holds, so the formatter has no value and the rule's record
    fails closed."""
    assert printed(engine, value) is None


def test_regorus_prints_numbers_that_need_17_digits():
    for value in (0.30000000000000004, 5e-324, 2.2250738585072014e-308, 1.0000000000000002):
        assert printed("regorus", value) == fmt(value)


finite = st.floats(
    min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False, allow_subnormal=False
).filter(lambda v: not v.is_integer() or abs(v) < 1e15)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(finite)
def test_any_number_prints_as_native_on_regorus(value):
    assert printed("regorus", value) == fmt(value)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(finite.filter(lambda v: v == 0 or (abs(v) >= TINY and float(f"{v:.16g}") == v)))
def test_any_number_rego_cpp_holds_prints_as_native_there(value):
    assert printed("rego", value) == fmt(value)


# ---------------------------------------------------------------- numbers an engine cannot hold


def constructs(new_pack) -> Path:
    """The every-construct pack on the builtin schema with costs unbounded: the tests below
    carry numbers past what a real cost may be to the Rego engines' number limits."""
    from test_rego_equivalence import CONSTRUCTS

    from aigre_policy.inputs import builtin_schema

    schema = builtin_schema("builtin:proposed-action/v1")
    for name in ("estimated_usd", "recurring_monthly_usd"):
        schema["$defs"]["Cost"]["properties"][name].pop("maximum", None)
    return new_pack(
        CONSTRUCTS,
        name="constructs",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": schema},
    )


def with_cost(value: float) -> dict[str, Any]:
    from conftest import CONTEXT, _action

    action = _action(cost={"estimated_usd": value}, target="pay-db")
    return {"action": action, "context": dict(CONTEXT), "usage": {}}


def message_of(verdict, rule_id: str) -> str:
    return next(r["message"] for r in verdict.fired if r["id"] == rule_id)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_number_past_2_to_53_fails_closed_and_says_where(new_pack, engine):
    path = constructs(new_pack)
    document = with_cost(float(EXACT))
    assert not load_pack(path).evaluate(**document).fail_closed
    verdict = load_pack(path, engine=engine).evaluate(**document)
    assert verdict.fail_closed and verdict.decision != "allow"
    assert "9007199254740992.0 at action.cost.estimated_usd" in verdict.errors[0]["message"]


def test_a_number_needing_17_digits_fails_closed_on_rego_cpp_and_agrees_on_regorus(new_pack):
    path = constructs(new_pack)
    document = with_cost(20.000000000000004)
    native = load_pack(path).evaluate(**document)
    assert "20.000000000000004" in message_of(native, "arithmetic-and-numbers")
    assert comparable(load_pack(path, engine="regorus").evaluate(**document)) == comparable(native)
    on_rego_cpp = load_pack(path, engine="rego").evaluate(**document)
    assert on_rego_cpp.fail_closed and "17 significant digits" in on_rego_cpp.errors[0]["message"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_message_number_past_10_to_15_fails_closed_naming_the_rule(new_pack, engine):
    path = constructs(new_pack)
    document = with_cost(2e15)
    native = load_pack(path).evaluate(**document)
    assert not native.fail_closed
    assert "2000000000000000.0" in message_of(native, "arithmetic-and-numbers")
    verdict = load_pack(path, engine=engine).evaluate(**document)
    assert verdict.fail_closed and verdict.decision != "allow"
    assert "arithmetic-and-numbers held but its message" in verdict.errors[0]["message"]


# ---------------------------------------------------------------- input errors inside Rego


@cache
def validating(engine: str) -> Any:
    program = packs(BASELINE)["rego"].rego
    factory = RegorusEngine if engine == "regorus" else RegopyEngine
    return factory(program, validate_in_rego=True)


BROKEN = [None, -1, 1.5, "x", True, [], [1, "a"], {}, {"by": 1}, "2025-02-30T10:00:00Z"]
PLACES = [
    ("action", "kind"),
    ("action", "actor"),
    ("action", "actor", "trust"),
    ("action", "cost", "estimated_usd"),
    ("action", "requested_at"),
    ("action", "approvals"),
    ("action", "blast_radius", "services"),
    ("action", "change"),
    ("action", "labels"),
    ("context", "now"),
    ("usage", "spend_this_month_usd"),
]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.sampled_from(FIXTURES),
    st.lists(st.tuples(st.sampled_from(PLACES), st.sampled_from(BROKEN)), min_size=1, max_size=4),
)
def test_invalid_input_is_listed_in_natives_order_on_both_engines(fixture, changes):
    """Wrong types everywhere: no builtin may raise (regorus does where rego-cpp is
    undefined), and errors come by path as the native validator sorts them."""
    document = case(fixture)
    for place, value in changes:
        target = document
        for step in place[:-1]:
            target = target.setdefault(step, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[place[-1]] = value
    expected = packs(BASELINE)["native"].evaluate(**document)
    paths = list(dict.fromkeys(e["path"] for e in expected.errors))
    for engine in ENGINES:
        decision = validating(engine).decide(document)
        assert decision["fail_closed"] == expected.fail_closed, engine
        assert decision["decision"] == expected.decision, engine
        found = decision["errors"]
        assert list(dict.fromkeys(e["path"] for e in found)) == paths, engine
        assert {(e["path"], e["keyword"]) for e in found} == {
            (e["path"], e["keyword"]) for e in expected.errors
        }, engine


def test_both_engines_list_errors_alike():
    document = case(FIXTURES[0])
    document["action"]["approvals"] = [{"by": 1}, {"by": 2}, 3, {}, {"by": 4}] * 3
    document["action"]["kind"] = 5
    document["context"]["now"] = "yesterday"
    lists = [validating(engine).decide(document)["errors"] for engine in ENGINES]
    assert lists[0] == lists[1]
    indices = [int(m) for e in lists[0] for m in re.findall(r"approvals\[(\d+)\]", e["path"])]
    assert indices == sorted(indices) and 10 in indices  # [10] after [2], as native sorts


# ---------------------------------------------------------------- hand-written reports

HANDWRITTEN = """package aigre.t.custom.extra

deny contains {"id": "zeta", "message": "z", "bindings": {"n": 1.5}} if input.action.kind != ""

deny contains {"id": "alpha", "message": concat("", ["a ", input.action.target])} if true

warn contains {"id": "mid", "message": "m", "tags": ["x"]} if true

escalate contains {"id": "beta", "message": "b", "groups": ["sre"]} if true
"""


def test_hand_written_reports_come_in_one_order_on_every_engine(new_pack):
    from conftest import CONTEXT, _action

    path = new_pack(
        'rule r {\n  warn when action.kind == "rollback"\n  because "native"\n}\n',
        files={"policies/extra.rego": HANDWRITTEN},
    )
    document = {"action": _action(), "context": dict(CONTEXT), "usage": {}}
    verdicts = {
        engine: load_pack(path, engine=engine).evaluate(**document)
        for engine in ("native", *ENGINES)
    }
    orders = {engine: (v.rule_ids, [w["id"] for w in v.warnings]) for engine, v in verdicts.items()}
    assert orders["native"] == (["alpha", "zeta", "beta"], ["r", "mid"])  # verdict, id
    assert orders["rego"] == orders["regorus"] == orders["native"]
    assert comparable(verdicts["regorus"]) == comparable(verdicts["native"])
