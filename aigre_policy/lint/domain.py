"""The values a field read can take, per the input schema.

A ``Domain`` is what the schema admits for one read: a number interval (integer
or real, ``minimum``/``maximum``), a set of strings (an enum, or any string), or
a boolean; ``extra`` holds values the read may give besides, such as a ``??``
fallback. Given the constants a condition compares the read with, a domain
splits into finitely many regions on which every such comparison has one
truth value; ``representatives`` picks one value in each. That is what makes
the linter's decisions exact rather than sampled.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aigre_policy.types import BoolType, NumberType, ObjectType, StringType, Type


@dataclass(frozen=True, slots=True)
class Domain:
    kind: str  # "number", "string" or "boolean"
    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    extra: tuple[Any, ...] = ()

    def with_extra(self, values: Iterable[Any]) -> Domain:
        extra = list(self.extra)
        for value in values:
            if not _same_kind(value, tuple(extra)):
                extra.append(value)
        return Domain(self.kind, self.integer, self.minimum, self.maximum, self.enum, tuple(extra))

    def in_range(self, value: Any) -> bool:
        """Whether ``value`` lies inside the schema's range or enum, or is an extra value."""
        if _same_kind(value, self.extra):
            return True
        if self.kind == "number":
            if not _is_number(value):
                return False
            low_ok = self.minimum is None or value >= self.minimum
            return low_ok and (self.maximum is None or value <= self.maximum)
        if self.kind == "string":
            return isinstance(value, str) and (self.enum is None or value in self.enum)
        return isinstance(value, bool)

    def describe(self) -> str:
        if self.kind == "number":
            name = "an integer" if self.integer else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{name} from {_num(self.minimum)} to {_num(self.maximum)}"
            if self.minimum is not None:
                return f"{name} of at least {_num(self.minimum)}"
            if self.maximum is not None:
                return f"{name} of at most {_num(self.maximum)}"
            return name
        if self.kind == "string" and self.enum is not None:
            return "one of " + ", ".join(f'"{v}"' for v in self.enum)
        return "a string" if self.kind == "string" else "a boolean"

    def representatives(self, constants: Iterable[Any]) -> list[Any]:
        """One value per region the ``constants`` cut this domain into, extras included."""
        consts = list(constants)
        if self.kind == "boolean":
            values: list[Any] = [True, False]
        elif self.kind == "string":
            values = self._strings(consts)
        else:
            values = self._numbers(consts)
        for value in self.extra:
            if not any(_identical(value, v) for v in values):
                values.append(value)
        return values

    def _strings(self, constants: list[Any]) -> list[Any]:
        mentioned = list(dict.fromkeys(c for c in constants if isinstance(c, str)))
        if self.enum is not None:
            inside = [v for v in self.enum if v in mentioned]
            others = [v for v in self.enum if v not in mentioned]
            return inside + others[:1]  # unmentioned values all behave alike
        fresh = "~"
        while fresh in mentioned:
            fresh += "~"
        return [*mentioned, fresh]

    def _numbers(self, constants: list[Any]) -> list[Any]:
        low, high = self.minimum, self.maximum
        cuts = {c for c in constants if _is_number(c) and math.isfinite(c)}
        cuts = {c for c in cuts if (low is None or c >= low) and (high is None or c <= high)}
        cuts |= {b for b in (low, high) if b is not None}
        ordered = sorted(cuts)
        values: list[Any] = [c for c in ordered if not self.integer or float(c).is_integer()]
        bounds: list[tuple[float | None, float | None]] = []
        if not ordered:
            bounds.append((None, None))
        else:
            if low is None:
                bounds.append((None, ordered[0]))
            bounds += list(itertools.pairwise(ordered))
            if high is None:
                bounds.append((ordered[-1], None))
        for a, b in bounds:
            inside = self._between(a, b)
            if inside is not None:
                values.append(inside)
        if self.integer:
            values = [int(v) if float(v).is_integer() else v for v in values]
        return values

    def _between(self, a: float | None, b: float | None) -> float | None:
        """A value strictly between ``a`` and ``b`` (``None``: unbounded), if there is one."""
        if self.integer:
            if a is None and b is None:
                return 0
            candidate = math.floor(a) + 1 if a is not None else math.ceil(b) - 1  # type: ignore[arg-type]
            return candidate if b is None or candidate < b else None
        if a is None and b is None:
            return 0
        if a is None:
            return b - 1  # type: ignore[operator]
        if b is None:
            return a + 1
        middle = (a + b) / 2
        return middle if a < middle < b else None


def domain_of(typ: Type) -> Domain | None:
    """The domain of a schema type the linter reasons about; ``None`` for the others."""
    match typ:
        case BoolType():
            return Domain("boolean")
        case NumberType(integer=integer, minimum=minimum, maximum=maximum):
            return Domain("number", integer, minimum, maximum)
        case StringType(enum=enum):
            return Domain("string", enum=enum)
    return None


def field_type(input_type: ObjectType, root: str, steps: tuple[str, ...]) -> Type | None:
    """The schema type at ``root.steps`` of the input, or ``None``."""
    root_field = input_type.fields.get(root)
    if root_field is None:
        return None
    typ: Type = root_field.type
    for step in steps:
        if not isinstance(typ, ObjectType) or step not in typ.fields:
            return None
        typ = typ.fields[step].type
    return typ


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _identical(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (_is_number(a) and _is_number(b) and a == b)


def _same_kind(value: Any, extras: tuple[Any, ...]) -> bool:
    return any(_identical(value, e) for e in extras)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
