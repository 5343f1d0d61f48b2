"""Give a loaded ``Pack`` its engine: the seam between the facade and the Rego target.

``load_pack(path, engine=...)`` calls ``attach`` when the pack is to run on an
engine other than native, or holds hand-written Rego (which the native engine
evaluates with regopy and merges). Errors the Rego target reports for the pack
raise ``CompileError``, as any other compile problem does.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any

from aigre_policy.diagnostics import CompileError, SourceText, has_errors
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


class EngineCall:
    """``Pack`` hands each validated input here when it runs on another engine."""

    def __init__(self, engine: DecisionEngine, pack_ref: dict[str, str]):
        self.engine = engine
        self._ref = pack_ref

    def __call__(self, document: dict[str, Any], started: int) -> Verdict:
        decision = self.engine.decide(document)
        if decision["fail_closed"]:  # a fault the program caught: the pack fails closed
            raise EngineFault("; ".join(str(e.get("message", e)) for e in decision["errors"]))
        elapsed = (perf_counter_ns() - started) / 1000
        return DocumentVerdict(decision, self._ref, document, elapsed)


class HandwrittenCall:
    """For the native engine: merge what the pack's hand-written Rego reports."""

    def __init__(self, program: RegoProgram, default: str):
        self._runner = HandwrittenRunner(program)
        self._default = default

    def __call__(self, verdict: Verdict, document: dict[str, Any]) -> Verdict:
        return merged(verdict, self._runner(document), self._default)


def attach(pack: Any, engine: str, sources: SourceText) -> None:
    """Set ``pack``'s engine (``rego``, or one registered); ``CompileError`` if it cannot run."""
    if engine != "native" and engine not in ENGINES:
        known = ", ".join(engine_names())
        raise ValueError(f"unknown engine {engine!r}; engines: {known}")
    program = emit_rego(pack._compiled)
    if engine == "native":
        if pack._compiled.handwritten:
            pack._handwritten = HandwrittenCall(program, pack.default)
        return
    if has_errors(program.diagnostics):
        raise CompileError(list(program.diagnostics), sources)
    pack.warnings = [
        *pack.warnings,
        *(d for d in program.diagnostics if d.severity.name == "WARNING"),
    ]
    pack.engine = engine
    pack.rego = program
    pack._engine = EngineCall(ENGINES[engine](program), pack._ref)


def rego_program(pack: Any) -> RegoProgram:
    """The pack's Rego program: the one its engine runs, else emitted now."""
    return getattr(pack, "rego", None) or emit_rego(pack._compiled)


def render_modules(program: RegoProgram) -> str:
    """Every module of a program, each under a ``# file:`` line, for reading."""
    return "".join(f"# file: {path}\n{source}\n" for path, source in program.modules.items())
