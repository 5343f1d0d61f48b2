"""Invariants for ``aigre-policy test``: proved by the solver where it finishes, else searched.

Each invariant is first put to the solver; a proof or a refutation (whose
counterexample reproduced natively) stands, and an ``unknown`` falls back to the
hypothesis search of ``testing.invariants``. Each result says which it came from.
Without z3 every invariant is searched, and the note says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aigre_policy.testing.invariants import InvariantResult, check_invariant
from aigre_policy.testing.strategies import collect_hints


def invariant_results(
    pack: Any, *, seed: int, examples: int, prove: bool = False
) -> tuple[list[InvariantResult], str]:
    """Every invariant of ``pack``, in pack order, and a note on how they were checked."""
    invariants = pack.program.invariants
    proofs: dict[int, Any] = {}
    note = "searched"
    checked = getattr(pack, "checked", None)
    if prove and checked is not None:
        try:
            from aigre_policy.solver.prove import prove_pack  # z3 only when it is installed
        except ImportError:
            note = 'searched: z3 is not installed (pip install "aigre-policy[prove]")'
        else:
            report = prove_pack(checked, pack)
            proofs = {i: r for i, r in enumerate(report.results) if r.status != "unknown"}
            note = f"{len(proofs)} settled by the solver, {len(invariants) - len(proofs)} searched"
    hints = collect_hints(pack.program, pack.envelopes)
    results = []
    for i, invariant in enumerate(invariants):
        proof = proofs.get(i)
        if proof is None:
            found = check_invariant(pack, invariant, seed=seed, examples=examples, hints=hints)
            results.append(replace(found, method="search"))
        elif proof.status == "proved":
            results.append(InvariantResult(invariant, "proved", 0, 0, method="proof"))
        else:
            results.append(
                InvariantResult(
                    invariant,
                    "broken",
                    0,
                    0,
                    proof.counterexample,
                    proof.decision,
                    proof.fired,
                    method="proof",
                )
            )
    return results, note
