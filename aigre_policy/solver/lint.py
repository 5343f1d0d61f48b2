"""Lint questions put to the solver, for any condition the encoding states.

``RuleQuestions`` encodes a pack once and answers four questions about its rules
over every input the schema admits: can a rule fire, can it stay quiet, does one
rule fire without another, do two rules fire together. An answer is ``sat`` with a
witness input that the native engine has judged and that reproduces (the rules the
question names fired, or did not, and the verdict did not fail closed), ``unsat``
(a proof), or ``unknown`` with the reason: a timeout, a witness that does not
reproduce, or a proof that would rest on a bound of the encoding rather than on the
schema — lists cut at a length the schema does not set, timestamps in whole
seconds. An ``unknown`` leaves the question to the syntactic lint.

Deferred imports: z3 (the `prove` extra) loads only when the exact lint runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import z3

from aigre_policy import ir
from aigre_policy.compiler import CheckedPack
from aigre_policy.solver import DEFAULT_LIST_BOUND
from aigre_policy.solver.bounds import conditions_of, length_hints
from aigre_policy.solver.decision import RuleFormula, encode_pack
from aigre_policy.solver.inputs import InputSpace, dotted_key
from aigre_policy.solver.solve import Session, SoundnessError
from aigre_policy.solver.values import Arithmetic
from aigre_policy.testing.schema_values import minimal

LINT_TIMEOUT_S = 2.0  # per question: a lint run asks many
LINT_BUDGET_S = 30.0  # every question of one pack: past it the rest are left open
SAT, UNSAT, UNKNOWN = "sat", "unsat", "unknown"


@dataclass(frozen=True)
class Answer:
    status: str  # SAT (with a witness that reproduced), UNSAT (proved) or UNKNOWN
    document: dict[str, Any] | None = None
    reason: str = ""


@dataclass(frozen=True)
class Judged:
    """One input the native engine judged: which rules fired (``warn`` rules too)."""

    document: dict[str, Any]
    fired: frozenset[str]


class RuleQuestions:
    """One pack encoded for the solver, and the inputs judged so far (each a witness)."""

    def __init__(
        self,
        checked: CheckedPack,
        pack: Any,
        *,
        timeout_s: float = LINT_TIMEOUT_S,
        budget_s: float = LINT_BUDGET_S,
        list_bound: int = DEFAULT_LIST_BOUND,
    ):
        lengths = length_hints(conditions_of(checked.program), checked.envelopes)
        self.space = InputSpace(checked.input_schema, list_bound, lengths)
        arithmetic = Arithmetic()
        self.formula = encode_pack(checked, self.space, arithmetic)  # raises Unencodable
        self.session = Session(self.space, arithmetic, [self.formula.encoder], timeout_s)
        self.pack = pack
        self.rules: dict[str, RuleFormula] = {r.id: r for r in self.formula.rules}
        self.deadline = time.monotonic() + budget_s
        self.judged: list[Judged] = []
        self.questions = 0
        self._bounds = _encoding_bounds(self.space)
        self._reads = {rule.id: _reads(rule) for rule in checked.program.rules}
        self._may_fail = [r.id for r in self.formula.rules if not z3.is_false(r.fails)]
        self._no_failure = z3.Not(self.formula.fails)
        start = minimal(checked.input_schema, checked.input_schema)
        if isinstance(start, dict):
            self.judge(start)

    # ------------------------------------------------------------------ the questions

    def can_fire(self, rule: str, *, witness: bool = False) -> Answer:
        """An input on which ``rule`` fires, or a proof that none does."""
        r = self.rules[rule]
        return self._ask(
            [r.holds, z3.Not(r.fails)],
            lambda fired: rule in fired,
            [rule],
            witness=[r.holds, self._no_failure] if witness else None,
        )

    def can_stay_quiet(self, rule: str, *, witness: bool = False) -> Answer:
        """An input on which ``rule`` does not fire, or a proof that it fires on every one."""
        r = self.rules[rule]
        return self._ask(
            [z3.Or(z3.Not(r.holds), r.fails)],
            lambda fired: rule not in fired,
            [rule],
            witness=[z3.Not(r.holds), self._no_failure] if witness else None,
        )

    def fires_without(self, rule: str, other: str, *, witness: bool = False) -> Answer:
        """An input on which ``rule`` fires and ``other`` does not, the verdict not failing
        closed; ``unsat`` proves ``rule`` never changes a decision ``other`` outranks."""
        a, b = self.rules[rule], self.rules[other]
        question = [a.holds, z3.Not(b.holds), self._no_failure]
        return self._ask(
            question,
            lambda fired: rule in fired and other not in fired,
            [rule, other, *self._may_fail],
            witness=question if witness else None,
        )

    def fire_together(self, rule: str, other: str, *, witness: bool = True) -> Answer:
        """An input on which both rules fire, the verdict not failing closed."""
        a, b = self.rules[rule], self.rules[other]
        question = [a.holds, b.holds, self._no_failure]
        return self._ask(
            question,
            lambda fired: rule in fired and other in fired,
            [rule, other, *self._may_fail],
            witness=question if witness else None,
        )

    # ------------------------------------------------------------------ asking

    def seen(self, document: dict[str, Any], fired: Iterable[str]) -> None:
        """An input the native engine already judged (a test's), with the rules that fired."""
        self.judged.append(Judged(document, frozenset(fired)))

    def judge(self, document: dict[str, Any]) -> Judged | None:
        """``document`` judged natively; ``None`` when the verdict failed closed."""
        verdict = self.pack.evaluate(document["action"], document["context"], document["usage"])
        if verdict.fail_closed:
            return None
        fired = frozenset([*verdict.rule_ids, *(w["id"] for w in verdict.warnings)])
        judged = Judged(document, fired)
        self.judged.append(judged)
        return judged

    def _ask(
        self,
        question: list[Any],
        wanted: Callable[[frozenset[str]], bool],
        reads: Iterable[str],
        witness: list[Any] | None = None,
    ) -> Answer:
        """A proof that no input meets ``question``, or an input that does.

        Inputs judged so far are looked at first. An input the solver's model gives is
        judged natively and kept when it reproduces; otherwise a ``sat`` without a
        document means only "not proved". With ``witness`` (formulas an input must meet
        on top, such as no rule failing) a document is sought until one reproduces.
        """
        for earlier in self.judged:
            if wanted(earlier.fired):
                return Answer(SAT, earlier.document)
        if time.monotonic() > self.deadline:
            return Answer(UNKNOWN, reason="the lint's time for the solver ran out")
        self.questions += 1
        status, reason, model = self.session.decide(question)
        if status == UNSAT:
            bound = self._bound_read(reads)
            return Answer(UNKNOWN, reason=bound) if bound else Answer(UNSAT)
        if status != SAT:
            return Answer(UNKNOWN, reason=reason)
        judged = self._judged_model(model)
        if judged is not None and wanted(judged.fired):
            return Answer(SAT, judged.document)
        if witness is None:
            return Answer(SAT)

        def reproduce(document: dict[str, Any]) -> tuple[bool, Any]:
            found = self.judge(document)
            return found is not None and wanted(found.fired), found

        try:
            found = self.session.witness(witness, reproduce)
        except SoundnessError as exc:  # a fault of the product: never a finding from it
            return Answer(UNKNOWN, reason=f"the solver's witness did not reproduce: {exc}")
        if found.status == SAT:
            return Answer(SAT, found.document)
        return Answer(UNKNOWN, reason=found.reason or "no witness input reproduces natively")

    def _judged_model(self, model: Any) -> Judged | None:
        """The solver's model as an input, judged natively (no rounding moved: a try)."""
        try:
            document = self.space.document(model)
        except (ValueError, OverflowError, TypeError):
            return None
        return self.judge(document)

    def _bound_read(self, rules: Iterable[str]) -> str:
        """Why an ``unsat`` over these rules proves nothing for the schema, or ``""``."""
        for rule in dict.fromkeys(rules):
            for path in self._reads[rule]:
                for place, why in self._bounds:
                    if _overlaps(path, place):
                        return f"`{rule}` reads `{path}`: {why}"
        return ""


def _encoding_bounds(space: InputSpace) -> list[tuple[str, str]]:
    """Places where the encoding holds fewer inputs than the schema admits, and how."""
    found = [
        (path, f"the solver holds at most {bound} items of `{path}`; the schema allows more")
        for path, bound in space.bounded.items()
    ]
    for slot in space.slots:
        if slot.node.get("format") == "date-time":
            path = dotted_key(slot.key, items=False)
            found.append((path, f"the solver holds `{path}` in whole seconds"))
    return found


def _reads(rule: ir.Rule) -> set[str]:
    """The input paths a rule's condition and message read."""
    nodes = [rule.condition, *(part for part in rule.message if not isinstance(part, str))]
    return {
        node.dotted
        for top in nodes
        for node in ir.walk(top)
        if isinstance(node, ir.Path) and not node.local
    }


def _overlaps(read: str, place: str) -> bool:
    """Whether reading ``read`` reads (part of) ``place``, or lies inside it."""
    read, place = read.replace("[]", ""), place.replace("[]", "")
    return read == place or place.startswith(read + ".") or read.startswith(place + ".")
