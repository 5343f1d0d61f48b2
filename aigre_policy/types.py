"""The type system: types derived from a pack's JSON Schema and from literals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aigre_policy import lattice


@dataclass(frozen=True, slots=True)
class NumberType:
    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def __str__(self) -> str:
        return "integer" if self.integer else "number"


@dataclass(frozen=True, slots=True)
class StringType:
    enum: tuple[str, ...] | None = None

    def __str__(self) -> str:
        if self.enum is None:
            return "string"
        shown = ", ".join(f'"{v}"' for v in self.enum[:6])
        return f"string (one of {shown}{', ...' if len(self.enum) > 6 else ''})"


@dataclass(frozen=True, slots=True)
class BoolType:
    def __str__(self) -> str:
        return "boolean"


@dataclass(frozen=True, slots=True)
class TimestampType:
    def __str__(self) -> str:
        return "timestamp"


@dataclass(frozen=True, slots=True)
class DurationType:
    def __str__(self) -> str:
        return "duration"


@dataclass(frozen=True, slots=True)
class ListType:
    item: Type

    def __str__(self) -> str:
        return f"list of {self.item}"


@dataclass(frozen=True, slots=True)
class FieldType:
    """A field of an object; ``default`` holds the schema's ``default`` as ``(value,)``.

    An optional field with a schema default reads as that default when absent, so
    rules may read it bare; one without a default needs ``??`` or ``has``.
    """

    type: Type
    required: bool
    default: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectType:
    name: str
    fields: Mapping[str, FieldType] = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        return f"object {self.name}" if self.name else "object"


@dataclass(frozen=True, slots=True)
class NeverType:
    """The item type of an empty list literal: compatible with every type."""

    def __str__(self) -> str:
        return "nothing"


@dataclass(frozen=True, slots=True)
class UnsupportedType:
    """A schema construct the language cannot read (reading it is an error)."""

    reason: str

    def __str__(self) -> str:
        return f"unsupported ({self.reason})"


@dataclass(frozen=True, slots=True)
class KeyedType:
    """An envelope value keyed by a string (``{ default: 250, by_team: { ml: 5000 } }``):
    read with ``lookup(envelope.name, key)``, a key it does not list reads the default."""

    value: Type
    label: str  # what the keys name: `team` for `by_team`
    keys: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.value} by {self.label}"


Type = (
    NumberType
    | StringType
    | BoolType
    | TimestampType
    | DurationType
    | ListType
    | ObjectType
    | NeverType
    | UnsupportedType
    | KeyedType
)

NUMBER = NumberType()
STRING = StringType()
BOOL = BoolType()
TIMESTAMP = TimestampType()
DURATION = DurationType()
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DECISIONS = lattice.DECISIONS  # what `decision` (the history of a usage) may hold


def same_kind(a: Type, b: Type) -> bool:
    """Whether values of the two types can be compared for equality."""
    if isinstance(a, NeverType) or isinstance(b, NeverType):
        return True
    if isinstance(a, ListType) and isinstance(b, ListType):
        return same_kind(a.item, b.item)
    if isinstance(a, ObjectType) and isinstance(b, ObjectType):
        return True
    return type(a) is type(b)


def join(a: Type, b: Type) -> Type:
    """The type of a value that is either an ``a`` or a ``b`` (both of one kind)."""
    if isinstance(a, NeverType):
        return b
    if isinstance(b, NeverType):
        return a
    if isinstance(a, StringType) and isinstance(b, StringType):
        if a.enum is None or b.enum is None:
            return STRING
        return StringType(tuple(dict.fromkeys(a.enum + b.enum)))
    if isinstance(a, NumberType) and isinstance(b, NumberType):
        return NumberType(a.integer and b.integer)
    if isinstance(a, ListType) and isinstance(b, ListType):
        return ListType(join(a.item, b.item))
    return a
