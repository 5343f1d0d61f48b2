"""Compile cost grows with the pack: generated code size, the checker's work, index fan-out.

The packs are the ones ``benchmarks/bench_compile.py`` times (``evalbench.packs``):
rules testing two fields against long lists of strings, and N generated rules.
Nothing here is timed against a fixed budget; sizes and work are compared as a
pack doubles, with bounds a quadratic stage cannot meet.
"""

from __future__ import annotations

import gc
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import write_pack as conftest_write_pack
from hypothesis import given, settings
from hypothesis import strategies as st
from test_interpreter import ACTION, NOW, assert_agree, linear_evaluate, outcome

from aigre_policy import load_pack
from aigre_policy.check import check_pack, usage_schema
from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import SourceText, Span, error, render
from aigre_policy.inputs import builtin_schema, compose
from aigre_policy.parser import parse_module
from aigre_policy.schema_types import input_type

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from evalbench.packs import (
    generated_source,
    repro_actors,
    repro_source,
    repro_targets,
    write_pack,
)


def python_size(root: Path, source: str) -> int:
    report = compile_pack(write_pack(root, source))
    assert report.ok, report.diagnostics
    assert report.compiled is not None
    return len(report.compiled.python.source)


# ------------------------------------------------------------------ generated code size


def test_code_for_long_value_lists_grows_with_the_lists(tmp_path: Path) -> None:
    """Three rules `target in [N] and actor.id in [N] and ...`: nested indexes once copied
    each rule N x N times (13 MB of Python for a 7 KB pack at N = 160)."""
    small, large = repro_source(80), repro_source(160)
    small_size = python_size(tmp_path / "small", small)
    large_size = python_size(tmp_path / "large", large)
    assert large_size / small_size < 2.5  # quadratic: ~4
    assert large_size < 4 * len(large) + 8_000


def test_the_repro_pack_compiles_without_nested_copies(tmp_path: Path) -> None:
    report = compile_pack(write_pack(tmp_path, repro_source(160)))
    assert report.ok and report.compiled is not None
    source = report.compiled.python.source
    assert "when_" not in source  # no rule copied into a bucket per value
    # each list is written once in the test and once in the evidence, never per value
    assert source.count("'svc-100'") <= 2 * 3


SHAPES = st.lists(
    st.tuples(
        st.sampled_from(["deny", 'require_approval by ["sre"]', "warn"]),
        st.integers(1, 12),  # values in the target list
        st.integers(1, 12),  # values in the environment-or-kind list
        st.sampled_from(["action.kind", "action.actor.id"]),
        st.sampled_from(["", " and action.cost.estimated_usd > 10", " and not action.reversible"]),
    ),
    min_size=3,
    max_size=12,
)


def shaped_policy(shapes: list[tuple[str, int, int, str, str]]) -> str:
    kinds = ["deploy", "scale", "rollback", "dns_change", "restart", "iam_grant"]
    rules = []
    for i, (verdict, targets, others, field, tail) in enumerate(shapes):
        target_list = ", ".join(f'"svc-{(i + j) % 9}"' for j in range(targets))
        if field == "action.kind":
            other_list = ", ".join(f'"{kinds[(i + j) % len(kinds)]}"' for j in range(others))
        else:
            other_list = ", ".join(f'"a{(i + j) % 7}"' for j in range(others))
        rules.append(
            f"rule r{i} {{ {verdict} when action.target in [{target_list}] "
            f'and {field} in [{other_list}]{tail} because "r{i} on {{action.target}}" }}'
        )
    return "\n".join(rules)


@settings(max_examples=15, deadline=None)
@given(
    shapes=SHAPES,
    targets=st.lists(st.sampled_from([f"svc-{i}" for i in range(10)]), min_size=1, max_size=6),
)
def test_indexes_stay_within_a_constant_factor_and_fire_what_the_chain_fires(
    tmp_path_factory: pytest.TempPathFactory, shapes: list, targets: list[str]
) -> None:
    policy = shaped_policy(shapes)
    root = tmp_path_factory.mktemp("shaped")
    pack = load_pack(write_pack(root, policy))
    # a rule sits in at most four buckets: code within a constant factor of the pack
    assert len(pack.python_source) < 12 * len(policy) + 4_000
    linear = linear_evaluate(pack)
    for n, target in enumerate(targets):
        action = {
            **ACTION,
            "target": target,
            "kind": ["deploy", "scale", "iam_grant"][n % 3],
            "actor": {"kind": "llm", "id": f"a{n % 7}", "trust": 2},
        }
        assert outcome(pack.evaluator.namespace["evaluate"], action) == outcome(linear, action)
        assert_agree(pack, action, NOW, {})


def test_a_few_listed_values_still_dispatch_by_value(tmp_path: Path) -> None:
    """The cap keeps the index where a rule is copied a few times: lists of up to four."""
    policy = "\n".join(
        f'rule r{i} {{ deny when action.target in ["svc-{i}", "svc-{i + 10}"] '
        f"and action.cost.estimated_usd > {i} }}"
        for i in range(6)
    )
    pack = load_pack(write_pack(tmp_path, policy))
    assert "on = I0.get(x0)" in pack.python_source
    assert "'svc-13': when_" in pack.python_source
    verdict = pack.evaluate({**ACTION, "target": "svc-13", "cost": {"estimated_usd": 100}}, NOW)
    assert [r["id"] for r in verdict.fired] == ["r3"]


def test_nested_tables_each_have_their_own_name(tmp_path: Path) -> None:
    """A table inside a table's bucket once took the outer table's name: the outer one,
    defined last, replaced it, and `svc-0`'s rules never ran (allow where deny was due)."""
    policy = "\n".join(
        f'rule r{t}_{a} {{ deny when action.target == "svc-{t}" and action.actor.id == "a{a}" }}'
        for t in range(6)
        for a in range(6)
    )
    pack = load_pack(write_pack(tmp_path, policy))
    tables = re.findall(r"^(I[0-9]+) = ", pack.python_source, re.MULTILINE)
    assert len(tables) == 7 and len(set(tables)) == 7  # the outer table and one per target
    for t in range(7):
        for a in range(7):
            actor = {"kind": "llm", "id": f"a{a}", "trust": 2}
            action = {**ACTION, "target": f"svc-{t}", "actor": actor}
            assert_agree(pack, action, NOW, {})
            fired = [r["id"] for r in pack.evaluate(action, NOW).fired]
            assert fired == ([f"r{t}_{a}"] if t < 6 and a < 6 else [])


def test_an_index_over_rules_reading_many_fields_tests_each_value_in_turn(
    tmp_path: Path,
) -> None:
    """Every when_N of a table takes the locals of all the index's rules: with many of
    them (here 61), the table would grow as values x locals, so the index is an `if` per
    value instead (plain `if`s: a long `elif` chain nests as deep as it is long)."""
    fields = {f"f{i}": {"type": "number"} for i in range(60)}
    schema = {
        "type": "object",
        "properties": {
            "action": {
                "type": "object",
                "properties": {"target": {"type": "string"}, **fields},
                "required": ["target", *fields],
            },
            "context": {"type": "object"},
        },
        "required": ["action", "context"],
    }
    policy = "\n".join(
        f'rule r{i} {{ deny when action.target == "svc-{i % 6}" and action.f{i} > 1 }}'
        for i in range(60)
    )
    root = conftest_write_pack(
        tmp_path, policy, manifest={"input_schema": "schema.json"}, files={"schema.json": schema}
    )
    pack = load_pack(root)
    source = pack.python_source
    assert "action.target: 60 rules, by value" in source and "I0" not in source
    assert "elif x0 == 'svc-4':" not in source and "    if x0 == 'svc-5':" in source
    for target in ("svc-0", "svc-5", "svc-9"):
        for value in (0, 2):
            action = {"target": target, **{f"f{i}": value + i % 2 for i in range(60)}}
            assert_agree(pack, action, {}, {})
    fired = pack.evaluate({"target": "svc-5", **{f"f{i}": 2 for i in range(60)}}, {}).fired
    assert [r["id"] for r in fired] == [f"r{i}" for i in range(5, 60, 6)]


# ------------------------------------------------------------------ verdicts of the repro


def test_the_repro_pack_judges_as_the_reference_interpreter(tmp_path: Path) -> None:
    pack = load_pack(write_pack(tmp_path, repro_source(160)))
    targets, actors = repro_targets(320), repro_actors(320)
    # inside, at the edges of and outside each rule's lists (rule r lists from r * 40 on)
    picks = [0, 1, 39, 40, 41, 80, 119, 120, 159, 160, 199, 200, 239, 240, 319]
    pairs = [(t, a) for i, t in enumerate(picks) for a in picks[i % 3 :: 3]]
    for t, a in pairs:
        for environment, usd, reversible in (
            ("production", 500, False),
            ("staging", 5, True),
            ("production", 150, True),
        ):
            action = {
                **ACTION,
                "target": targets[t],
                "environment": environment,
                "actor": {"kind": "llm", "id": actors[a], "trust": 2},
                "cost": {"estimated_usd": usd},
                "reversible": reversible,
            }
            if reversible:
                action["rollback"] = {"plan": "undo"}
            assert_agree(pack, action, NOW, {})
    actor = {"kind": "llm", "id": actors[110], "trust": 2}
    held = pack.evaluate(
        {**ACTION, "target": targets[100], "actor": actor, "cost": {"estimated_usd": 500}}, NOW
    )
    assert [r["id"] for r in held.fired] == ["listed_0", "listed_1", "listed_2"]


# ------------------------------------------------------------------ the checker's work

SCHEMA = input_type(compose(builtin_schema("builtin:proposed-action/v1"), usage_schema([])))


class CountingSources(dict[str, str]):
    """Source texts that count how many characters the checker read out of them."""

    read = 0

    def get(self, key: Any, default: Any = None) -> Any:
        text = super().get(key, default)
        self.read += len(text or "")
        return text

    def __getitem__(self, key: str) -> str:
        text = super().__getitem__(key)
        self.read += len(text)
        return text


def characters_read(rules: int) -> tuple[int, int]:
    source = generated_source(rules)
    result = parse_module(source, "bench.aigre")
    assert result.module is not None
    sources = CountingSources({"bench.aigre": source})
    checked = check_pack([result.module], SCHEMA, sources)
    assert not checked.diagnostics
    return sources.read, len(source)


def test_the_checker_reads_each_source_file_a_bounded_number_of_times() -> None:
    """It once re-split the whole file for every comparison: quadratic in the pack."""
    for rules in (100, 200):
        read, size = characters_read(rules)
        assert read <= 4 * size


def calls_made(rules: int) -> int:
    """The Python and built-in function calls ``check_pack`` makes on N generated rules."""
    result = parse_module(generated_source(rules), "bench.aigre")
    assert result.module is not None
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        check_pack([result.module], SCHEMA, {"bench.aigre": ""})
    finally:
        sys.setprofile(None)
    return calls


def test_checking_twice_the_rules_makes_about_twice_the_calls() -> None:
    """Counted, not timed: a scan of every rule per rule would show as a ratio near 4."""
    small, large = calls_made(150), calls_made(300)
    assert 1.8 < large / small < 2.3


# ------------------------------------------------------------------ the collector's pause


def test_a_compile_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    root = write_pack(tmp_path, repro_source(4))
    enabled = gc.isenabled()
    try:
        for before in (True, False):
            (gc.enable if before else gc.disable)()
            assert compile_pack(root).ok
            assert gc.isenabled() is before
    finally:
        (gc.enable if enabled else gc.disable)()


def test_compiles_on_several_threads_restore_the_collector_once_all_end(tmp_path: Path) -> None:
    roots = [write_pack(tmp_path / str(i), repro_source(20 + i)) for i in range(4)]
    assert gc.isenabled()
    with ThreadPoolExecutor(4) as pool:
        assert all(report.ok for report in pool.map(compile_pack, roots * 2))
    assert gc.isenabled()


# ------------------------------------------------------------------ quoting many diagnostics


class CountingText(str):
    """A file's text that counts how often it is split into lines."""

    splits = 0

    def split(self, *args: Any, **kwargs: Any) -> list[str]:  # type: ignore[override]
        CountingText.splits += 1
        return super().split(*args, **kwargs)


def test_quoting_many_diagnostics_splits_each_file_once(tmp_path: Path) -> None:
    """Every quoted line once re-split the whole file: 5000 errors in a 370 KB pack took
    10 s of CPU to print."""
    rules = [f"rule r{i} {{ deny when action.kind > {i} }}" for i in range(300)]
    text = CountingText("\n".join(rules))
    sources = SourceText({"main.aigre": text})
    CountingText.splits = 0
    for number in range(1, 301):
        span = Span("main.aigre", number, 1, number, 5)
        shown = render(error("E201", "cannot compare", span), sources)
        assert f"rule r{number - 1} " in shown
    assert CountingText.splits == 1
