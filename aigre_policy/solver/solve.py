"""Asking z3, and turning its answers into inputs the engine judges.

``Session`` holds one solver over an input space and the packs encoded on it.
``witness`` asks for an input meeting some formulas, turns the model into a
concrete input and hands it to a check that evaluates it natively. Numbers the
model gives as fractions are first pinned to doubles, as JSON carries them;
a witness whose uninterpreted functions (``lower``, ``upper``, ``date``) disagree
with the real ones adds the real values as facts and asks again.

Deferred imports: z3 (the `prove` extra) loads only when a proof is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import z3

from aigre_policy import runtime
from aigre_policy.solver.encode import Encoder
from aigre_policy.solver.inputs import InputSpace, number_of, text_of
from aigre_policy.solver.values import Arithmetic, steps

STEPS_RLIMIT = 5_000_000  # z3 work (about a second) on a witness among exact numbers
PIN_RLIMIT = 2_000_000  # z3 work on each try at moving a model's numbers to doubles
REFINEMENTS = 8  # rounds of facts about lower/upper/date before a witness is given up


class SoundnessError(AssertionError):
    """The solver's witness does not reproduce natively where the encoding is exact: a bug."""


@dataclass(frozen=True)
class Found:
    """What a question to the solver came to: ``sat`` with an input, ``unsat``, or ``unknown``."""

    status: str
    document: dict[str, Any] | None = None
    reason: str = ""
    detail: Any = None  # what the native check returned for the input


class Session:
    def __init__(
        self,
        space: InputSpace,
        arithmetic: Arithmetic,
        encoders: list[Encoder],
        timeout_s: float,
    ):
        self.space = space
        self.arithmetic = arithmetic
        self.encoders = encoders
        self.timeout_ms = max(1, int(timeout_s * 1000))
        self.facts: list[Any] = []
        self._plain: Any = None  # one solver for every plain question: it keeps what it learnt
        # the envelope values of the last witness, when they are free (--symbolic-envelopes)
        self.envelopes: dict[str, dict[str, Any]] = {}

    @property
    def exact(self) -> bool:
        """No rounding and no free construct: a witness that fails to reproduce is a bug."""
        return not self.arithmetic.rounded and not any(
            e.opaque or e.envelope_vars for e in self.encoders
        )

    def _envelopes(self, model: Any) -> dict[str, dict[str, Any]]:
        values: dict[str, dict[str, Any]] = {}
        for encoder in self.encoders:
            for dotted, var in encoder.envelope_vars.items():
                envelope, name = dotted.split(".", 1)
                got = model.eval(var, model_completion=True)
                if z3.is_bool(var):
                    value: Any = z3.is_true(got)
                elif var.sort() == z3.StringSort():
                    value = text_of(model, got)
                else:
                    value = number_of(got)
                values.setdefault(envelope, {})[name] = value
        return values

    def _base(self) -> list[Any]:
        return [*self.space.constraints, *self.arithmetic.axioms, *self.facts]

    def _solver(
        self, formulas: list[Any], minimal: bool, near: list[Any], distance: Any = None
    ) -> Any:
        if minimal or near:
            solver: Any = z3.Optimize()
            solver.set(timeout=self.timeout_ms)
            solver.add(*self._base(), *formulas)
            for keep in near:
                solver.add_soft(keep, 4)
            if distance is not None:  # after the soft constraints: nearest values
                solver.minimize(distance)
            if minimal:
                for slot in self.space.slots:
                    if not z3.is_true(slot.present):
                        solver.add_soft(z3.Not(slot.present), 1)
                    if slot.length is not None:
                        solver.add_soft(slot.length == 0, 1)
            return solver
        if self._plain is None:
            self._plain = z3.Solver()
            self._plain.set(timeout=self.timeout_ms)
            self._plain.add(*self._base())
            self._added = len(self.facts)
        self._plain.add(*self.facts[self._added :])
        self._added = len(self.facts)
        self._plain.push()
        self._plain.add(*formulas)
        return self._plain

    def decide(self, formulas: list[Any]) -> tuple[str, str, Any]:
        """Whether some input meets ``formulas``: ``sat`` (with z3's model), ``unsat`` or
        ``unknown`` (and why).

        The model is not checked natively: on its own a ``sat`` may only ever stand for
        "not proved", never be shown as an input.
        """
        solver = self._solver(list(formulas), False, [])
        model = None
        try:
            answer = solver.check()
            reason = solver.reason_unknown() if answer == z3.unknown else ""
            if answer == z3.sat:
                model = solver.model()
        finally:
            solver.pop()
        if answer == z3.unsat:
            return "unsat", "", None
        if answer == z3.sat:
            return "sat", "", model
        return "unknown", f"the solver gave up ({reason})", None

    def witness(
        self,
        formulas: list[Any],
        reproduce: Callable[[dict[str, Any]], tuple[bool, Any]],
        *,
        base: dict[str, Any] | None = None,
        minimal: bool = False,
        near: list[Any] | None = None,
        steps_first: bool = False,
        distance: Any = None,
    ) -> Found:
        """An input meeting ``formulas`` that ``reproduce`` confirms natively.

        When a witness relies on a rounding the engine does not make, the search goes
        on among numbers in steps of 1/1024 (below 2**40), where ``+`` and ``-`` are
        exact: a restriction of the witness only, so ``unsat`` there proves nothing.
        """
        restricted: list[Any] = self._steps() if steps_first else []
        trying = bool(restricted)  # exact numbers asked first, as a try: the question after
        last: Found | None = None
        for _ in range(REFINEMENTS):
            solver = self._solver([*formulas, *restricted], minimal, near or [], distance)
            if trying:  # a try at exact numbers, not the question: it may give up early,
                # by the solver's own work count, so the same question takes the same path
                # however loaded the machine is (a clock would not)
                solver.set(rlimit=STEPS_RLIMIT)
            try:
                answer = solver.check()
                if answer == z3.sat:
                    model = solver.model()
                else:
                    reason = solver.reason_unknown() if answer != z3.unsat else ""
            finally:
                if trying:
                    solver.set(rlimit=0)
                if solver is self._plain:
                    solver.pop()
            if answer == z3.unsat and not restricted:
                return Found("unsat")
            if answer != z3.sat:
                if restricted and last is not None:
                    return last
                if trying:  # nothing among the plain numbers: ask again over all of them
                    restricted, trying = [], False
                    continue
                return Found("unknown", reason=f"the solver gave up ({reason})")
            # the model's numbers as JSON carries them (doubles) are usually a witness
            # already; only when they are not is the solver asked for doubles that are
            document = self.space.document(model, base)
            self.envelopes = self._envelopes(model)  # `reproduce` may read them
            ok, detail = reproduce(document)
            if not ok:
                pinned = self._pinned(model, [*formulas, *restricted])
                if pinned is not model:
                    model, document = pinned, self.space.document(pinned, base)
                    self.envelopes = self._envelopes(model)
                    ok, detail = reproduce(document)
            new_facts = self._refinements(model)
            if ok:
                return Found("sat", document, detail=detail)
            self.facts += new_facts
            if self.exact and not new_facts:
                raise SoundnessError(
                    f"the solver's witness does not reproduce natively: {detail}; input {document}"
                )
            reason = "its witness does not reproduce natively (it relies on " + (
                "rounding" if self.arithmetic.rounded else "a construct held free"
            )
            last = Found("unknown", document, reason=reason + ")", detail=detail)
            if not new_facts and restricted:
                return last
            if self.arithmetic.rounded and not restricted and self._steps():
                restricted = self._steps()
            elif not new_facts:
                return last
        return last or Found("unknown", reason="the solver's witnesses kept failing to reproduce")

    def _steps(self) -> list[Any]:
        """Every operand of a rounded ``+`` or ``-`` a multiple of 1/1024 below 2**40: such
        doubles add exactly, so the witness needs no rounding. Only the operands are held:
        restricting every number of the input makes a much harder question."""
        operands: dict[Any, Any] = {}
        for op, _, left, right in self.arithmetic.applications:
            if op in "+-":
                for term in (left, right):
                    operands.setdefault(term.get_id(), term)
        return [steps(term) for term in operands.values()]

    def _pinned(self, model: Any, formulas: list[Any]) -> Any:
        """The model with each fractional number moved to the double JSON would carry."""
        pins, kept, fractional, ups, downs = [], [], [], [], []
        for slot in self.space.slots:
            value = slot.value
            if value is None or value.kind != "num" or value.z.sort() != z3.RealSort():
                continue
            got = model.eval(value.z, model_completion=True)
            exact = got.as_fraction()
            try:
                double = Fraction(float(exact))
            except OverflowError:  # past the doubles: JSON cannot carry it
                continue
            if double != exact:
                pins.append(value.z == z3.RealVal(double))
                below = (
                    double if double < exact else Fraction(math.nextafter(float(double), -math.inf))
                )
                above = (
                    double if double > exact else Fraction(math.nextafter(float(double), math.inf))
                )
                downs.append(value.z == z3.RealVal(below))
                ups.append(value.z == z3.RealVal(above))
                fractional.append(value.z)
            else:
                kept.append(value.z == got)
        if not pins:
            return model
        # the model's own numbers as doubles; failing that, the fractional ones in steps
        # of 1/1024, which a double holds exactly, first with the others kept as they are
        # (a small question), then alone, then every number in steps (each a restriction
        # only on the witness, never the proof). A value one step past a threshold
        # (1000 + 2**-60 for `> 1000`) is the usual case: its double is the threshold.
        reals = [
            slot.value.z
            for slot in self.space.slots
            if slot.value is not None
            and slot.value.kind == "num"
            and slot.value.z.sort() == z3.RealSort()
        ]
        in_steps = [steps(var) for var in fractional]
        tries = (
            [*kept, *pins],
            [*kept, *ups],
            [*kept, *downs],
            pins,
            [*kept, *in_steps],
            in_steps,
            [steps(var) for var in reals],
        )
        for extra in tries:
            solver = self._solver(formulas, False, [])
            # a try, not the question: bounded by the solver's work count, so a loaded
            # machine takes the same path as a quiet one
            solver.set(rlimit=PIN_RLIMIT)
            try:
                solver.add(*extra)
                if solver.check() == z3.sat:
                    return solver.model()
            finally:
                solver.set(rlimit=0)
                solver.pop()
        return model

    def _refinements(self, model: Any) -> list[Any]:
        """Facts the model got wrong about lower/upper/date and rounding, as the engine
        computes them on the witness's values."""
        facts = self._rounding_facts(model)
        for encoder in self.encoders:
            for app in encoder.applications:
                argument = model.eval(app.argument, model_completion=True)
                if app.is_time:
                    given: Any = argument.as_long()
                    truth = runtime.civil_date(given)  # date(), and date_in() past year 9999
                    key = z3.IntVal(given)
                else:
                    given = text_of(model, argument)
                    truth = getattr(runtime, app.name)(given)
                    key = z3.StringVal(given)
                claimed = model.eval(app.function(key), model_completion=True)
                if text_of(model, claimed) != truth:
                    facts.append(app.function(key) == z3.StringVal(truth))
        return facts

    def _rounding_facts(self, model: Any) -> list[Any]:
        from aigre_policy.interpreter import arithmetic

        facts = []
        for op, fn, left, right in self.arithmetic.applications:
            x = number_of(model.eval(left, model_completion=True))
            y = number_of(model.eval(right, model_completion=True))
            try:
                truth = arithmetic(op, f"number{op}number", x, y)
            except (ArithmeticError, OverflowError):
                continue  # it fails at run time: the formula's failure covers it
            key = fn(z3.RealVal(Fraction(x)), z3.RealVal(Fraction(y)))
            claimed = model.eval(key, model_completion=True)
            if _fraction(claimed) != Fraction(truth):
                facts.append(key == z3.RealVal(Fraction(truth)))
        return facts


def _fraction(value: Any) -> Fraction | None:
    if z3.is_int_value(value):
        return Fraction(value.as_long())
    if z3.is_rational_value(value):
        return value.as_fraction()
    return None
