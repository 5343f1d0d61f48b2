"""Mutation testing: small faults planted in the compiled policy, and whether the tests notice.

Each mutant changes one thing in one rule of the checked IR: a comparison
flipped (``>`` to ``>=``, ``==`` to ``!=``, ``in`` to ``not in``), a threshold
shifted one step to either side, a conjunct or disjunct dropped, a condition
negated, or the verdict weakened one step (``deny`` to ``require_approval`` to
``escalate`` to ``warn``). Every mutant goes through the normal back end
(``codegen.emit_python`` and ``sandbox.load``) and the pack's passing tests run
against it in process, stopping at the first test that fails: that test kills
it. A mutant no test kills survives, and names a behaviour the tests do not pin.

Mutants known to be equivalent to the pack are not made: dropping a ``has``
guard that another conjunct already implies (``has x and (x.y ?? false)``),
or dropping or negating a guard the rest of the condition reads through; and
mutants whose generated code is the same as another's are made once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from time import perf_counter
from typing import Any

from aigre_policy import ir
from aigre_policy.codegen import RANKS, emit_python
from aigre_policy.compiler import CompiledPack
from aigre_policy.diagnostics import Span
from aigre_policy.native import NativeEvaluator
from aigre_policy.pack import Pack
from aigre_policy.sandbox import load as load_module
from aigre_policy.testing.cases import TestCase
from aigre_policy.testing.runner import PackEvaluator, run_case
from aigre_policy.testing.strategies import step
from aigre_policy.verdict import Verdict

FLIPS = {"==": "!=", "!=": "==", "<": "<=", "<=": "<", ">": ">=", ">=": ">"}
ORDERINGS = ("<", "<=", ">", ">=")
WEAKER = {"deny": "require_approval", "require_approval": "escalate", "escalate": "warn"}


@dataclass(frozen=True)
class Mutant:
    """One planted fault: which rule, what changed and where in the source."""

    rule: str
    operator: str  # flip, shift, drop, negate or weaken
    change: str  # "`>` to `>=` in `action.cost.estimated_usd > cost.max_action_usd`"
    span: Span
    replacement: ir.Rule

    @property
    def location(self) -> str:
        return str(self.span)


@dataclass(frozen=True)
class MutantResult:
    mutant: Mutant
    killed_by: str | None  # the name of the first test that failed against it

    @property
    def killed(self) -> bool:
        return self.killed_by is not None


@dataclass(frozen=True)
class MutationReport:
    results: tuple[MutantResult, ...]
    tests: int  # passing tests run against the mutants
    elapsed_s: float

    @property
    def killed(self) -> list[MutantResult]:
        return [r for r in self.results if r.killed]

    @property
    def survivors(self) -> list[MutantResult]:
        return [r for r in self.results if not r.killed]

    @property
    def score(self) -> float:
        """The share of mutants killed; 1.0 for a pack that yields none."""
        return len(self.killed) / len(self.results) if self.results else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mutants": len(self.results),
            "killed": len(self.killed),
            "score": round(self.score, 4),
            "tests": self.tests,
            "elapsed_s": round(self.elapsed_s, 3),
            "survivors": [
                {
                    "rule": r.mutant.rule,
                    "operator": r.mutant.operator,
                    "change": r.mutant.change,
                    "location": r.mutant.span.to_dict(),
                }
                for r in self.survivors
            ],
        }


# ------------------------------------------------------------------ making mutants


def mutants(pack: Pack) -> list[Mutant]:
    """Every mutant of the pack's rules, in pack order."""
    made: list[Mutant] = []
    for rule in pack.program.rules:
        maker = _RuleMutator(rule, pack.envelopes)
        for condition, operator, change, span in maker.conditions(rule.condition):
            made.append(
                Mutant(
                    rule.id, operator, change, span, dataclasses.replace(rule, condition=condition)
                )
            )
        weaker = WEAKER.get(rule.verdict) or ("warn" if rule.verdict == "permit" else None)
        if weaker is not None:
            change = f"verdict `{rule.verdict}` to `{weaker}`"
            made.append(
                Mutant(
                    rule.id, "weaken", change, rule.span, dataclasses.replace(rule, verdict=weaker)
                )
            )
    return made


Site = tuple[ir.Node, str, str, Span]  # mutated node, operator, change, where


class _RuleMutator:
    def __init__(self, rule: ir.Rule, envelopes: dict[str, dict[str, Any]]):
        self.rule = rule
        self.envelopes = envelopes
        # paths read through a guard: the `has` that proves them present must stay
        self.guarded = {
            _dotted(node)
            for node in ir.walk(rule.condition)
            if isinstance(node, ir.Path) and node.guarded
        }

    def conditions(self, node: ir.Node) -> Iterator[Site]:
        """The whole condition negated, then every mutation of its parts."""
        if self.safe_to_remove(node):
            yield ir.Not(node, node.span), "negate", "negated the whole condition", node.span
        yield from self.inner(node)

    def inner(self, node: ir.Node) -> Iterator[Site]:
        if isinstance(node, ir.BoolOp):
            yield from self.chain(node)
            return
        yield from self.local(node)
        for index, child in enumerate(_children(node)):
            for mutated, operator, change, span in self.inner(child):
                yield _with_child(node, index, mutated), operator, change, span

    def chain(self, node: ir.BoolOp) -> Iterator[Site]:
        """``a and b and c`` as one list: drop each part, negate each, mutate inside each."""
        op = node.op
        parts = _flatten(node, op)
        word = "conjunct" if op == "and" else "disjunct"
        for i, part in enumerate(parts):
            kept = parts[:i] + parts[i + 1 :]
            if self.safe_to_drop(part, kept, op):
                change = f"dropped the {word} `{_text(part)}`"
                yield _join(kept, op, node.span), "drop", change, part.span
        for i, part in enumerate(parts):
            if _negatable(part) and self.safe_to_remove(part):
                flipped = part.operand if isinstance(part, ir.Not) else ir.Not(part, part.span)
                change = f"negated `{_text(part)}`"
                yield (
                    _join([*parts[:i], flipped, *parts[i + 1 :]], op, node.span),
                    "negate",
                    (change),
                    part.span,
                )
        for i, part in enumerate(parts):
            for mutated, operator, change, span in self.inner(part):
                replaced = [*parts[:i], mutated, *parts[i + 1 :]]
                yield _join(replaced, op, node.span), operator, change, span

    def local(self, node: ir.Node) -> Iterator[Site]:
        """Mutations of ``node`` itself."""
        match node:
            case ir.Compare(op=op):
                flipped = dataclasses.replace(node, op=FLIPS[op])
                yield flipped, "flip", f"`{op}` to `{FLIPS[op]}` in `{node.text}`", node.span
                if op in ORDERINGS:
                    yield from self.shifts(node)
            case ir.Member(negated=negated):
                was, now = ("not in", "in") if negated else ("in", "not in")
                toggled = dataclasses.replace(node, negated=not negated)
                yield toggled, "flip", f"`{was}` to `{now}` in `{node.text}`", node.span
            case ir.Not(operand=operand) if not isinstance(operand, ir.BoolOp | ir.Not):
                if self.safe_to_remove(node):
                    yield operand, "negate", f"removed the `not` of `{_text(node)}`", node.span

    def shifts(self, node: ir.Compare) -> Iterator[Site]:
        for side in ("right", "left"):
            threshold = getattr(node, side)
            value = _threshold(threshold, self.envelopes)
            if value is None:
                continue
            delta = step(value)
            for sign, word in ((1, "up"), (-1, "down")):
                moved = _moved(threshold, sign * delta)
                shown = _number(value + sign * delta)
                change = f"`{_text(threshold)}` shifted {word} to {shown} in `{node.text}`"
                shifted = (
                    dataclasses.replace(node, right=moved)
                    if side == "right"
                    else dataclasses.replace(node, left=moved)
                )
                yield shifted, "shift", change, threshold.span
            return  # one threshold per comparison

    def safe_to_remove(self, node: ir.Node) -> bool:
        """Removing or negating ``node`` must not expose a read its guard protects."""
        for sub in ir.walk(node):
            if isinstance(sub, ir.Has) and any(
                g == _dotted(sub.path) or g.startswith(_dotted(sub.path) + ".")
                for g in self.guarded
            ):
                return False
        return True

    def safe_to_drop(self, dropped: ir.Node, kept: list[ir.Node], op: str) -> bool:
        if not self.safe_to_remove(dropped):
            return False
        if op == "and" and isinstance(dropped, ir.Has):
            # `has x and (x.y ?? false)`: the kept side is false without x anyway
            prefix = _dotted(dropped.path) + "."
            for part in kept:
                if (
                    isinstance(part, ir.Default)
                    and _dotted(part.path).startswith(prefix)
                    and isinstance(part.fallback, ir.Const)
                    and part.fallback.value is False
                ):
                    return False
        return True


def _flatten(node: ir.Node, op: str) -> list[ir.Node]:
    if isinstance(node, ir.BoolOp) and node.op == op:
        return _flatten(node.left, op) + _flatten(node.right, op)
    return [node]


def _join(parts: list[ir.Node], op: str, span: Span) -> ir.Node:
    joined = parts[0]
    for part in parts[1:]:
        joined = ir.BoolOp(op, joined, part, span)
    return joined


def _negatable(node: ir.Node) -> bool:
    """Boolean parts whose negation is not already another mutant (`==`/`in` flips)."""
    if isinstance(node, ir.BoolOp):
        return False  # its own operands are negated one by one
    if isinstance(node, ir.Compare):
        return node.op in ORDERINGS
    return not isinstance(node, ir.Member)


def _threshold(node: ir.Node, envelopes: dict[str, dict[str, Any]]) -> int | float | None:
    """The number a comparison side holds, if it reads no input: a literal or an envelope value."""
    match node:
        case ir.Const(value=value):
            pass
        case ir.EnvelopeRef(envelope=envelope, name=name):
            value = envelopes.get(envelope, {}).get(name)
        case _:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _moved(node: ir.Node, delta: int | float) -> ir.Node:
    """The threshold plus ``delta``; an envelope value stays a read, so overrides still apply."""
    if isinstance(node, ir.Const):
        return ir.Const(_number(node.value + delta), node.span)
    op, amount = ("+", delta) if delta > 0 else ("-", -delta)
    return ir.Arith(op, node, ir.Const(amount, node.span), f"number{op}number", node.span)


def _number(value: int | float) -> int | float:
    return value if isinstance(value, int) else round(value, 12)


def _dotted(path: ir.Path) -> str:
    return path.dotted


def _children(node: ir.Node) -> tuple[ir.Node, ...]:
    match node:
        case ir.Not(operand=x):
            return (x,)
        case ir.Quantifier(body=body):
            return (body,)
    return ()  # comparisons and the like are mutated whole, by `local`


def _with_child(node: ir.Node, index: int, child: ir.Node) -> ir.Node:
    match node:
        case ir.Not():
            return dataclasses.replace(node, operand=child)
        case ir.Quantifier():
            return dataclasses.replace(node, body=child)
    raise AssertionError(f"no child {index} in {node!r}")  # pragma: no cover


@cache
def _lines(file: str) -> tuple[str, ...]:
    try:
        return tuple(Path(file).read_text(encoding="utf-8").split("\n"))
    except (OSError, UnicodeDecodeError):
        return ()


def _text(node: ir.Node, limit: int = 80) -> str:
    """The source text of a node, on one line."""
    if isinstance(node, ir.Compare | ir.Member):
        text = node.text
    else:
        span = node.span
        lines = _lines(span.file)
        if not lines or span.line > len(lines):
            return type(node).__name__
        if span.line == span.end_line:
            text = lines[span.line - 1][span.column - 1 : span.end_column - 1]
        else:
            parts = [lines[span.line - 1][span.column - 1 :]]
            parts += lines[span.line : span.end_line - 1]
            parts.append(lines[span.end_line - 1][: span.end_column - 1])
            text = " ".join(parts)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------ running mutants


class MutantEvaluator:
    """``evaluate(action, context, usage, overrides)`` for a pack with one rule replaced.

    The replaced rule goes through the normal back end on its own: ``emit_python``
    over a program holding just that rule, then ``sandbox.load``. Its check and
    its ``explain`` function take the place of the original rule's in the pack's
    loaded evaluator, so a mutant costs the compile of one rule, not of the pack.
    The module is loaded once per envelope override set, with the values the
    pack's own evaluator computed for that set.
    """

    def __init__(self, base: PackEvaluator, pack: Pack, rule: ir.Rule):
        self.base = base
        self.rule = rule
        self.rules = tuple(rule if r.index == rule.index else r for r in pack.program.rules)
        alone = dataclasses.replace(pack.program, rules=(rule,))
        self.python = emit_python(alone, f"mutant of {pack.name} {pack.version}: {rule.id}")
        self.packs: dict[str, Pack] = {}

    def pack_for(self, overrides: dict[str, dict[str, Any]] | None) -> Pack:
        key = json.dumps(overrides or {}, sort_keys=True, default=str)
        if key not in self.packs:
            original = self.base.pack_for(overrides)
            native = original.evaluator
            if not isinstance(native, NativeEvaluator):
                raise TypeError("mutants are spliced into a pack's native evaluator")
            values = original.envelopes
            envelope_values = {
                short: _binding(values[dotted.split(".", 1)[0]][dotted.split(".", 1)[1]])
                for dotted, short in self.python.envelope_names.items()
            }
            loaded = load_module(self.python.source, f"<mutant {self.rule.id}>", envelope_values)
            index = self.rule.index
            namespace = dict(native.namespace)
            ranks = tuple(RANKS.get(r.verdict, -1) for r in self.rules)
            namespace["evaluate"] = _spliced(
                native.namespace["evaluate"], loaded["evaluate"], index, ranks
            )
            namespace[f"explain_{index}"] = loaded[f"explain_{index}"]
            python = native.python
            # the values each rule's evidence reads, and whether its explain_N waits
            bindings = {**python.bindings, index: self.python.bindings[index]}
            deferred = (python.deferred - {index}) | (self.python.deferred & {index})
            python = dataclasses.replace(python, bindings=bindings, deferred=deferred)
            program = dataclasses.replace(original.program, rules=self.rules)
            checked = dataclasses.replace(original.checked, program=program)
            evaluator = NativeEvaluator(checked, python, namespace)
            self.packs[key] = Pack(CompiledPack(checked, evaluator), [])
        return self.packs[key]

    def __call__(self, action: Any, context: Any, usage: Any, overrides: Any) -> Verdict:
        return self.pack_for(overrides).evaluate(action, context, usage)


def _spliced(
    whole: Callable[..., tuple[list[Any], int]],
    alone: Callable[..., tuple[list[Any], int]],
    index: int,
    ranks: tuple[int, ...],
) -> Callable[[Any, Any, Any], tuple[list[Any], int]]:
    """The pack's ``evaluate`` with rule ``index`` decided by ``alone`` instead.

    ``evaluate`` returns the records of the rules that held, in pack order (each
    record's first item is the rule's index), and the rank they reach, found
    again here from ``ranks`` (-1 for a ``warn``), since the mutant may change it.
    """

    def evaluate(action: Any, context: Any, usage: Any) -> tuple[list[Any], int]:
        held = [r for r in whole(action, context, usage)[0] if r[0] != index]
        mutant, _ = alone(action, context, usage)
        if mutant:
            held = sorted([*held, *mutant], key=lambda record: record[0])
        return held, max((ranks[r[0]] for r in held), default=-1)

    return evaluate


def _binding(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def run_mutants(
    pack: Pack,
    cases: list[TestCase],
    *,
    evaluate: PackEvaluator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MutationReport:
    """Run ``cases`` against every mutant of ``pack``; only cases the pack passes take part.

    Each mutant stops at its first failing case. Cases that killed a mutant are
    tried first on the next one: the mutants of one rule tend to fall to the
    same test.
    """
    started = perf_counter()
    base = evaluate or PackEvaluator(pack)
    passing = [case for case in cases if run_case(case, base).passed]
    made = mutants(pack)
    seen: set[tuple[int, str, str]] = set()
    for rule in pack.program.rules:  # a mutant that emits the rule's own code changes nothing
        alone = MutantEvaluator(base, pack, rule).python.source.split("\n", 1)[1]
        seen.add((rule.index, rule.verdict, alone))
    results: list[MutantResult] = []
    killers: list[int] = []  # indices into ``passing``, most recent killer first
    for number, mutant in enumerate(made, 1):
        if progress is not None:
            progress(number, len(made))
        evaluator = MutantEvaluator(base, pack, mutant.replacement)
        rule = mutant.replacement
        code = (rule.index, rule.verdict, evaluator.python.source.split("\n", 1)[1])
        if code in seen:
            continue  # the same code as an earlier mutant
        seen.add(code)
        order = killers + [i for i in range(len(passing)) if i not in killers]
        killed_by = None
        for index in order:
            if not run_case(passing[index], evaluator).passed:
                killed_by = passing[index].name
                if index in killers:
                    killers.remove(index)
                killers.insert(0, index)
                break
        results.append(MutantResult(mutant, killed_by))
    return MutationReport(tuple(results), len(passing), perf_counter() - started)
