"""The test runner: evaluate each case and compare the verdict with what it expects.

``run_case`` takes any ``evaluate(action, context, usage, overrides) -> Verdict``
so other backends (and mutants) run through the same comparison;
``pack_evaluator`` is the one for a compiled pack. A verdict that failed closed
never passes a test: a test whose input breaks the schema proves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from aigre_policy.diagnostics import CompileError, render
from aigre_policy.pack import Pack, load_pack
from aigre_policy.testing.cases import Expectation, TestCase
from aigre_policy.verdict import Verdict

Overrides = dict[str, dict[str, Any]]
Evaluate = Callable[[Any, Any, Any, Overrides], Verdict]

PASSED, FAILED, ERROR = "passed", "failed", "error"


@dataclass(frozen=True)
class Mismatch:
    """One way a verdict differs from the expectation."""

    what: str  # decision, rules, rules_at_least, silent, message, evidence, input
    expected: Any
    actual: Any
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "expected": self.expected,
            "actual": self.actual,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CaseResult:
    case: TestCase
    status: str  # passed, failed or error (the test could not be evaluated)
    mismatches: tuple[Mismatch, ...] = ()
    verdict: Verdict | None = None
    error: str | None = None
    elapsed_ms: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass(frozen=True)
class SuiteResult:
    pack: Pack
    results: tuple[CaseResult, ...]
    elapsed_ms: float = 0.0
    stopped_early: bool = False  # --fail-fast stopped at the first failure

    @property
    def passed(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == PASSED]

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def errors(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == ERROR]

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)


# ------------------------------------------------------------------ evaluation


class PackEvaluator:
    """``evaluate(action, context, usage, overrides)`` for a pack.

    Envelope overrides recompile the pack with ``load_pack(root, envelopes=...)``,
    once per distinct override set, for the pack's engine.
    """

    def __init__(self, pack: Pack):
        self.pack = pack
        self._packs: dict[str, Pack] = {}

    def pack_for(self, overrides: Overrides | None) -> Pack:
        """The pack with these envelope values; raises ``CompileError`` if they do not fit."""
        if not overrides:
            return self.pack
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in self._packs:
            self._packs[key] = load_pack(
                self.pack.root, envelopes=overrides, engine=self.pack.engine
            )
        return self._packs[key]

    def __call__(self, action: Any, context: Any, usage: Any, overrides: Overrides) -> Verdict:
        return self.pack_for(overrides).evaluate(action, context, usage)


def pack_evaluator(pack: Pack) -> PackEvaluator:
    return PackEvaluator(pack)


def run_case(case: TestCase, evaluate: Evaluate) -> CaseResult:
    """Evaluate one case and compare; any exception becomes an ``error`` result."""
    started = perf_counter()
    try:
        verdict = evaluate(case.action, case.context, case.usage, case.overrides)
    except CompileError as exc:
        problems = "; ".join(render(d).splitlines()[0] for d in exc.diagnostics[:3])
        return CaseResult(case, ERROR, error=f"the envelope overrides do not compile: {problems}")
    except Exception as exc:
        return CaseResult(case, ERROR, error=f"{type(exc).__name__}: {exc}")
    mismatches = tuple(compare(case.expectation, verdict))
    elapsed = (perf_counter() - started) * 1000
    return CaseResult(case, FAILED if mismatches else PASSED, mismatches, verdict, None, elapsed)


def run_suite(
    pack: Pack,
    cases: Iterable[TestCase],
    *,
    evaluate: Evaluate | None = None,
    fail_fast: bool = False,
) -> SuiteResult:
    """Run ``cases`` in order; with ``fail_fast`` stop after the first failure or error."""
    evaluate = evaluate or pack_evaluator(pack)
    started = perf_counter()
    results: list[CaseResult] = []
    stopped = False
    for case in cases:
        result = run_case(case, evaluate)
        results.append(result)
        if fail_fast and not result.passed:
            stopped = True
            break
    elapsed = (perf_counter() - started) * 1000
    return SuiteResult(pack, tuple(results), elapsed, stopped)


# ------------------------------------------------------------------ comparison


def fired_ids(verdict: Verdict) -> list[str]:
    """Every rule that fired, warnings included, in pack order of the verdict."""
    return [*verdict.rule_ids, *(w["id"] for w in verdict.warnings)]


def compare(expect: Expectation, verdict: Verdict) -> list[Mismatch]:
    """How ``verdict`` falls short of ``expect``; empty when the test passes."""
    if verdict.fail_closed:
        detail = "; ".join(
            f"{e.get('path') or '<input>'}: {e.get('message')}" for e in verdict.errors[:5]
        )
        return [Mismatch("input", "a valid input", f"failed closed: {verdict.decision}", detail)]
    found: list[Mismatch] = []
    fired = fired_ids(verdict)
    records = [*verdict.fired, *verdict.warnings]
    if expect.decision is not None and verdict.decision != expect.decision:
        found.append(Mismatch("decision", expect.decision, verdict.decision))
    if expect.rules is not None and sorted(set(expect.rules)) != sorted(set(fired)):
        missing = [r for r in expect.rules if r not in fired]
        extra = [r for r in fired if r not in expect.rules]
        found.append(
            Mismatch("rules", sorted(expect.rules), sorted(fired), _missing_extra(missing, extra))
        )
    missing = [r for r in expect.rules_at_least if r not in fired]
    if missing:
        found.append(
            Mismatch("rules_at_least", list(expect.rules_at_least), fired, _missing_extra(missing))
        )
    loud = [r for r in expect.silent if r in fired]
    if loud:
        found.append(Mismatch("silent", list(expect.silent), fired, "fired: " + ", ".join(loud)))
    messages = [record["message"] for record in records]
    for text in expect.message_contains:
        if not any(text in message for message in messages):
            found.append(Mismatch("message", text, messages, "no fired rule's message has it"))
    for path, value in expect.evidence:
        seen = [r["bindings"][path] for r in records if path in r.get("bindings", {})]
        if not any(same_value(value, v) for v in seen):
            detail = "no fired rule read it" if not seen else "the fired rules read other values"
            found.append(Mismatch("evidence", {path: value}, {path: seen}, detail))
    return found


def same_value(a: Any, b: Any) -> bool:
    """Equality that keeps ``true`` apart from ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _missing_extra(missing: list[str], extra: list[str] | None = None) -> str:
    parts = []
    if missing:
        parts.append("did not fire: " + ", ".join(missing))
    if extra:
        parts.append("also fired: " + ", ".join(extra))
    return "; ".join(parts)


@dataclass(frozen=True)
class Filter:
    """``-k`` filters: a case runs when its name contains any of the words (case-insensitive)."""

    words: tuple[str, ...] = field(default=())

    def __call__(self, case: TestCase) -> bool:
        if not self.words:
            return True
        name = case.name.lower()
        return any(word.lower() in name for word in self.words)
