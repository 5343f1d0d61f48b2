"""``--profile``: what each rule costs to evaluate, to find the rule that slows a pack.

The generated evaluator runs all rules in one function (sharing indexes and reads), so
it has no per-rule clock. Each rule's condition is timed apart instead, with the
reference interpreter, over the same inputs: absolute figures are the interpreter's
(several times the evaluator's), the ranking and the shares are what to read. Run on
demand only, never on the decision path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aigre_policy import interpreter
from aigre_policy.plain import NotPlain, as_plain

REPEATS = 5  # the fastest of this many runs per rule and input: timer and scheduler noise


@dataclass(frozen=True, slots=True)
class RuleTime:
    rule: str
    verdict: str
    location: dict[str, Any]
    total_us: float  # summed over the inputs
    inputs: int

    @property
    def mean_us(self) -> float:
        return self.total_us / self.inputs if self.inputs else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule,
            "verdict": self.verdict,
            "location": self.location,
            "total_us": round(self.total_us, 3),
            "mean_us": round(self.mean_us, 3),
            "inputs": self.inputs,
        }


def rule_times(pack: Any, inputs: Iterable[tuple[Any, Any, Any]]) -> list[RuleTime]:
    """Each rule of ``pack`` timed over ``inputs`` (action, context, usage), costliest first;
    an input that is not JSON data is skipped, a condition that fails counts its time."""
    scopes = []
    for action, context, usage in inputs:
        try:
            scopes.append(
                as_plain(
                    {
                        "action": action,
                        "context": {} if context is None else context,
                        "usage": {} if usage is None else usage,
                    }
                )
            )
        except NotPlain:
            continue
    envelopes = pack.envelopes
    found = []
    for rule in pack.program.rules:
        total = 0.0
        for scope in scopes:
            best = float("inf")
            for _ in range(REPEATS):
                started = time.perf_counter_ns()
                # a fault costs what it cost; the verdict reports it
                with contextlib.suppress(Exception):
                    interpreter.evaluate(rule.condition, scope, envelopes)
                best = min(best, time.perf_counter_ns() - started)
            total += best / 1000
        found.append(RuleTime(rule.id, rule.verdict, rule.location, total, len(scopes)))
    return sorted(found, key=lambda r: (-r.total_us, r.rule))
