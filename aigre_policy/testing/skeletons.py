"""Ready-to-paste tests for bright-line coverage gaps.

For each gap (a rule that never fires or never stays silent, a limit no test
sits on or just past) this searches for an input that lands on the missing
side, starting from the inputs of the pack's tests and from a minimal input
built from the schema:

* a rule side: greedy moves over the input paths the rule reads, each set to a
  value from the rule (constants and envelope values it compares with, one
  step either side), from the schema (enum values, booleans) or from other
  tests, until the condition holds (or fails) and the input is valid;
* a limit: a numeric knob under the comparison's other side (a number, a
  timestamp in seconds, or a list's length) solved by the secant method until
  that side equals the limit, or is one step past it.

Every suggestion is evaluated before it is offered: it must be a valid input,
land on the missing side, and pass as a test with the expectation printed.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aigre_policy import interpreter, ir
from aigre_policy.diagnostics import NO_SPAN
from aigre_policy.pack import Pack
from aigre_policy.runtime import to_time
from aigre_policy.testing import schema_values
from aigre_policy.testing.cases import Expectation, TestCase, set_path, unset_path
from aigre_policy.testing.coverage import (
    Coverage,
    LimitCoverage,
    RuleCoverage,
    chain,
    document_of,
    position_of,
    positions,
    sides,
    step,
)
from aigre_policy.testing.runner import fired_ids, run_case

ROOTS = ("action", "context", "usage")
MAX_MOVES = 8
ABSENT = object()  # a move that removes the path
# the pack with envelope values overridden, as the runner builds it
_PackFor = Callable[[dict[str, dict[str, Any]]], Pack]


@dataclass(frozen=True)
class Base:
    """A starting input: a test's, or the schema's minimal one."""

    name: str
    document: dict[str, Any]
    overrides: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Suggestion:
    """One gap and the test that closes it (``test`` is None when none was found)."""

    rule: ir.Rule
    gap: str
    test: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.id, "gap": self.gap, "test": self.test}


def suggest(
    pack: Pack,
    coverage: Coverage,
    cases: Iterable[TestCase],
    pack_for: Callable[[dict[str, dict[str, Any]]], Pack],
) -> list[Suggestion]:
    """A checked test for each gap of ``coverage``."""
    bases = _bases(pack, cases, pack_for)
    found: list[Suggestion] = []
    for entry in coverage.rules:
        for side in ("fired", "silent"):
            if not getattr(entry, side):
                gap = f"never {'fires' if side == 'fired' else 'stays silent'}"
                test = _rule_side(pack, entry, side == "fired", bases, pack_for)
                found.append(Suggestion(entry.rule, gap, test))
    for limit in coverage.limits:
        for place in ("on_limit", "just_past"):
            if not getattr(limit, place):
                where = "on the limit" if place == "on_limit" else "just past the limit"
                test = _limit_place(pack, limit, place, bases, pack_for)
                found.append(Suggestion(limit.rule, f"`{limit.text}`: no test {where}", test))
    return found


def _bases(pack: Pack, cases: Iterable[TestCase], pack_for: _PackFor) -> list[Base]:
    bases = []
    for case in cases:
        try:
            judged = pack_for(case.overrides)
        except Exception:
            continue
        document = copy.deepcopy(document_of(case))
        if not judged.evaluate(**_args(document)).fail_closed:
            bases.append(Base(case.name, document, case.overrides))
    schema = pack.input_schema
    minimal = {
        root: schema_values.minimal(schema, schema.get("properties", {}).get(root, {}))
        for root in ROOTS
    }
    if not pack.evaluate(**_args(minimal)).fail_closed:
        bases.append(Base("the schema's minimal input", minimal, {}))
    return bases


def _args(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": document["action"],
        "context": document["context"],
        "usage": document["usage"],
    }


def _valid(pack: Pack, document: dict[str, Any]) -> bool:
    try:
        return not pack.evaluate(**_args(document)).fail_closed
    except Exception:
        return False


def _holds(node: ir.Node, document: dict[str, Any], envelopes: Any) -> bool | None:
    try:
        return bool(interpreter.evaluate(node, document, envelopes))
    except Exception:
        return None


# ------------------------------------------------------------------ rule sides


def _rule_side(
    pack: Pack, entry: RuleCoverage, want: bool, bases: list[Base], pack_for: _PackFor
) -> dict[str, Any] | None:
    rule = entry.rule
    index = pack.rules.index(rule)
    moves = _moves(pack, rule, bases)
    for base in sorted(bases, key=lambda b: -_score(pack_for(b.overrides), index, b, want)):
        judged = pack_for(base.overrides)
        target = judged.rules[index]
        document = copy.deepcopy(base.document)
        for _ in range(MAX_MOVES):
            if _holds(target.condition, document, judged.envelopes) is want:
                break
            best, best_score = None, _conjuncts(target, document, judged.envelopes, want)
            for path, value in moves:
                trial = _moved(document, path, value)
                if trial is None:
                    continue
                score = _conjuncts(target, trial, judged.envelopes, want)
                if score > best_score and _valid(judged, trial):
                    best, best_score = trial, score
            if best is None:
                break
            document = best
        if _holds(target.condition, document, judged.envelopes) is want and _valid(
            judged, document
        ):
            name = f"{rule.id} {'fires' if want else 'stays silent'}"
            test = _checked_test(judged, name, document, base.overrides, rule.id)
            if test is not None:
                return test
    return None


def _score(judged: Pack, index: int, base: Base, want: bool) -> int:
    return _conjuncts(judged.rules[index], base.document, judged.envelopes, want)


def _conjuncts(rule: ir.Rule, document: dict[str, Any], envelopes: Any, want: bool) -> int:
    """How close the condition is to ``want``: operands of its top chain already agreeing."""
    if _holds(rule.condition, document, envelopes) is want:
        return 10**6
    op = "and" if want else "or"
    parts = chain(rule.condition, op)
    return sum(_holds(part, document, envelopes) is want for part in parts)


def _moved(document: dict[str, Any], path: str, value: Any) -> dict[str, Any] | None:
    trial = copy.deepcopy(document)
    problem = (
        unset_path(trial, path) if value is ABSENT else set_path(trial, path, copy.deepcopy(value))
    )
    return None if problem else trial


def _moves(pack: Pack, rule: ir.Rule, bases: list[Base]) -> list[tuple[str, Any]]:
    """(path, value) pairs worth trying for the paths ``rule`` reads."""
    schema = pack.input_schema
    values: dict[str, list[Any]] = {}

    def add(path: str, value: Any) -> None:
        bucket = values.setdefault(path, [])
        if all(not _same(value, seen) for seen in bucket):
            bucket.append(value)

    paths = [n for n in ir.walk(rule.condition) if isinstance(n, ir.Path) and not n.local]
    for node in ir.walk(rule.condition):
        if isinstance(node, ir.Compare | ir.Member):
            left, right = (
                (node.left, node.right)
                if isinstance(node, ir.Compare)
                else (node.item, node.collection)
            )
            for subject, other in ((left, right), (right, left)):
                path = _path_of(subject)
                constant = _constant(other, pack.envelopes)
                if path is None or constant is ABSENT:
                    continue
                if isinstance(node, ir.Member) and subject is node.item:
                    for item in constant[:6] if isinstance(constant, list) else []:
                        add(path.dotted, item)
                    add(path.dotted, "not-listed")
                elif isinstance(constant, int | float) and not isinstance(constant, bool):
                    for v in (constant, constant + step(constant), constant - step(constant)):
                        add(path.dotted, v)
                else:
                    add(path.dotted, constant)
    for path in paths:
        steps = [path.root, *path.steps]
        for k in range(2, len(steps) + 1):
            dotted = ".".join(steps[:k])
            for choice in schema_values.choices(schema_values.at_path(schema, steps[:k])):
                add(dotted, choice)
            for base in bases:
                seen = _read(base.document, steps[:k])
                if seen is not ABSENT:
                    add(dotted, seen)
            if k > 2:
                add(dotted, ABSENT)
    return [(path, value) for path, bucket in values.items() for value in bucket[:12]]


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if a is not ABSENT and b is not ABSENT else a is b


def _read(document: Any, steps: list[str]) -> Any:
    node = document
    for part in steps:
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def _path_of(node: ir.Node) -> ir.Path | None:
    if isinstance(node, ir.Default):
        node = node.path
    if isinstance(node, ir.Path) and not node.local:
        return node
    return None


def _constant(node: ir.Node, envelopes: Any) -> Any:
    """The value of an input-free expression, else ``ABSENT``."""
    if any(isinstance(n, ir.Path) for n in ir.walk(node)):
        return ABSENT
    try:
        return interpreter.evaluate(node, {}, envelopes)
    except Exception:
        return ABSENT


# ------------------------------------------------------------------ limits


def _evaluations(rule: ir.Rule, position: int, document: dict[str, Any], envelopes: Any) -> list:
    where = positions(rule)
    last: dict[int, Any] = {}
    found: list[tuple[Any, Any, Any]] = []

    def trace(node: ir.Node, scope: Any, value: Any) -> None:
        last[id(node)] = value
        if where.get(id(node)) == position and isinstance(node, ir.Compare):
            other, limit, _ = sides(node, last.get(id(node.left)), last.get(id(node.right)))
            found.append((other, limit, dict(scope)))

    with contextlib.suppress(Exception):
        interpreter.evaluate(rule.condition, document, envelopes, trace)
    return found


def _limit_place(
    pack: Pack, limit: LimitCoverage, place: str, bases: list[Base], pack_for: _PackFor
) -> dict[str, Any] | None:
    index = pack.rules.index(limit.rule)
    position = limit.key[1]
    for base in bases:
        judged = pack_for(base.overrides)
        rule = judged.rules[index]
        compare = _node_at(rule, position)
        seen = _evaluations(rule, position, base.document, judged.envelopes)
        for occurrence, (_other, lim, scope) in enumerate(seen):
            if not isinstance(lim, int | float) or isinstance(lim, bool):
                continue
            target = _target(compare, lim, limit.limit_on_left, place)
            if target is None:
                continue
            side = compare.right if limit.limit_on_left else compare.left
            for knob in _knobs(side, scope, base.document):
                document = _solve(
                    knob, base.document, rule, position, occurrence, target, judged.envelopes
                )
                if document is None or not _valid(judged, document):
                    continue
                places = {
                    position_of(o, m, compare, limit.limit_on_left)
                    for o, m, _ in _evaluations(rule, position, document, judged.envelopes)
                }
                if place in places:
                    name = f"{limit.rule.id}: {limit.text} {_place_text(place)}"
                    test = _checked_test(judged, name, document, base.overrides, None)
                    if test is not None:
                        return test
    return None


def _place_text(place: str) -> str:
    return "on the limit" if place == "on_limit" else "just past the limit"


def _node_at(rule: ir.Rule, position: int) -> ir.Compare:
    node = list(ir.walk(rule.condition))[position]
    assert isinstance(node, ir.Compare)
    return node


def _target(compare: ir.Compare, limit: Any, on_left: bool, place: str) -> Any:
    if place == "on_limit":
        return limit
    at = interpreter.COMPARISONS[compare.op](limit, limit)
    for candidate in (limit + step(limit), limit - step(limit)):
        candidate = round(candidate, 12) if isinstance(candidate, float) else candidate
        a, b = (limit, candidate) if on_left else (candidate, limit)
        if interpreter.COMPARISONS[compare.op](a, b) != at:
            return candidate
    return None


@dataclass(frozen=True)
class _Knob:
    """A numeric handle on one input path: a number, a timestamp (seconds) or a list length."""

    steps: tuple[Any, ...]
    kind: str  # number, integer, time, length


def _knobs(side: ir.Node, scope: dict[str, Any], document: dict[str, Any]) -> list[_Knob]:
    knobs: list[_Knob] = []
    for node in ir.walk(side):
        if isinstance(node, ir.Default):
            node = node.path
        if not isinstance(node, ir.Path):
            continue
        if node.local:
            prefix = _locate(document, scope.get(node.root))
            if prefix is None:
                continue
            steps = (*prefix, *node.steps)
        else:
            steps = (node.root, *node.steps)
        value = _read_any(document, steps)
        if value is ABSENT:
            value = None
        knob = _knob_of(steps, value)
        if knob is not None and knob not in knobs:
            knobs.append(knob)
    return knobs


def _knob_of(steps: tuple[Any, ...], value: Any) -> _Knob | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _Knob(steps, "integer")
    if isinstance(value, float):
        return _Knob(steps, "number")
    if isinstance(value, list):
        return _Knob(steps, "length") if value else None
    if isinstance(value, str):
        try:
            to_time(value)
        except Exception:
            return None
        return _Knob(steps, "time")
    if value is None:
        return _Knob(steps, "integer")  # an absent optional number: start it at 0
    return None


def _locate(document: Any, target: Any, trail: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """The path of the object ``target`` (by identity) inside ``document``."""
    if target is None:
        return None
    if document is target and trail:
        return trail
    if isinstance(document, dict):
        items: Iterable[tuple[Any, Any]] = document.items()
    elif isinstance(document, list):
        items = enumerate(document)
    else:
        return None
    for key, value in items:
        found = _locate(value, target, (*trail, key))
        if found is not None:
            return found
    return None


def _read_any(document: Any, steps: tuple[Any, ...]) -> Any:
    node = document
    for part in steps:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        else:
            return ABSENT
    return node


def _get(document: dict[str, Any], knob: _Knob) -> float:
    value = _read_any(document, knob.steps)
    if knob.kind == "time":
        return float(to_time(value))
    if knob.kind == "length":
        return len(value)
    return 0 if value is ABSENT or value is None else value


def _put(document: dict[str, Any], knob: _Knob, amount: float) -> dict[str, Any] | None:
    trial = copy.deepcopy(document)
    if knob.kind == "time":
        stamp = datetime.fromtimestamp(round(amount), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        value: Any = stamp
    elif knob.kind == "length":
        items = _read_any(document, knob.steps)
        count = max(0, round(amount))
        value = [copy.deepcopy(items[i % len(items)]) for i in range(count)]
    elif knob.kind == "integer":
        value = round(amount)
    else:
        value = round(amount, 12)
    dotted = ".".join(str(s) for s in knob.steps)
    return None if set_path(trial, dotted, value) else trial


def _solve(
    knob: _Knob,
    document: dict[str, Any],
    rule: ir.Rule,
    position: int,
    occurrence: int,
    target: Any,
    envelopes: Any,
) -> dict[str, Any] | None:
    """Move the knob until the comparison's other side equals ``target`` (secant method)."""

    def side(doc: dict[str, Any] | None) -> float | None:
        if doc is None:
            return None
        seen = _evaluations(rule, position, doc, envelopes)
        if occurrence >= len(seen):
            return None
        value = seen[occurrence][0]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return value if ok else None

    current = copy.deepcopy(document)
    for _ in range(6):
        now = side(current)
        if now is None:
            return None
        if math.isclose(now, target, rel_tol=0, abs_tol=1e-9):
            return current
        start = _get(current, knob)
        slope = None
        for delta in (1, 60, 3600, 86400):
            moved = side(_put(current, knob, start + delta))
            if moved is not None and moved != now:
                slope = (moved - now) / delta
                break
        if not slope:
            return None
        stepped = _put(current, knob, start + (target - now) / slope)
        if stepped is None:
            return None
        current = stepped
    return current if side(current) == target else None


# ------------------------------------------------------------------ emitting


def _checked_test(
    judged: Pack,
    name: str,
    document: dict[str, Any],
    overrides: dict[str, dict[str, Any]],
    rule_id: str | None,
) -> dict[str, Any] | None:
    """The YAML test for ``document``, expecting what it gets; None unless it passes as a test."""
    verdict = judged.evaluate(**_args(document))
    if verdict.fail_closed:
        return None
    expect: dict[str, Any] = {"decision": verdict.decision}
    if rule_id is None:
        expect["rules"] = fired_ids(verdict)
    elif rule_id in fired_ids(verdict):
        expect["rules_at_least"] = [rule_id]
    else:
        expect["silent"] = [rule_id]
    test: dict[str, Any] = {"name": name, **copy.deepcopy(document)}
    if overrides:
        test["with"] = copy.deepcopy(overrides)
    test["expect"] = expect
    case = TestCase(
        name,
        NO_SPAN,
        document["action"],
        document["context"],
        document["usage"],
        overrides,
        Expectation(
            decision=expect["decision"],
            rules=tuple(expect["rules"]) if "rules" in expect else None,
            rules_at_least=tuple(expect.get("rules_at_least", ())),
            silent=tuple(expect.get("silent", ())),
        ),
    )
    result = run_case(case, lambda a, c, u, o: judged.evaluate(a, c, u))
    return test if result.passed else None
