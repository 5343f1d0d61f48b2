"""Invariants for ``aigre-policy test``: proved by the solver where it finishes, else searched.

Each invariant is first put to the solver (the default when z3 is installed; ``test
--no-prove`` opts out); a proof or a refutation (whose counterexample reproduced
natively) stands, and an ``unknown`` falls back to the hypothesis search of
``testing.invariants``. Each result says which it came from and, when it was searched,
why the solver did not settle it. Without z3 every invariant is searched, and the note
says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aigre_policy.testing.invariants import InvariantResult, check_invariant
from aigre_policy.testing.strategies import collect_hints

NO_Z3 = 'z3 is not installed (pip install "aigre-policy[prove]")'


def invariant_results(
    pack: Any, *, seed: int, examples: int, prove: bool = True
) -> tuple[list[InvariantResult], str]:
    """Every invariant of ``pack``, in pack order, and a note on how they were checked."""
    invariants = pack.program.invariants
    proofs: dict[int, Any] = {}
    fallback = {i: "" for i in range(len(invariants))}  # why each invariant was searched
    note = "searched"
    checked: Any = getattr(pack, "checked", None)
    if prove and checked is None:
        note = "searched: a bundle is not put to the solver"
        fallback = dict.fromkeys(fallback, "a bundle is not put to the solver")
    elif prove:
        try:
            from aigre_policy.solver.prove import prove_pack  # z3 only when it is installed
            from aigre_policy.solver.solve import SoundnessError  # (the same)
        except ImportError:
            note = f"searched: {NO_Z3}"
            fallback = dict.fromkeys(fallback, NO_Z3)
        else:
            try:
                report = prove_pack(checked, pack)
            except SoundnessError as exc:  # a fault of the product: the search still runs
                reason = f"the solver's witness did not reproduce natively ({exc})"
                fallback = dict.fromkeys(fallback, reason)
            else:
                for i, r in enumerate(report.results):
                    if r.status == "unknown":
                        fallback[i] = f"the solver did not settle it: {r.reason}"
                    else:
                        proofs[i] = r
            note = f"{len(proofs)} settled by the solver, {len(invariants) - len(proofs)} searched"
    hints = collect_hints(pack.program, pack.envelopes)
    results = []
    for i, invariant in enumerate(invariants):
        proof = proofs.get(i)
        if proof is None:
            found = check_invariant(pack, invariant, seed=seed, examples=examples, hints=hints)
            results.append(replace(found, method="search", fallback=fallback[i]))
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
