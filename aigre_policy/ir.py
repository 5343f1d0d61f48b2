"""The intermediate representation: the checked, resolved program the backends read.

Every name is resolved (input path, envelope value or quantifier variable),
every operator carries the kind of values it works on, and every read of a
field that may be absent says so. Nodes keep spans so evidence can cite
``file:line:col``; each comparison has an index for evidence records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.diagnostics import NO_SPAN, Span


def _span() -> Any:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Const:
    value: Any
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Node, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Path:
    """A read of ``root.step.step``: an input root, or a quantifier variable (``local``).

    ``optional`` holds the indices of the steps that may be absent at this point
    of the program; guards have already removed the ones known present.
    ``guarded`` holds the steps the schema leaves optional but a guard proved
    present: safe to read here, not anywhere else. ``defaults`` holds the
    optional steps the schema gives a default, read as that default when absent.
    """

    root: str
    steps: tuple[str, ...]
    optional: tuple[int, ...] = ()
    local: bool = False
    guarded: tuple[int, ...] = ()
    defaults: tuple[tuple[int, Any], ...] = ()  # (step, value): absent reads as the schema default
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return ".".join((self.root, *self.steps))


@dataclass(frozen=True, slots=True)
class EnvelopeRef:
    """``envelope.field``: a limit held as data, overridable per deployment."""

    envelope: str
    name: str
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return f"{self.envelope}.{self.name}"


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``and`` / ``or``, short-circuit, left to right."""

    op: str
    left: Node
    right: Node
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    """A comparison; ``kind`` is ``time`` when both sides are timestamps (compared as instants)."""

    op: str
    left: Node
    right: Node
    kind: str
    index: int
    text: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Member:
    """``item in collection`` or ``item not in collection``.

    ``kind`` is ``time`` when the items are timestamps (matched as instants, not text).
    """

    negated: bool
    item: Node
    collection: Node
    index: int
    text: str
    span: Span = _span()
    kind: str = "value"


@dataclass(frozen=True, slots=True)
class Arith:
    """Arithmetic; ``kind`` names the operand kinds: ``number``, ``time-time``, ``time+dur``, ..."""

    op: str
    left: Node
    right: Node
    kind: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Default:
    path: Path
    fallback: Node
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Has:
    path: Path
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Node, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Quantifier:
    kind: str
    var: str
    items: Node
    body: Node
    span: Span = _span()


Node = (
    Const
    | ListOf
    | Path
    | EnvelopeRef
    | Not
    | Neg
    | BoolOp
    | Compare
    | Member
    | Arith
    | Default
    | Has
    | Call
    | Quantifier
)


@dataclass(frozen=True, slots=True)
class Rule:
    index: int
    id: str
    verdict: str
    groups: tuple[str, ...]
    title: str | None
    category: str
    severity: str
    tags: tuple[str, ...]
    condition: Node
    message: tuple[str | Node, ...]
    comparisons: int
    span: Span = _span()
    description: str | None = None
    owner: str | None = None

    @property
    def location(self) -> dict[str, Any]:
        return {"file": self.span.file, "line": self.span.line, "column": self.span.column}


@dataclass(frozen=True, slots=True)
class Usage:
    name: str
    aggregate: str
    argument: Node | None
    window: str
    window_seconds: float | None
    filter: Node | None
    span: Span = _span()
    # (past action's value, current action's value): the ``where`` conjuncts
    # ``EXPR == current.PATH``; a row counts only when each pair is equal
    matches: tuple[tuple[Node, Node], ...] = ()


@dataclass(frozen=True, slots=True)
class Invariant:
    """``invariant "name" { when CONDITION expect RELATION DECISION }``.

    ``condition`` is ``None`` when the invariant has no ``when``: it covers every
    input. ``relation`` is ``is``, ``not``, ``at least`` or ``at most``.
    """

    name: str
    condition: Node | None
    relation: str
    decision: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Program:
    """A whole pack after checking: rules in pack order, envelope values as data."""

    rules: tuple[Rule, ...]
    envelopes: dict[str, dict[str, Any]]
    usages: tuple[Usage, ...]
    invariants: tuple[Invariant, ...] = ()


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``, in evaluation order."""
    match node:
        case ListOf(items=items) | Call(args=items):
            return tuple(items)
        case Not(operand=x) | Neg(operand=x):
            return (x,)
        case BoolOp(left=a, right=b) | Compare(left=a, right=b) | Arith(left=a, right=b):
            return (a, b)
        case Member(item=a, collection=b):
            return (a, b)
        case Default(path=p, fallback=f):
            return (p, f)
        case Has(path=p):
            return (p,)
        case Quantifier(items=items, body=body):
            return (items, body)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of an expression, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)
