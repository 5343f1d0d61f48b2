"""The abstract syntax tree: immutable nodes with source spans.

Spans are excluded from equality so tests can compare structure. Only
``parser`` builds these from Lark's tree; every later stage reads these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aigre_policy.diagnostics import NO_SPAN, Span


def _span() -> Any:
    return field(default=NO_SPAN, compare=False, repr=False)


# ------------------------------------------------------------------ expressions


@dataclass(frozen=True, slots=True)
class Literal:
    """A number, string, boolean, or duration (seconds, ``is_duration`` set)."""

    value: Any
    is_duration: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    """A bare name: an input root, an envelope, or a quantifier variable."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Field:
    """``subject.name``."""

    subject: Expr
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Unary:
    """``not x`` or ``-x``."""

    op: str
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Binary:
    """``and``, ``or``, comparisons, ``in``/``not in`` and arithmetic."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Default:
    """``value ?? fallback``: the fallback when an optional path is absent."""

    value: Expr
    fallback: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Has:
    """``has path``: true when every step of the path is present."""

    path: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Quantifier:
    """``any(x in items: body)`` or ``all(x in items: body)``."""

    kind: str
    var: str
    items: Expr
    body: Expr
    span: Span = _span()


Expr = Literal | ListExpr | Name | Field | Unary | Binary | Default | Has | Call | Quantifier


@dataclass(frozen=True, slots=True)
class Message:
    """An interpolated string: literal text and ``{expression}`` parts."""

    parts: tuple[str | Expr, ...]
    span: Span = _span()


# ------------------------------------------------------------------ constants


@dataclass(frozen=True, slots=True)
class ObjectConst:
    """``{ key: value, ... }`` in tests; keys keep their spans for diagnostics."""

    fields: tuple[ObjectField, ...]
    span: Span = _span()

    def to_value(self) -> dict[str, Any]:
        return {f.name: constant_value(f.value) for f in self.fields}


@dataclass(frozen=True, slots=True)
class ObjectField:
    name: str
    value: Constant
    span: Span = _span()


Constant = Literal | ListExpr | ObjectConst


def constant_value(node: Constant) -> Any:
    """The plain Python value of a constant node."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ListExpr):
        return [constant_value(item) for item in node.items]  # type: ignore[arg-type]
    return node.to_value()


# ------------------------------------------------------------------ declarations


@dataclass(frozen=True, slots=True)
class EnvelopeField:
    name: str
    value: Constant
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Envelope:
    name: str
    fields: tuple[EnvelopeField, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Meta:
    """``key: value`` in a rule; value is a str, a bare word, or a tuple of str."""

    key: str
    value: str | tuple[str, ...]
    is_word: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class VerdictClause:
    """``deny when ...``, ``require_approval by [...] when ...`` and the like."""

    verdict: str
    groups: tuple[str, ...]
    condition: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    meta: tuple[Meta, ...]
    verdicts: tuple[VerdictClause, ...]
    because: tuple[Message, ...]
    span: Span = _span()
    id_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Usage:
    """``usage name = sum(expr) over window where filter``."""

    name: str
    aggregate: str
    argument: Expr | None
    window: str
    window_seconds: float | None
    filter: Expr | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestInput:
    """``ROOT { ... }`` (``value``), ``ROOT from "FILE"`` (``from_file``), or both:
    ``ROOT from "FILE" { ... }``, the file's input with ``value``'s fields set over it."""

    root: str
    value: ObjectConst | None
    from_file: str | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestOverride:
    envelope: str
    name: str
    value: Constant
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Expectation:
    """One ``expect`` line of a test.

    ``expect DECISION [by [at least] rule, ...]`` (``rules`` fire exactly, or at
    least them with ``at_least``; ``by no rule``: ``no_rules``, none fires),
    ``expect message contains "..."``,
    ``expect silent rule, ...`` (``silent``: rules that must not fire) or
    ``expect evidence path == value`` (``evidence``: a fired rule read that value).
    """

    decision: str | None
    rules: tuple[str, ...]
    message_contains: str | None
    span: Span = _span()
    rule_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)
    at_least: bool = False
    silent: tuple[str, ...] = ()
    no_rules: bool = False  # `expect DECISION by no rule`: exactly no rule fires
    evidence: tuple[str, Constant] | None = None


@dataclass(frozen=True, slots=True)
class Test:
    name: str
    inputs: tuple[TestInput, ...]
    overrides: tuple[TestOverride, ...]
    expectations: tuple[Expectation, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Invariant:
    """``invariant "name" { when COND expect [not|at least|at most] DECISION }``."""

    name: str
    condition: Expr | None
    relation: str
    decision: str
    span: Span = _span()


Declaration = Envelope | Rule | Usage | Test | Invariant


@dataclass(frozen=True, slots=True)
class Module:
    """One ``.aigre`` file."""

    file: str
    declarations: tuple[Declaration, ...]
    span: Span = _span()
