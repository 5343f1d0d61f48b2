"""Bright-line coverage: which sides of each rule, operand and limit the tests reach.

Computed by tracing the reference interpreter over every test that evaluated
(``interpreter.evaluate(..., trace=...)``):

* each rule: the tests where it fired and where it stayed silent;
* each operand of an ``and``/``or`` chain: whether some test saw it true and
  some test saw it false (operands a short circuit skips are not seen);
* each ordering comparison (``<``, ``<=``, ``>``, ``>=``) with an envelope value
  on one side: whether a test sits on the limit (both sides equal) and one just
  past it (at most one step away, on the side where the comparison flips). A
  step is 1 for a whole-number limit, else one unit of its last decimal.

A rule lacking either side, or a limit lacking either case, is a gap.
Nodes are identified by rule and position in the rule's condition, so packs
recompiled with other envelope values (``with``) map onto the same nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aigre_policy import interpreter, ir
from aigre_policy.pack import Pack
from aigre_policy.runtime import fmt

Key = tuple[int, int]  # (rule index, position of the node in ir.walk of its condition)
ORDERING = ("<", "<=", ">", ">=")


@dataclass
class RuleCoverage:
    rule: ir.Rule
    fired: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.fired) and bool(self.silent)


@dataclass
class OperandCoverage:
    rule: ir.Rule
    key: Key
    op: str  # the chain it is an operand of: and / or
    text: str
    span: Any
    seen_true: list[str] = field(default_factory=list)
    seen_false: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.seen_true) and bool(self.seen_false)


@dataclass
class LimitCoverage:
    rule: ir.Rule
    key: Key
    text: str
    span: Any
    limit: str  # the envelope value(s) on the limit side, dotted
    limit_on_left: bool
    on_limit: list[str] = field(default_factory=list)
    just_past: list[str] = field(default_factory=list)
    values: list[tuple[str, Any, Any]] = field(default_factory=list)  # (test, other side, limit)

    @property
    def complete(self) -> bool:
        return bool(self.on_limit) and bool(self.just_past)


@dataclass
class Coverage:
    rules: list[RuleCoverage]
    operands: list[OperandCoverage]
    limits: list[LimitCoverage]
    traced: int = 0  # tests that evaluated and were traced

    @property
    def rule_gaps(self) -> list[RuleCoverage]:
        return [r for r in self.rules if not r.complete]

    @property
    def limit_gaps(self) -> list[LimitCoverage]:
        return [lim for lim in self.limits if not lim.complete]

    @property
    def complete(self) -> bool:
        return not self.rule_gaps and not self.limit_gaps

    def to_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "traced_tests": self.traced,
            "rules": [
                {"rule": r.rule.id, "fired": r.fired, "silent": r.silent, "complete": r.complete}
                for r in self.rules
            ],
            "operands": [
                {
                    "rule": o.rule.id,
                    "op": o.op,
                    "operand": o.text,
                    "location": str(o.span),
                    "seen_true": o.seen_true,
                    "seen_false": o.seen_false,
                    "complete": o.complete,
                }
                for o in self.operands
            ],
            "limits": [
                {
                    "rule": lim.rule.id,
                    "comparison": lim.text,
                    "limit": lim.limit,
                    "location": str(lim.span),
                    "on_limit": lim.on_limit,
                    "just_past": lim.just_past,
                    "complete": lim.complete,
                }
                for lim in self.limits
            ],
        }


# ------------------------------------------------------------------ structure


def positions(rule: ir.Rule) -> dict[int, int]:
    """``id(node)`` -> position in the preorder walk of the rule's condition."""
    found: dict[int, int] = {}
    for i, node in enumerate(ir.walk(rule.condition)):
        found.setdefault(id(node), i)
    return found


def chain(node: ir.Node, op: str) -> list[ir.Node]:
    """The operands of ``a op b op c`` however it nests."""
    if isinstance(node, ir.BoolOp) and node.op == op:
        return [*chain(node.left, op), *chain(node.right, op)]
    return [node]


def has_envelope(node: ir.Node) -> bool:
    return any(isinstance(sub, ir.EnvelopeRef) for sub in ir.walk(node))


def limit_comparisons(rule: ir.Rule) -> list[ir.Compare]:
    """Ordering comparisons with envelope values on exactly one side."""
    return [
        node
        for node in ir.walk(rule.condition)
        if isinstance(node, ir.Compare)
        and node.op in ORDERING
        and node.kind != "time"
        and has_envelope(node.left) != has_envelope(node.right)
    ]


def step(limit: Any) -> int | float:
    """One step past a limit: 1 for a whole number, else one unit of its last decimal."""
    if isinstance(limit, int) or (isinstance(limit, float) and limit.is_integer()):
        return 1
    exponent = Decimal(repr(limit)).as_tuple().exponent
    return 10.0 ** int(exponent) if isinstance(exponent, int) else 1


def sides(compare: ir.Compare, left: Any, right: Any) -> tuple[Any, Any, bool]:
    """(other side, limit side, limit on the left) of a limit comparison."""
    if has_envelope(compare.left):
        return right, left, True
    return left, right, False


def position_of(value: Any, limit: Any, compare: ir.Compare, on_left: bool) -> str | None:
    """``on_limit``, ``just_past`` or None for one evaluation of a limit comparison."""
    if not _number(value) or not _number(limit):
        return None
    if value == limit:
        return "on_limit"
    if abs(value - limit) > step(limit) * (1 + 1e-9):
        return None
    at_limit = interpreter.COMPARISONS[compare.op](limit, limit)
    a, b = (limit, value) if on_left else (value, limit)
    return "just_past" if interpreter.COMPARISONS[compare.op](a, b) != at_limit else None


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


# ------------------------------------------------------------------ tracing


@dataclass
class Observation:
    """What one evaluation of one rule showed: node values and limit positions."""

    fired: bool | None  # None when the evaluation raised
    values: dict[Key, set[bool]]
    limits: dict[Key, list[tuple[Any, Any]]]  # (other side, limit) per evaluation


def observe(rule: ir.Rule, envelopes: Any, document: dict[str, Any]) -> Observation:
    """Evaluate one rule with the reference interpreter and record what each node gave."""
    where = positions(rule)
    compares = {id(c) for c in limit_comparisons(rule)}
    last: dict[int, Any] = {}
    values: dict[Key, set[bool]] = {}
    limits: dict[Key, list[tuple[Any, Any]]] = {}

    def trace(node: ir.Node, scope: Any, value: Any) -> None:
        last[id(node)] = value
        pos = where.get(id(node))
        if pos is None:
            return
        key = (rule.index, pos)
        if isinstance(value, bool):
            values.setdefault(key, set()).add(value)
        if id(node) in compares:
            assert isinstance(node, ir.Compare)
            other, limit, _ = sides(node, last.get(id(node.left)), last.get(id(node.right)))
            limits.setdefault(key, []).append((other, limit))

    scope = {root: document[root] for root in ("action", "context", "usage")}
    try:
        fired = bool(interpreter.evaluate(rule.condition, scope, envelopes, trace))
    except Exception:
        fired = None
    return Observation(fired, values, limits)


def document_of(case: Any) -> dict[str, Any]:
    return {
        "action": case.action,
        "context": case.context if case.context is not None else {},
        "usage": case.usage if case.usage is not None else {},
    }


class SourceLines:
    """Source text of IR nodes, read from their files once."""

    def __init__(self) -> None:
        self._files: dict[str, list[str]] = {}

    def text(self, span: Any) -> str:
        lines = self._files.get(span.file)
        if lines is None:
            try:
                lines = Path(span.file).read_text(encoding="utf-8").split("\n")
            except OSError:
                lines = []
            self._files[span.file] = lines
        if not lines or span.line > len(lines):
            return f"<{span}>"
        if span.end_line == span.line:
            return lines[span.line - 1][span.column - 1 : span.end_column - 1]
        head = [lines[span.line - 1][span.column - 1 :]]
        middle = lines[span.line : span.end_line - 1]
        tail = [lines[span.end_line - 1][: span.end_column - 1]]
        return " ".join(part.strip() for part in [*head, *middle, *tail] if part.strip())


def skeleton_coverage(pack: Pack) -> Coverage:
    """An empty coverage table: every rule, operand and limit of ``pack``, nothing seen."""
    source = SourceLines()
    rules, operands, limits = [], [], []
    for rule in pack.rules:
        rules.append(RuleCoverage(rule))
        where = positions(rule)
        bools = [node for node in ir.walk(rule.condition) if isinstance(node, ir.BoolOp)]
        inner = {
            id(sub)
            for node in bools
            for sub in (node.left, node.right)
            if isinstance(sub, ir.BoolOp) and sub.op == node.op
        }
        for head in (node for node in bools if id(node) not in inner):
            for operand in chain(head, head.op):
                key = (rule.index, where[id(operand)])
                operands.append(
                    OperandCoverage(rule, key, head.op, source.text(operand.span), operand.span)
                )
        for compare in limit_comparisons(rule):
            on_left = has_envelope(compare.left)
            side = compare.left if on_left else compare.right
            names = [s.dotted for s in ir.walk(side) if isinstance(s, ir.EnvelopeRef)]
            limits.append(
                LimitCoverage(
                    rule,
                    (rule.index, where[id(compare)]),
                    compare.text,
                    compare.span,
                    ", ".join(dict.fromkeys(names)),
                    on_left,
                )
            )
    return Coverage(rules, operands, limits)


def compute_coverage(
    pack: Pack,
    cases: Iterable[Any],
    pack_for: Callable[[dict[str, dict[str, Any]]], Pack],
) -> Coverage:
    """Trace every case with the rules of ``pack_for(case.overrides)`` (its envelope values)."""
    coverage = skeleton_coverage(pack)
    operands = {o.key: o for o in coverage.operands}
    limits = {lim.key: lim for lim in coverage.limits}
    for case in cases:
        try:
            judged = pack_for(case.overrides)
        except Exception:
            continue  # reported by the runner as an error
        document = document_of(case)
        verdict = judged.evaluate(document["action"], document["context"], document["usage"])
        if verdict.fail_closed:
            continue
        coverage.traced += 1
        for rule, entry in zip(judged.rules, coverage.rules, strict=True):
            seen = observe(rule, judged.envelopes, document)
            if seen.fired is None:
                continue
            (entry.fired if seen.fired else entry.silent).append(case.name)
            for key, truths in seen.values.items():
                operand = operands.get(key)
                if operand is not None:
                    if True in truths:
                        operand.seen_true.append(case.name)
                    if False in truths:
                        operand.seen_false.append(case.name)
            for key, pairs in seen.limits.items():
                limit = limits.get(key)
                if limit is None:
                    continue
                compare = _compare_at(rule, key[1])
                places = {position_of(v, lim, compare, limit.limit_on_left) for v, lim in pairs}
                limit.values += [(case.name, v, lim) for v, lim in pairs]
                if "on_limit" in places:
                    limit.on_limit.append(case.name)
                if "just_past" in places:
                    limit.just_past.append(case.name)
    return coverage


def _compare_at(rule: ir.Rule, position: int) -> ir.Compare:
    for i, node in enumerate(ir.walk(rule.condition)):
        if i == position:
            assert isinstance(node, ir.Compare)
            return node
    raise KeyError(position)


def describe(value: Any) -> str:
    return fmt(value)
