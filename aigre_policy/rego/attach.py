"""The Rego backend: a ``CheckedPack`` to the evaluator a ``Pack`` is built with.

``load_pack(path, engine=...)`` asks for one when the pack is to run on an engine
other than native, or holds hand-written Rego (which the native engine evaluates
with regopy and merges). Errors the Rego target reports for the pack raise
``CompileError``, as any other compile problem does. Nothing here touches a
``Pack``: it receives the ``RegoBackend`` when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

from aigre_policy.compiler import CheckedPack
from aigre_policy.diagnostics import CompileError, Diagnostic, Severity, SourceText, has_errors
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


@dataclass(frozen=True)
class RegoBackend:
    """What a ``Pack`` runs with when Rego takes part in its decisions."""

    engine: str  # the engine's registered name, or native (hand-written Rego merged)
    program: RegoProgram | None  # the program the engine runs; None on native
    warnings: tuple[Diagnostic, ...]  # what the Rego target warns of
    decide: EngineCall | None  # judges every validated input on a Rego engine
    merge: HandwrittenCall | None  # on native: folds in the hand-written modules' reports


def pack_ref(checked: CheckedPack) -> dict[str, str]:
    """The pack's name, version and digest, as every verdict names it."""
    manifest = checked.manifest
    return {"name": manifest.name, "version": manifest.version, "digest": checked.digest}


def rego_backend(checked: CheckedPack, engine: str, sources: SourceText) -> RegoBackend:
    """The evaluator for ``engine`` (``rego``, or one registered); ``CompileError`` if it
    cannot run the pack."""
    if engine != "native" and engine not in ENGINES:
        known = ", ".join(engine_names())
        raise ValueError(f"unknown engine {engine!r}; engines: {known}")
    program = emit_rego(checked)
    if engine == "native":
        merge = HandwrittenCall(program, checked.policy.default) if checked.handwritten else None
        return RegoBackend("native", None, (), None, merge)
    if has_errors(program.diagnostics):
        raise CompileError(list(program.diagnostics), sources)
    warnings = tuple(d for d in program.diagnostics if d.severity is Severity.WARNING)
    decide = EngineCall(ENGINES[engine](program), pack_ref(checked))
    return RegoBackend(engine, program, warnings, decide, None)


def rego_program(pack: Any) -> RegoProgram:
    """The pack's Rego program: the one its engine runs, else emitted now."""
    return getattr(pack, "rego", None) or emit_rego(pack.checked)


def render_modules(program: RegoProgram) -> str:
    """Every module of a program, each under a ``# file:`` line, for reading."""
    return "".join(f"# file: {path}\n{source}\n" for path, source in program.modules.items())
