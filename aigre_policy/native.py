"""The native backend: a ``CheckedPack`` as generated Python, loaded in the sandbox.

``build(checked)`` emits the pack's program as Python (``codegen.emit_python``),
verifies it against the allowlist and compiles it (``sandbox.load``), and returns a
``NativeEvaluator``: the fastest engine, and the default.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from aigre_policy.cards import rule_card
from aigre_policy.checked import CheckedPack
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.emitted import EmittedModule
from aigre_policy.lattice import DECISIONS, NO_RULE, decision_of
from aigre_policy.sandbox import load
from aigre_policy.verdict import Issuer, RuleCard, Verdict


class NativeEvaluator:
    """The generated evaluator of one pack, behind the backend protocol."""

    engine = "native"
    warnings: tuple[Diagnostic, ...] = ()

    def __init__(self, checked: CheckedPack, python: EmittedModule, namespace: dict[str, Any]):
        """``python`` as emitted for ``checked.program`` and ``namespace`` as loaded from it."""
        self.python = python
        self.namespace = namespace
        self.cards: tuple[RuleCard, ...] = tuple(
            rule_card(
                r,
                python.bindings[r.index],
                checked.root,
                namespace[f"explain_{r.index}"] if r.index in python.deferred else None,
            )
            for r in checked.program.rules
        )
        issuer = Issuer(checked.ref, self.cards)
        self.decide = _decider(namespace["evaluate"], checked.policy.default, issuer)


def emit(checked: CheckedPack) -> EmittedModule:
    """The pack's program as Python source, as ``build`` loads it."""
    from aigre_policy.codegen import emit_python  # not needed to load a cached pack

    manifest = checked.manifest
    return emit_python(checked.program, f"pack {manifest.name} {manifest.version}")


def build(checked: CheckedPack) -> NativeEvaluator:
    """The pack's program generated as Python and loaded; ``sandbox.UnsafeCode`` never
    comes of a checked program (the allowlist is what code generation emits)."""
    return load_emitted(checked, emit(checked))


def load_emitted(
    checked: CheckedPack, python: EmittedModule, *, lazy: bool = False
) -> NativeEvaluator:
    """The evaluator of ``python`` as emitted for ``checked``, verified against the
    allowlist and compiled (the compile cache revives a stored pack through this, with
    ``lazy``: each ``explain_N`` verified and compiled on its first call)."""
    manifest = checked.manifest
    values = checked.envelopes
    bindings = {
        short: _frozen(values[dotted.split(".", 1)[0]][dotted.split(".", 1)[1]])
        for dotted, short in python.envelope_names.items()
    }
    namespace = load(python.source, f"<aigre-policy {manifest.name}>", bindings, lazy=lazy)
    return NativeEvaluator(checked, python, namespace)


def _frozen(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def _decider(
    evaluate: Callable[..., tuple[Any, int]], default: str, issuer: Issuer
) -> Callable[[dict[str, Any], int], Verdict]:
    """``decide(document, started)``: the generated rules, a verdict.

    ``evaluate`` gives the records of the rules that held and the rank they reach;
    the rank picks the decision from the lattice, -1 (no rule decided) the pack's
    default. A closure: this is on every decision's path, and its names are cells.
    """

    # by rank + 1: the pack's default when no rule decided (rank -1), else the lattice's
    decisions = tuple(decision_of(rank, default) for rank in range(NO_RULE, len(DECISIONS)))

    def decide(document: dict[str, Any], started: int) -> Verdict:
        fired, rank = evaluate(document["action"], document["context"], document["usage"])
        elapsed = (perf_counter_ns() - started) / 1000
        return Verdict(decisions[rank + 1], fired, issuer, document, elapsed)

    return decide
