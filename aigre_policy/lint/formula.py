"""Conditions as propositional formulas over field reads, and an exact search over them.

``to_formula`` turns a rule's IR condition into ``and``/``or``/``not`` over
atoms. An atom compares one field read (a ``Var``: an input path, perhaps with
a constant ``??`` fallback) with a constant or an envelope value, or is a
boolean field read on its own. Anything else — arithmetic, calls, quantifiers,
``has``, two fields compared — becomes an *opaque* boolean variable, keyed by
its structure so the same subexpression in two rules is the same variable.
Treating opaque parts and distinct fields as independent over-approximates the
inputs, so "no input makes this true" stays a proof, never a guess.

``find`` searches the regions of each variable's domain (``Domain.representatives``)
with three-valued evaluation to prune: it returns an assignment giving the
wanted truth value, or ``None`` when there is none. Past a step budget it raises
``Undecided`` and the caller reports nothing.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aigre_policy import ir
from aigre_policy.diagnostics import NO_SPAN, Span
from aigre_policy.lint.domain import Domain, domain_of, field_type
from aigre_policy.types import ObjectType

STEP_BUDGET = 200_000
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda x, values: x in values,
    "not in": lambda x, values: x not in values,
}
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_BOOLEAN = Domain("boolean")


class Undecided(Exception):
    """The search would take more than its budget: the question is left open."""


@dataclass(frozen=True, slots=True)
class Var:
    """A value the condition reads; equal when ``key`` is (the rest is for messages)."""

    key: tuple[Any, ...]
    name: str = field(compare=False)
    domain: Domain = field(compare=False)


@dataclass(frozen=True, slots=True)
class Atom:
    """``var op value``; ``value`` is a tuple for ``in``/``not in``."""

    var: Var
    op: str
    value: Any
    text: str = field(default="", compare=False)
    span: Span = field(default=NO_SPAN, compare=False)
    envelope: str | None = field(default=None, compare=False)  # where the constant came from

    def holds(self, x: Any) -> bool:
        try:
            return _OPS[self.op](x, self.value)
        except TypeError:  # values of another kind never compare true
            return self.op in ("!=", "not in")

    def constants(self) -> tuple[Any, ...]:
        return tuple(self.value) if self.op in ("in", "not in") else (self.value,)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Formula


@dataclass(frozen=True, slots=True)
class Lit:
    value: bool


Formula = Atom | And | Or | Not | Lit


def field_key(dotted: str, fallback: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """The key of the read of ``dotted`` (with ``??`` fallback ``(value,)`` if any)."""
    return ("field", dotted, _hashable(fallback))


# ------------------------------------------------------------------ from the IR


class Translator:
    """IR conditions to formulas, against one input schema and one set of envelope values."""

    def __init__(self, input_type: ObjectType, envelopes: Mapping[str, Mapping[str, Any]]):
        self.input_type = input_type
        self.envelopes = envelopes

    def formula(self, node: ir.Node) -> Formula:
        match node:
            case ir.BoolOp(op="and", left=a, right=b):
                return And((self.formula(a), self.formula(b)))
            case ir.BoolOp(op="or", left=a, right=b):
                return Or((self.formula(a), self.formula(b)))
            case ir.Not(operand=a):
                return Not(self.formula(a))
            case ir.Const(value=bool() as value):
                return Lit(value)
            case ir.Compare(kind="value"):
                return self.compare(node) or self.opaque(node)
            case ir.Member():
                return self.member(node) or self.opaque(node)
            case ir.Path() | ir.Default():
                var = self.var(node)
                if var is not None and var.domain.kind == "boolean":
                    return Atom(var, "==", True, _text(node), node.span)
        return self.opaque(node)

    def compare(self, node: ir.Compare) -> Formula | None:
        left, right = self.constant(node.left), self.constant(node.right)
        if left is not None and right is not None:
            try:
                return Lit(bool(_OPS[node.op](left[0], right[0])))
            except TypeError:
                return None
        for subject, other, op in (
            (node.left, right, node.op),
            (node.right, left, _FLIPPED[node.op]),
        ):
            var = self.var(subject)
            if var is not None and other is not None and not isinstance(other[0], list):
                return Atom(var, op, other[0], node.text, node.span, other[1])
        return None

    def member(self, node: ir.Member) -> Formula | None:
        var = self.var(node.item)
        values = self.constant(node.collection)
        if var is None or values is None or not isinstance(values[0], list):
            return None
        op = "not in" if node.negated else "in"
        return Atom(var, op, tuple(values[0]), node.text, node.span, values[1])

    def var(self, node: ir.Node) -> Var | None:
        """The variable for a field read, bare or with a constant fallback."""
        fallback: tuple[Any, ...] = ()
        if isinstance(node, ir.Default):
            constant = self.constant(node.fallback)
            if constant is None or constant[1] is not None or isinstance(constant[0], list):
                return None
            fallback, node = (constant[0],), node.path
        if not isinstance(node, ir.Path) or node.local:
            return None
        typ = field_type(self.input_type, node.root, node.steps)
        domain = domain_of(typ) if typ is not None else None
        if domain is None:
            return None
        domain = domain.with_extra([*fallback, *(value for _, value in node.defaults)])
        name = node.dotted + (f" ?? {_show(fallback[0])}" if fallback else "")
        return Var(field_key(node.dotted, fallback), name, domain)

    def constant(self, node: ir.Node) -> tuple[Any, str | None] | None:
        """A constant's value and, when it is an envelope value, its name."""
        match node:
            case ir.Const(value=value):
                return (list(value) if isinstance(value, tuple) else value), None
            case ir.EnvelopeRef(envelope=envelope, name=name):
                value = self.envelopes.get(envelope, {}).get(name)
                if value is None:
                    return None
                return (list(value) if isinstance(value, tuple) else value), f"{envelope}.{name}"
            case ir.ListOf(items=items):
                values = [self.constant(item) for item in items]
                if any(v is None or v[1] is not None for v in values):
                    return None
                return [v[0] for v in values], None  # type: ignore[index]
            case ir.Neg(operand=ir.Const(value=value)) if _is_plain_number(value):
                return -value, None
        return None

    def opaque(self, node: ir.Node) -> Atom:
        var = Var(("opaque", _shape(node)), _text(node) or "a subexpression", _BOOLEAN)
        return Atom(var, "==", True, _text(node), node.span)


# ------------------------------------------------------------------ search


def atoms(formula: Formula) -> Iterator[Atom]:
    match formula:
        case Atom():
            yield formula
        case And(items=items) | Or(items=items):
            for item in items:
                yield from atoms(item)
        case Not(item=item):
            yield from atoms(item)


def variables(formula: Formula) -> list[Var]:
    return list(dict.fromkeys(atom.var for atom in atoms(formula)))


def find(
    formula: Formula,
    want: bool,
    fixed: Mapping[tuple[Any, ...], Any] | None = None,
    budget: int = STEP_BUDGET,
) -> dict[Var, Any] | None:
    """An assignment under which ``formula`` is ``want``, or ``None`` when none exists.

    ``fixed`` pins some variables (by key) to one value. Raises ``Undecided``
    past ``budget`` search steps.
    """
    pinned = dict(fixed or {})
    order = variables(formula)
    constants: dict[Var, list[Any]] = {var: [] for var in order}
    for atom in atoms(formula):
        constants[atom.var].extend(atom.constants())
    choices = {
        var: [pinned[var.key]] if var.key in pinned else var.domain.representatives(constants[var])
        for var in order
    }
    assignment: dict[tuple[Any, ...], Any] = {}
    steps = 0

    def search(i: int) -> bool:
        nonlocal steps
        steps += 1
        if steps > budget:
            raise Undecided
        truth = evaluate(formula, assignment)
        if truth is not None:
            return truth == want
        var = order[i]
        for value in choices[var]:
            assignment[var.key] = value
            if search(i + 1):
                return True
        del assignment[var.key]
        return False

    if not search(0):
        return None
    return {var: assignment.get(var.key, choices[var][0]) for var in order if choices[var]}


def evaluate(formula: Formula, assignment: Mapping[tuple[Any, ...], Any]) -> bool | None:
    """Three-valued: ``None`` while the variables assigned so far do not settle it."""
    match formula:
        case Atom(var=var):
            if var.key not in assignment:
                return None
            return formula.holds(assignment[var.key])
        case Lit(value=value):
            return value
        case Not(item=item):
            inner = evaluate(item, assignment)
            return None if inner is None else not inner
        case And(items=items) | Or(items=items):
            settles = isinstance(formula, Or)  # the value that decides: True for or
            unknown = False
            for item in items:
                truth = evaluate(item, assignment)
                if truth is None:
                    unknown = True
                elif truth is settles:
                    return settles
            return None if unknown else not settles
    raise AssertionError(f"unknown formula {formula!r}")


def never_holds(formula: Formula, fixed: Mapping[tuple[Any, ...], Any] | None = None) -> bool:
    return find(formula, True, fixed) is None


def always_holds(formula: Formula, fixed: Mapping[tuple[Any, ...], Any] | None = None) -> bool:
    return find(formula, False, fixed) is None


# ------------------------------------------------------------------ helpers


def _shape(value: Any) -> Any:
    """A hashable structure of an IR node, without spans and evidence numbering."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            *(
                _shape(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.name not in ("span", "index", "text")
            ),
        )
    return _hashable(value)


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_shape(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, bool | int | float):
        return (type(value).__name__, value)  # keep True apart from 1
    return value


def _text(node: ir.Node) -> str:
    if isinstance(node, ir.Compare | ir.Member):
        return node.text
    if isinstance(node, ir.Path):
        return node.dotted
    if isinstance(node, ir.Default) and isinstance(node.fallback, ir.Const):
        return f"{node.path.dotted} ?? {_show(node.fallback.value)}"
    return ""


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _is_plain_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
