"""The Rego backend: a ``CheckedPack`` to the evaluator a ``Pack`` is built with.

``backend.build(checked, engine)`` comes here when the pack is to run on a Rego
engine (``rego``, or one registered with ``rego.engine.register_engine``), or holds
hand-written Rego that a Python engine evaluates with regopy and merges. Errors the
Rego target reports for the pack raise ``CompileError``, as any other compile
problem does. Nothing here touches a ``Pack``: it receives the evaluator when it is built.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any

from aigre_policy.checked import CheckedPack, Evaluator
from aigre_policy.diagnostics import CompileError, Severity, has_errors
from aigre_policy.rego.emit import RegoProgram, emit_rego
from aigre_policy.rego.engine import (
    ENGINES,
    DecisionEngine,
    DocumentVerdict,
    EngineFault,
    HandwrittenRunner,
    engine_names,
    merged,
)
from aigre_policy.verdict import Verdict


class RegoEvaluator:
    """A pack's Rego program on one Rego engine, behind the backend protocol."""

    def __init__(self, engine: str, program: RegoProgram, checked: CheckedPack):
        self.engine = engine
        self.rego = program  # the program the engine runs
        self.warnings = tuple(d for d in program.diagnostics if d.severity is Severity.WARNING)
        self.runner: DecisionEngine = ENGINES[engine](program)
        self.ref = checked.ref

    def decide(self, document: dict[str, Any], started: int) -> Verdict:
        decision = self.runner.decide(document)
        if decision["fail_closed"]:  # a fault the program caught: the pack fails closed
            raise EngineFault("; ".join(str(e.get("message", e)) for e in decision["errors"]))
        elapsed = (perf_counter_ns() - started) / 1000
        return DocumentVerdict(decision, self.ref, document, elapsed)


class HandwrittenMerge:
    """A Python engine's evaluator with what the pack's hand-written Rego reports merged in."""

    def __init__(self, inner: Evaluator, program: RegoProgram, default: str):
        self.inner = inner
        self.engine = inner.engine
        self.warnings = inner.warnings
        self.runner = HandwrittenRunner(program)
        self.default = default

    def decide(self, document: dict[str, Any], started: int) -> Verdict:
        verdict = self.inner.decide(document, started)
        return merged(verdict, self.runner(document), self.default, document)


def build(checked: CheckedPack, engine: str) -> RegoEvaluator:
    """The evaluator for Rego engine ``engine``; ``CompileError`` if it cannot run the pack."""
    if engine not in ENGINES:
        known = ", ".join([*engine_names(), "interpreter"])
        raise ValueError(f"unknown engine {engine!r}; engines: {known}")
    program = emit_rego(checked)
    if has_errors(program.diagnostics):
        raise CompileError(list(program.diagnostics))
    return RegoEvaluator(engine, program, checked)


def with_handwritten(evaluator: Evaluator, checked: CheckedPack) -> HandwrittenMerge:
    """``evaluator`` (native or the interpreter) merging the pack's hand-written modules."""
    return HandwrittenMerge(evaluator, emit_rego(checked), checked.policy.default)


def rego_program(pack: Any) -> RegoProgram:
    """The pack's Rego program: the one its engine runs, else emitted now."""
    return getattr(pack, "rego", None) or emit_rego(pack.checked)


def render_modules(program: RegoProgram) -> str:
    """Every module of a program, each under a ``# file:`` line, for reading."""
    return "".join(f"# file: {path}\n{source}\n" for path, source in program.modules.items())
