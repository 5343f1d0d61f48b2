"""Invariants proved for every input the schema admits, or refuted with an input that breaks them.

For each ``invariant``: is there an input the schema admits, within the stated
bounds, on which the ``when`` condition holds (without failing) and the decision
breaks the expectation? ``unsat`` is a proof; a model is a counterexample, which
is evaluated natively and must break the invariant there too. A timeout, or a
witness that rests on a construct held free, is ``unknown``: never ``proved``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import z3

from aigre_policy import ir, lattice
from aigre_policy.compiler import CheckedPack
from aigre_policy.solver import DEFAULT_LIST_BOUND, DEFAULT_TIMEOUT_S
from aigre_policy.solver.bounds import conditions_of, length_hints
from aigre_policy.solver.decision import PackFormula, encode_pack
from aigre_policy.solver.encode import Opaque
from aigre_policy.solver.inputs import InputSpace, Unencodable
from aigre_policy.solver.shrink import shrink
from aigre_policy.solver.solve import Session
from aigre_policy.solver.values import Arithmetic
from aigre_policy.testing.invariants import applies, holds
from aigre_policy.validation import InputValidator

PROVED, REFUTED, UNKNOWN = "proved", "refuted", "unknown"


@dataclass(frozen=True)
class Bounds:
    """What the proof covers beyond the schema: the list-length bound, and what rounds."""

    list_bound: int
    bounded_lists: dict[str, int]
    rounded: tuple[str, ...]
    opaque: tuple[Opaque, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "list_bound": self.list_bound,
            "bounded_lists": dict(self.bounded_lists),
            "timestamps": "whole seconds, 0001-01-01 to 9999-12-31 UTC",
            "rounded_operations": list(self.rounded),
            "not_encodable": [
                {"construct": o.construct, "location": str(o.span)} for o in self.opaque
            ],
        }


@dataclass(frozen=True)
class InvariantProof:
    invariant: ir.Invariant
    status: str
    elapsed_s: float
    reason: str = ""
    counterexample: dict[str, Any] | None = None
    decision: str | None = None
    fired: tuple[str, ...] = ()
    failed_closed: str = ""  # why the counterexample's verdict failed closed, when it did

    @property
    def expectation(self) -> str:
        relation = "" if self.invariant.relation == "is" else f"{self.invariant.relation} "
        return f"{relation}{self.invariant.decision}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.invariant.name,
            "location": self.invariant.span.to_dict(),
            "expect": self.expectation,
            "status": self.status,
            "elapsed_s": round(self.elapsed_s, 4),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.counterexample is not None:
            out["counterexample"] = self.counterexample
            out["decision"] = self.decision
            out["fired"] = list(self.fired)
            if self.failed_closed:
                out["failed_closed"] = self.failed_closed
        return out


@dataclass
class ProofReport:
    pack: str
    results: list[InvariantProof]
    bounds: Bounds | None
    elapsed_s: float
    problem: str = ""  # why nothing could be encoded
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status == PROVED for r in self.results) and not self.problem

    def to_dict(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "ok": self.ok,
            "invariants": [r.to_dict() for r in self.results],
            "bounds": self.bounds.to_dict() if self.bounds else None,
            "problem": self.problem or None,
            "elapsed_s": round(self.elapsed_s, 4),
        }


def relation_formula(invariant: ir.Invariant, rank: Any) -> Any:
    want = lattice.LATTICE[invariant.decision]
    return {
        "is": rank == want,
        "not": rank != want,
        "at least": rank >= want,
        "at most": rank <= want,
    }[invariant.relation]


def prove_pack(
    checked: CheckedPack,
    pack: Any,
    *,
    list_bound: int = DEFAULT_LIST_BOUND,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    symbolic_envelopes: bool = False,
) -> ProofReport:
    """Prove or refute every invariant of ``checked``; ``pack`` (a loaded ``Pack``) re-checks."""
    started = time.perf_counter()
    name = f"{checked.manifest.name} {checked.manifest.version}"
    lengths = length_hints(conditions_of(checked.program), checked.envelopes)
    space = InputSpace(checked.input_schema, list_bound, lengths)
    arithmetic = Arithmetic()
    try:
        formula = encode_pack(checked, space, arithmetic, symbolic_envelopes=symbolic_envelopes)
    except Unencodable as exc:
        results = [
            InvariantProof(inv, UNKNOWN, 0.0, f"not encodable: {exc.construct}")
            for inv in checked.program.invariants
        ]
        return ProofReport(name, results, None, time.perf_counter() - started, exc.construct)
    conditions = []
    for invariant in checked.program.invariants:
        if invariant.condition is None:
            conditions.append((z3.BoolVal(True), z3.BoolVal(False)))
        else:
            conditions.append(formula.encoder.condition(invariant.condition))
    session = Session(space, arithmetic, [formula.encoder], timeout_s)
    results = [
        _prove_one(invariant, when, fails, formula, session, pack)
        for invariant, (when, fails) in zip(checked.program.invariants, conditions, strict=True)
    ]
    bounds = Bounds(
        list_bound,
        dict(space.bounded),
        tuple(arithmetic.rounded),
        tuple(formula.encoder.opaque),
    )
    return ProofReport(name, results, bounds, time.perf_counter() - started)


def _prove_one(
    invariant: ir.Invariant,
    when: Any,
    when_fails: Any,
    formula: PackFormula,
    session: Session,
    pack: Any,
) -> InvariantProof:
    started = time.perf_counter()
    breach = [when, z3.Not(when_fails), z3.Not(relation_formula(invariant, formula.rank))]

    def reproduce(document: dict[str, Any]) -> tuple[bool, Any]:
        judge = pack
        if session.envelopes:  # --symbolic-envelopes: the witness sets envelope values
            from aigre_policy.pack import load_pack

            judge = load_pack(formula.checked.root, session.envelopes)
        verdict = judge.evaluate(document["action"], document["context"], document["usage"])
        broken = applies(invariant, document, judge.envelopes) and not holds(
            invariant, verdict.decision
        )
        if verdict.fail_closed and verdict.errors and verdict.errors[0].get("kind") == "input":
            return False, f"the input breaks the schema: {verdict.errors[0]['message']}"
        return broken, verdict

    found = session.witness(breach, reproduce)
    if found.status == "sat" and found.document is not None:
        valid = InputValidator(formula.checked.input_schema).is_valid

        def still(document: dict[str, Any]) -> bool:
            return reproduce(document)[0]

        smaller = shrink(found.document, still, valid)
        found = replace(found, document=smaller, detail=reproduce(smaller)[1])
        if session.envelopes:  # the test sets them as the witness did
            found = replace(found, document={**smaller, "with": session.envelopes})
    elapsed = time.perf_counter() - started
    if found.status == "unsat":
        return InvariantProof(invariant, PROVED, elapsed)
    if found.status == "sat":
        verdict = found.detail
        return InvariantProof(
            invariant,
            REFUTED,
            elapsed,
            counterexample=found.document,
            decision=verdict.decision,
            fired=tuple(verdict.rule_ids),
            failed_closed=verdict.errors[0]["message"] if verdict.fail_closed else "",
        )
    return InvariantProof(invariant, UNKNOWN, elapsed, found.reason)
