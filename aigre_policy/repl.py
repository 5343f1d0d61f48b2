"""Ad-hoc expressions against a pack and one input: what ``aigre-policy repl`` evaluates.

An expression goes through the same stages a rule's condition does: ``parser``
reads it, ``typecheck`` resolves its names against the pack's input schema and
envelopes (so an unknown field, a type error or an unguarded optional field is the
same diagnostic ``check`` gives), and the reference ``interpreter`` evaluates it
against the input with the pack's effective envelope values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aigre_policy import interpreter
from aigre_policy import nodes as n
from aigre_policy.compiler import CompiledPack
from aigre_policy.diagnostics import Diagnostic, Severity
from aigre_policy.parser import parse_expression
from aigre_policy.plain import NotPlain, as_plain
from aigre_policy.runtime import duration_text
from aigre_policy.schema_types import input_type
from aigre_policy.typecheck import INPUT_ROOTS, ExprChecker, Scope, constant_type
from aigre_policy.types import (
    DurationType,
    FieldType,
    ObjectType,
    TimestampType,
    Type,
)

EXPRESSION = "<expr>"  # the file name diagnostics of an expression carry


class ExpressionError(Exception):
    """The expression does not parse or type-check, or its evaluation failed: one line."""


@dataclass(frozen=True)
class Evaluated:
    value: Any
    type: Type

    def text(self) -> str:
        """The value as the language writes it: durations with a unit, JSON otherwise."""
        return render(self.value, self.type)

    def to_dict(self) -> dict[str, Any]:
        return {"value": _plain_number(self.value), "type": str(self.type), "text": self.text()}


class Session:
    """One pack and one input; ``evaluate`` takes expression after expression."""

    def __init__(
        self,
        pack: CompiledPack,
        action: Any = None,
        context: Any = None,
        usage: Any = None,
    ):
        self.pack = pack
        self.given = {
            root: value
            for root, value in (("action", action), ("context", context), ("usage", usage))
            if value is not None
        }
        try:
            self.scope: dict[str, Any] = as_plain(self.given)
        except NotPlain as exc:
            raise ExpressionError(f"the input is not JSON data: {exc}") from None
        self.shape = input_type(pack.input_schema)
        self.envelope_types, self.envelope_nodes = _envelopes(pack.modules)

    def input_problems(self) -> list[str]:
        """Where the input breaks the pack's schema (roots not given are not checked)."""
        if not self.given:
            return []
        document = {"action": {}, "context": {}, "usage": {}, **self.scope}
        validator = self.pack.checked.validator
        if validator is None:  # only a pack compiled with engine=None has none
            raise ValueError("the pack was compiled without its input validator")
        return [
            f"{error.path or '(input)'}: {error.message}"
            for error in validator.errors(document)
            if error.path.split(".")[0].split("[")[0] in self.given
        ]

    def evaluate(self, text: str) -> Evaluated:
        expr, problems = parse_expression(text, EXPRESSION)
        if expr is None or _errors(problems):
            raise ExpressionError(one_line(_errors(problems)[0]))
        diagnostics: list[Diagnostic] = []
        checker = ExprChecker(self.shape, self.envelope_types, {EXPRESSION: text}, diagnostics)
        checker.envelope_values = self.envelope_nodes
        node, typ = checker.expr(expr, Scope())
        if _errors(diagnostics) or node is None or typ is None:
            found = _errors(diagnostics)
            raise ExpressionError(one_line(found[0]) if found else "the expression has no type")
        try:
            value = interpreter.evaluate(node, self.scope, self.pack.envelopes)
        except KeyError as exc:
            root = str(exc.args[0]) if exc.args else ""
            if root in INPUT_ROOTS and root not in self.scope:
                raise ExpressionError(
                    f"the expression reads `{root}`, which was not given: pass --action FILE"
                ) from None
            raise ExpressionError(
                f"evaluation failed: {exc.args[0] if exc.args else exc}"
            ) from None
        except Exception as exc:  # the language's own faults: division by zero, overflow
            raise ExpressionError(f"evaluation failed: {type(exc).__name__}: {exc}") from None
        return Evaluated(value, typ)

    def completions(self, prefix: str) -> list[str]:
        """Names and dotted paths that continue ``prefix`` (for a line editor)."""
        head, dot, partial = prefix.rpartition(".")
        if not dot:
            names = [*INPUT_ROOTS, *self.envelope_types]
            return sorted(name for name in names if name.startswith(partial))
        typ: Type | None = None
        steps = head.split(".")
        if steps[0] in self.envelope_types:
            typ = self.envelope_types[steps[0]]
            steps = steps[1:]
        elif steps[0] in INPUT_ROOTS:
            typ = self.shape
        for step in steps:
            typ = (
                typ.fields[step].type
                if isinstance(typ, ObjectType) and step in typ.fields
                else None
            )
        if not isinstance(typ, ObjectType):
            return []
        return [f"{head}.{name}" for name in typ.fields if name.startswith(partial)]


def _envelopes(
    modules: Any,
) -> tuple[dict[str, ObjectType], dict[str, n.Constant]]:
    """Each envelope's type (its first declaration, as the checker reads it) and its values."""
    types: dict[str, ObjectType] = {}
    values: dict[str, n.Constant] = {}
    for module in modules:
        for decl in module.declarations:
            if not isinstance(decl, n.Envelope) or decl.name in types:
                continue
            fields: dict[str, FieldType] = {}
            for item in decl.fields:
                typ = constant_type(item.value)
                if typ is not None and item.name not in fields:
                    fields[item.name] = FieldType(typ, True)
                    values[f"{decl.name}.{item.name}"] = item.value
            types[decl.name] = ObjectType(f"envelope {decl.name}", fields)
    return types, values


def _errors(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity is Severity.ERROR]


def one_line(diagnostic: Diagnostic) -> str:
    """``1:8: error[E102]: message (hint)``: where in the expression, and why."""
    where = f"{diagnostic.span.line}:{diagnostic.span.column}: " if diagnostic.span else ""
    hint = f" ({diagnostic.hint})" if diagnostic.hint else ""
    return f"{where}{diagnostic.severity}[{diagnostic.code}]: {diagnostic.message}{hint}"


def render(value: Any, typ: Type) -> str:
    if isinstance(typ, DurationType) and _number(value):
        return duration_text(value)
    if isinstance(typ, TimestampType) and _number(value):  # computed: seconds since the epoch
        moment = datetime.fromtimestamp(value, UTC)
        return json.dumps(moment.isoformat().replace("+00:00", "Z"))
    return json.dumps(_plain_number(value), ensure_ascii=False)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain_number(value: Any) -> Any:
    """Integral floats as integers (``6 / 3`` is ``2``, as messages write it)."""
    if (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and abs(value) < 1e15
    ):
        return int(value)
    if isinstance(value, list):
        return [_plain_number(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain_number(item) for key, item in value.items()}
    return value


def lines(stream: Any) -> Iterator[str]:
    """The expressions of a stream, one a line; blank lines and ``#`` comments skipped."""
    for line in stream:
        text = line.strip()
        if text and not text.startswith("#"):
            yield text
