"""Two versions of a pack compared exactly: equivalent, or each class of change with a witness.

Both packs are encoded over one input space. Is there an input on which their
outcomes differ (a decision, or failing closed)? ``unsat`` proves them
equivalent within the stated bounds. Otherwise each model is a witness: it is
evaluated natively by both packs, whose outcomes must differ there too; its change
class (old outcome → new outcome) is recorded with the rules that fired on one
side only, then ruled out, and the solver is asked again until no class is left.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any

import z3

from aigre_policy import lattice
from aigre_policy.compiler import CheckedPack
from aigre_policy.solver import DEFAULT_LIST_BOUND, DEFAULT_TIMEOUT_S
from aigre_policy.solver.bounds import conditions_of, length_hints
from aigre_policy.solver.decision import OUTCOMES, encode_pack, outcome_of
from aigre_policy.solver.inputs import InputSpace, Unencodable
from aigre_policy.solver.prove import Bounds
from aigre_policy.solver.shrink import shrink
from aigre_policy.solver.solve import Session
from aigre_policy.solver.values import Arithmetic
from aigre_policy.validation import InputValidator

MAX_CLASSES = len(OUTCOMES) * (len(OUTCOMES) - 1)


@dataclass(frozen=True)
class Change:
    """One class of change: inputs the old pack judged ``old`` and the new one ``new``."""

    old: str
    new: str
    witness: dict[str, Any]
    only_old: tuple[str, ...]  # "rule-id (verdict)" fired under the old pack only
    only_new: tuple[str, ...]
    looser: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "direction": "looser" if self.looser else "stricter",
            "rules": {"old_only": list(self.only_old), "new_only": list(self.only_new)},
            "witness": self.witness,
        }


@dataclass
class DiffReport:
    old: dict[str, str]
    new: dict[str, str]
    status: str  # equivalent, changed, unknown
    changes: list[Change] = field(default_factory=list)
    reason: str = ""
    bounds: Bounds | None = None
    elapsed_s: float = 0.0
    log: dict[str, Any] | None = None

    @property
    def looser(self) -> list[Change]:
        return [c for c in self.changes if c.looser]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "old": self.old,
            "new": self.new,
            "status": self.status,
            "equivalent": self.status == "equivalent",
            "changes": [c.to_dict() for c in self.changes],
            "bounds": self.bounds.to_dict() if self.bounds else None,
            "elapsed_s": round(self.elapsed_s, 4),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.log is not None:
            out["log"] = self.log
        return out


def _rank(outcome: int, policy: Any) -> int:
    if outcome == len(lattice.DECISIONS):
        return lattice.LATTICE[policy.fail_closed]
    return outcome


def _name(pack: CheckedPack) -> dict[str, str]:
    manifest = pack.manifest
    return {"name": manifest.name, "version": manifest.version, "digest": pack.digest}


def merged_schema(old: CheckedPack, new: CheckedPack) -> dict[str, Any] | None:
    """One input schema for both: the new pack's, with the usage values either declares.

    ``None`` when the two read different action or context schemas.
    """
    a, b = copy.deepcopy(old.input_schema), copy.deepcopy(new.input_schema)
    usage_a = a.get("properties", {}).pop("usage", {})
    usage_b = b.get("properties", {}).pop("usage", {})
    if a != b:
        return None
    merged = copy.deepcopy(new.input_schema)
    usage = merged["properties"]["usage"]
    usage["properties"] = {**usage_a.get("properties", {}), **usage_b.get("properties", {})}
    usage["required"] = sorted(set(usage_a.get("required", [])) | set(usage_b.get("required", [])))
    return merged


def usage_for(pack: Any, usage: dict[str, Any]) -> dict[str, Any]:
    """The usage values ``pack`` declares, out of the union a witness carries."""
    declared = pack.input_schema["properties"]["usage"].get("properties", {})
    return {k: v for k, v in usage.items() if k in declared}


def judge(pack: Any, document: dict[str, Any]) -> Any:
    return pack.evaluate(
        document["action"], document["context"], usage_for(pack, document["usage"])
    )


def fired_set(verdict: Any) -> set[str]:
    return {f"{r['id']} ({r['verdict']})" for r in [*verdict.fired, *verdict.warnings]}


def diff_packs(
    old: CheckedPack,
    old_pack: Any,
    new: CheckedPack,
    new_pack: Any,
    *,
    list_bound: int = DEFAULT_LIST_BOUND,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> DiffReport:
    """Prove ``old`` and ``new`` equivalent, or list each class of change with a witness."""
    started = time.perf_counter()
    report = DiffReport(_name(old), _name(new), "unknown")
    schema = merged_schema(old, new)
    if schema is None:
        report.reason = "the two packs read different action or context schemas"
        return report
    lengths = length_hints(conditions_of(old.program), old.envelopes)
    for path, needed in length_hints(conditions_of(new.program), new.envelopes).items():
        lengths[path] = max(lengths.get(path, 0), needed)
    space = InputSpace(schema, list_bound, lengths)
    arithmetic = Arithmetic()
    try:
        a = encode_pack(old, space, arithmetic, prefix="old ")
        b = encode_pack(new, space, arithmetic, prefix="new ")
    except Unencodable as exc:
        report.reason = f"not encodable: {exc.construct}"
        return report
    session = Session(space, arithmetic, [a.encoder, b.encoder], timeout_s)
    blocked: list[Any] = []
    validators = [
        (InputValidator(old.input_schema).is_valid, old_pack),
        (InputValidator(new.input_schema).is_valid, new_pack),
    ]

    def valid(document: dict[str, Any]) -> bool:
        return all(
            ok({**document, "usage": usage_for(pack, document["usage"])}) for ok, pack in validators
        )

    for _ in range(MAX_CLASSES + 1):

        def reproduce(document: dict[str, Any]) -> tuple[bool, Any]:
            va, vb = judge(old_pack, document), judge(new_pack, document)
            for v in (va, vb):
                if v.fail_closed and v.errors and v.errors[0].get("kind") == "input":
                    return False, f"the input breaks the schema: {v.errors[0]['message']}"
            return outcome_of(va) != outcome_of(vb), (va, vb)

        found = session.witness(
            [a.outcome != b.outcome, *blocked], reproduce, steps_first=bool(report.changes)
        )
        if found.status == "sat" and found.document is not None:
            va, vb = found.detail
            pair = (outcome_of(va), outcome_of(vb))

            def still(document: dict[str, Any], pair: tuple[int, int] = pair) -> bool:
                ok, verdicts = reproduce(document)
                return ok and (outcome_of(verdicts[0]), outcome_of(verdicts[1])) == pair

            smaller = shrink(found.document, still, lambda document: valid(document))
            found = replace(found, document=smaller, detail=reproduce(smaller)[1])
        if found.status == "unsat":
            report.status = "changed" if report.changes else "equivalent"
            break
        if found.status == "unknown":
            report.reason = found.reason
            break
        va, vb = found.detail
        la, lb = outcome_of(va), outcome_of(vb)
        before, after = fired_set(va), fired_set(vb)
        report.changes.append(
            Change(
                OUTCOMES[la],
                OUTCOMES[lb],
                found.document or {},
                tuple(sorted(before - after)),
                tuple(sorted(after - before)),
                _rank(lb, new.policy) < _rank(la, old.policy),
            )
        )
        blocked.append(z3.Not(z3.And(a.outcome == la, b.outcome == lb)))
    report.bounds = Bounds(
        list_bound,
        dict(space.bounded),
        tuple(arithmetic.rounded),
        (*a.encoder.opaque, *b.encoder.opaque),
    )
    report.elapsed_s = time.perf_counter() - started
    return report
