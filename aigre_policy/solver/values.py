"""Values as the solver holds them, and the arithmetic of the language on them.

A value is a ``Val``: booleans, numbers, strings, lists and objects. Numbers,
durations and timestamps are all numbers (seconds for time), as the engine holds
them. Integers the engine keeps as Python ints are z3 integers and their
arithmetic is exact; so is ``+``/``-`` on whole numbers well inside 2**53 (times
and whole durations), where a double is exact too. Any other ``+ - * /`` rounds to
a double at run time: the result is an uninterpreted function of its operands
(the same operands give the same result), bounded by the rounding error of one
IEEE operation, which over-approximates the engine. A proof over it holds for
the engine; a witness that needs a rounding the engine does not make is caught
when it is evaluated again natively.

Deferred imports: z3 (the `prove` extra) loads only when a proof is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import z3

# past this magnitude an IEEE double operation rounds to infinity (round to nearest even)
OVERFLOW = Fraction(2**1024 - 2**970)
_EPSILON = z3.RealVal(Fraction(1, 2**53))
_TINY = z3.RealVal(Fraction(1, 2**1074))
_EXACT_LIMIT = 2**52


@dataclass(frozen=True)
class Val:
    """One value of the language: ``kind`` is bool, num, str, list or obj.

    ``pyint``: a number the engine holds as a Python int. ``integral``: a whole
    number far inside 2**53 (float ``+``/``-`` on two of them is exact).
    A list has ``items`` (values, at most the bound) and ``length`` (z3 Int);
    an object is ``slot``, its place in the input.
    """

    kind: str
    z: Any = None
    pyint: bool = False
    integral: bool = False
    items: tuple[Any, ...] = ()
    length: Any = None
    slot: Any = None


FALSE = z3.BoolVal(False)
TRUE = z3.BoolVal(True)


def any_of(*terms: Any) -> Any:
    """``z3.Or``, made through the C API when every term is already a formula: z3's
    Python wrapper coerces each argument anew, which is most of the time an encoding takes."""
    return _connective(z3.Z3_mk_or, z3.Or, terms)


def all_of(*terms: Any) -> Any:
    """``z3.And``, made as ``any_of`` is."""
    return _connective(z3.Z3_mk_and, z3.And, terms)


def _connective(make: Any, slow: Any, terms: tuple[Any, ...]) -> Any:
    if len(terms) == 1 and isinstance(terms[0], (list, tuple)):
        terms = tuple(terms[0])
    if not terms or not all(type(t) is z3.BoolRef for t in terms):
        return slow(*terms)
    ctx = terms[0].ctx
    array = (z3.Ast * len(terms))(*(t.as_ast() for t in terms))
    return z3.BoolRef(make(ctx.ref(), len(terms), array), ctx)


def steps(x: Any) -> Any:
    """``x`` is a multiple of 1/1024 below 2**40 in size: a double, and sums of two are exact."""
    return all_of(z3.IsInt(x * 1024), x < 2**40, x > -(2**40))


def boolean(z: Any) -> Val:
    return Val("bool", z)


def constant(value: Any) -> Val:
    """A value from the pack itself: a literal or an envelope value."""
    if isinstance(value, bool):
        return Val("bool", z3.BoolVal(value))
    if isinstance(value, int):
        return Val("num", z3.IntVal(value), pyint=True, integral=abs(value) < _EXACT_LIMIT)
    if isinstance(value, float):
        exact = Fraction(value)
        whole = exact.denominator == 1 and abs(exact) < _EXACT_LIMIT
        return Val("num", z3.RealVal(exact), integral=whole)
    if isinstance(value, str):
        return Val("str", z3.StringVal(value))
    if isinstance(value, list | tuple):
        items = tuple(constant(v) for v in value)
        return Val("list", items=items, length=z3.IntVal(len(items)))
    raise TypeError(f"no constant of {type(value).__name__}")


def to_real(v: Val) -> Any:
    return z3.ToReal(v.z) if v.z.sort() == z3.IntSort() else v.z


def equal(a: Val, b: Val) -> Any:
    """``a == b`` as the engine compares them (numbers by value, whatever int or float)."""
    if a.kind == "num" and b.kind == "num":
        if a.z.sort() == b.z.sort():
            return a.z == b.z
        return to_real(a) == to_real(b)
    if a.kind != b.kind:
        raise TypeError(f"cannot compare {a.kind} with {b.kind}")
    if a.kind in ("bool", "str"):
        return a.z == b.z
    raise TypeError(f"no equality of {a.kind}")


def order(op: str, a: Val, b: Val) -> Any:
    x, y = (a.z, b.z) if a.z.sort() == b.z.sort() else (to_real(a), to_real(b))
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def absolute(x: Any) -> Any:
    return z3.If(x >= 0, x, -x)


@dataclass
class Arithmetic:
    """The arithmetic of one encoding: side conditions it adds and the rounding it uses."""

    axioms: list[Any] = field(default_factory=list)
    rounded: list[str] = field(default_factory=list)  # operations that round, for the report
    # each rounded operation: (op, function, left, right), to check a witness against
    applications: list[tuple[str, Any, Any, Any]] = field(default_factory=list)
    _functions: dict[str, Any] = field(default_factory=dict)

    def _round(self, op: str, a: Val, b: Val, exact: Any) -> Any:
        name = f"double_{ {'+': 'add', '-': 'sub', '*': 'mul', '/': 'div'}[op] }"
        fn = self._functions.get(name)
        if fn is None:
            fn = z3.Function(name, z3.RealSort(), z3.RealSort(), z3.RealSort())
            self._functions[name] = fn
        result = fn(to_real(a), to_real(b))
        self.applications.append((op, fn, to_real(a), to_real(b)))
        error = absolute(result - exact)
        self.axioms.append(error <= _EPSILON * absolute(exact) + _TINY)
        if op in "+-":  # doubles in steps of 1/1024 below 2**40 add and subtract exactly
            self.axioms.append(
                z3.Implies(all_of(steps(to_real(a)), steps(to_real(b))), result == exact)
            )
        if op not in self.rounded:
            self.rounded.append(op)
        return result

    def apply(self, op: str, a: Val, b: Val) -> tuple[Val, Any]:
        """``a op b`` and the condition under which it fails (zero divisor, overflow)."""
        folded = _fold(op, a, b)
        if folded is not None:
            return folded
        if a.kind == "str":
            return Val("str", z3.Concat(a.z, b.z)), FALSE
        if op == "%":
            return self._remainder(a, b)
        if op == "/":
            exact = to_real(a) / to_real(b)
            overflow = absolute(exact) >= z3.RealVal(OVERFLOW)
            zero = to_real(b) == 0
            value = self._round(op, a, b, exact)
            return Val("num", value), any_of(zero, overflow)
        if a.pyint and b.pyint:
            exact = {"+": a.z + b.z, "-": a.z - b.z, "*": a.z * b.z}[op]
            return Val("num", exact, pyint=True), FALSE
        if op in "+-" and a.integral and b.integral:
            x, y = a.z, b.z
            if x.sort() != y.sort():
                x, y = to_real(a), to_real(b)
            return Val("num", x + y if op == "+" else x - y, integral=True), FALSE
        exact = {"+": to_real(a) + to_real(b), "-": to_real(a) - to_real(b)}.get(op)
        if exact is None:
            exact = to_real(a) * to_real(b)
        overflow = absolute(exact) >= z3.RealVal(OVERFLOW)
        return Val("num", self._round(op, a, b, exact)), overflow

    def _remainder(self, a: Val, b: Val) -> tuple[Val, Any]:
        """``%`` takes the sign of the dividend; exact on ints and on doubles alike."""
        zero = (b.z == 0) if b.z.sort() == z3.IntSort() else (to_real(b) == 0)
        if a.pyint and b.pyint:
            magnitude = absolute(a.z) % absolute(b.z)
            return Val("num", z3.If(a.z < 0, -magnitude, magnitude), pyint=True), zero
        x, y = absolute(to_real(a)), absolute(to_real(b))
        magnitude = x - y * z3.ToReal(z3.ToInt(x / y))
        return Val("num", z3.If(to_real(a) < 0, -magnitude, magnitude)), zero

    def negate(self, a: Val) -> Val:
        return Val("num", -a.z, pyint=a.pyint, integral=a.integral)


def python_value(v: Val) -> Any:
    """The Python value of a constant number (int or float, as the engine holds it), or None."""
    if v.kind != "num":
        return None
    if z3.is_int_value(v.z) and v.pyint:
        return v.z.as_long()
    if z3.is_rational_value(v.z) or z3.is_int_value(v.z):
        exact = v.z.as_fraction() if z3.is_rational_value(v.z) else Fraction(v.z.as_long())
        value = float(exact)
        return value if Fraction(value) == exact else None
    return None


def _fold(op: str, a: Val, b: Val) -> tuple[Val, Any] | None:
    """Two constants: computed as the engine computes them (``interpreter.arithmetic``)."""
    x, y = python_value(a), python_value(b)
    if x is None or y is None:
        return None
    from aigre_policy.interpreter import arithmetic

    try:
        result = arithmetic(op, f"number{op}number", x, y)
    except (ArithmeticError, OverflowError):
        return constant(0), TRUE
    return constant(result), FALSE
