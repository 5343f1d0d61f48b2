"""The input the schema admits, as solver variables, and a concrete input back from a model.

Each field a formula reads is a ``Slot``, made when it is first read: a presence
variable when the schema leaves the field optional (absent and ``null`` are one
case, as the engine reads them), and a value variable typed by the schema, held
to what it says (enums, bounds, lengths). Lists hold at most ``list_bound`` items
unless the schema's ``maxItems`` is smaller; the bound is reported with every
result. Timestamps are whole seconds from 0001-01-01 to 9999-12-31 UTC.
Fields no formula reads cannot change a decision; in a witness they take a
minimal valid value (``testing.schema_values.minimal``).

Deferred imports: z3 (the `prove` extra) loads only when a proof is asked for.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import z3

from aigre_policy.solver.values import TRUE, Val
from aigre_policy.testing.schema_values import minimal, resolve

FIRST_SECOND = -62135596800  # 0001-01-01T00:00:00Z
LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LARGEST = z3.RealVal(Fraction(sys.float_info.max))
ROOTS = ("action", "context", "usage")


class Unencodable(Exception):
    """A construct the encoding cannot state exactly: named, with where it is."""

    def __init__(self, construct: str, span: Any = None):
        super().__init__(construct)
        self.construct = construct
        self.span = span


@dataclass(eq=False)
class Slot:
    """One place in the input: ``key`` such as ``("action", "cost", "estimated_usd")``.

    List items have integer steps: ``("context", "approvals", 0, "by")``.
    """

    key: tuple[Any, ...]
    node: dict[str, Any]  # the resolved sub-schema
    present: Any  # z3 Bool; TRUE when the schema requires the field
    value: Val | None = None
    children: dict[str, Slot] = field(default_factory=dict)
    items: list[Slot] = field(default_factory=list)
    length: Any = None  # z3 Int, for a list

    @property
    def dotted_key(self) -> str:
        return dotted_key(self.key)

    @property
    def kind(self) -> str:
        return _kind(self.node)


def _kind(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "properties" in node:
        return "object"
    if kind is None and ("enum" in node or "const" in node):
        return "string"
    return kind or "unknown"


def _nullable(raw: Any) -> bool:
    if not isinstance(raw, dict):
        return False
    kind = raw.get("type")
    if isinstance(kind, list) and "null" in kind:
        return True
    for key in ("anyOf", "oneOf"):
        if any(isinstance(o, dict) and o.get("type") == "null" for o in raw.get(key, ())):
            return True
    return False


class InputSpace:
    """Every slot made so far, and what holds them to the schema."""

    def __init__(
        self, schema: dict[str, Any], list_bound: int, lengths: dict[str, int] | None = None
    ):
        self.schema = schema
        self.list_bound = list_bound
        self.lengths = lengths or {}  # list path -> items a compared length needs
        self.constraints: list[Any] = []
        self.slots: list[Slot] = []
        self.bounded: dict[str, int] = {}  # list path -> the bound the proof used
        top = resolve(schema, schema)
        self.roots = {
            root: self._make((root,), top.get("properties", {}).get(root, {}), TRUE)
            for root in ROOTS
        }

    # ------------------------------------------------------------------ making slots

    def _make(self, key: tuple[Any, ...], raw: Any, present: Any) -> Slot:
        slot = Slot(key, resolve(self.schema, raw), present)
        self.slots.append(slot)
        return slot

    def child(self, parent: Slot, name: str) -> Slot:
        found = parent.children.get(name)
        if found is not None:
            return found
        properties = parent.node.get("properties", {})
        if name not in properties:
            raise Unencodable(f"`{'.'.join(map(str, (*parent.key, name)))}` is not in the schema")
        raw = properties[name]
        required = name in parent.node.get("required", ()) and not _nullable(raw)
        present = TRUE if required else z3.Bool(f"has {dotted_key((*parent.key, name))}")
        slot = self._make((*parent.key, name), raw, present)
        parent.children[name] = slot
        return slot

    def value(self, slot: Slot) -> Val:
        if slot.value is None:
            slot.value = self._value(slot)
        return slot.value

    def _value(self, slot: Slot) -> Val:
        node, name = slot.node, dotted_key(slot.key)
        kind = slot.kind
        add = self.constraints.append
        values = node.get("enum", [node["const"]] if "const" in node else None)
        if values is not None:
            if not all(isinstance(v, str) for v in values if v is not None):
                raise Unencodable(f"`{name}`: an enum of values that are not strings")
            var = z3.String(name)
            add(z3.Or([var == z3.StringVal(v) for v in values if v is not None]))
            return Val("str", var)
        if kind == "string" and node.get("format") == "date-time":
            var = z3.Int(name)
            add(z3.And(var >= FIRST_SECOND, var <= LAST_SECOND))
            return Val("num", var, integral=True)
        if kind == "string":
            var = z3.String(name)
            if "minLength" in node:
                add(z3.Length(var) >= node["minLength"])
            if "maxLength" in node:
                add(z3.Length(var) <= node["maxLength"])
            return Val("str", var)
        if kind in ("integer", "number"):
            var = z3.Int(name) if kind == "integer" else z3.Real(name)
            if kind == "number":  # what a JSON number read as a double can hold
                add(z3.And(var >= -_LARGEST, var <= _LARGEST))
            for key, test in (
                ("minimum", lambda v, b: v >= b),
                ("maximum", lambda v, b: v <= b),
                ("exclusiveMinimum", lambda v, b: v > b),
                ("exclusiveMaximum", lambda v, b: v < b),
            ):
                bound = node.get(key)
                if isinstance(bound, int | float) and not isinstance(bound, bool):
                    add(test(var, z3.RealVal(Fraction(bound)) if kind == "number" else bound))
            return Val("num", var, pyint=kind == "integer")
        if kind == "boolean":
            return Val("bool", z3.Bool(name))
        if kind == "object":
            return Val("obj", slot=slot)
        if kind == "array":
            return self._list(slot)
        raise Unencodable(f"`{name}`: a schema construct the solver does not read")

    def _list(self, slot: Slot) -> Val:
        node, name = slot.node, dotted_key(slot.key)
        length = z3.Int(f"len {name}")
        most = node.get("maxItems")
        path = dotted_key(slot.key, items=False)
        wanted = max(self.list_bound, self.lengths.get(path, 0), self.lengths.get("", 0))
        bound = wanted if most is None else min(most, wanted)
        if most is None or most > bound:
            self.bounded[path] = bound
        self.constraints += [length >= node.get("minItems", 0), length <= bound]
        slot.length = length
        raw_item = node.get("items", {})
        slot.items = [self._make((*slot.key, k), raw_item, TRUE) for k in range(bound)]
        items = tuple(_Lazy(self, item) for item in slot.items)
        return Val("list", items=items, length=length)

    # ------------------------------------------------------------------ back from a model

    def document(self, model: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """A concrete input: ``base`` (or a minimal valid one) with every slot's model value."""
        doc = copy.deepcopy(base) if base is not None else minimal(self.schema, self.schema)
        for root, slot in self.roots.items():
            if not isinstance(doc.get(root), dict):
                doc[root] = minimal(self.schema, slot.node) or {}
            self._fill(slot, doc[root], model)
        return doc

    def _fill(self, slot: Slot, target: dict[str, Any], model: Any) -> None:
        for name, child in slot.children.items():
            if not _true(model, child.present):
                target.pop(name, None)
                continue
            target[name] = self._concrete(child, target.get(name), model)

    def _concrete(self, slot: Slot, current: Any, model: Any) -> Any:
        kind = slot.kind
        if kind == "object":
            holder = current if isinstance(current, dict) else minimal(self.schema, slot.node)
            holder = dict(holder or {})
            self._fill(slot, holder, model)
            return holder
        if kind == "array" and slot.length is not None:
            count = model.eval(slot.length, model_completion=True).as_long()
            old = current if isinstance(current, list) else []
            out = []
            for k in range(count):
                item = old[k] if k < len(old) else None
                made = slot.items[k]
                if made.value is None and not made.children and item is not None:
                    out.append(item)
                    continue
                if item is None and made.value is None and not made.children:
                    item = minimal(self.schema, made.node)
                out.append(self._concrete(made, item, model))
            return out
        if slot.value is None:
            return current if current is not None else minimal(self.schema, slot.node)
        made = concrete(slot, model)
        if current is not None and _same(slot, current, made):
            return current  # as given: the same value, written as the input wrote it
        return made

    def fixed(self, doc: dict[str, Any]) -> list[Any]:
        """Formulas that hold the slots made so far to their values in ``doc``."""
        return [formula for _, formula in self.keeps(doc)]

    def keeps(self, doc: dict[str, Any]) -> list[tuple[tuple[Any, ...], Any]]:
        """One formula per slot made so far (its presence, length or value): as in ``doc``."""
        out: list[tuple[tuple[Any, ...], Any]] = []
        for root, slot in self.roots.items():
            self._fix(slot, doc.get(root), out)
        return out

    def _fix(self, slot: Slot, value: Any, out: list[tuple[tuple[Any, ...], Any]]) -> None:
        if value is None:
            if slot.present is not TRUE:
                out.append((slot.key, z3.Not(slot.present)))
            return
        if slot.present is not TRUE:
            out.append((slot.key, slot.present))
        for name, child in slot.children.items():
            self._fix(child, value.get(name) if isinstance(value, dict) else None, out)
        if slot.length is not None and isinstance(value, list):
            out.append((slot.key, slot.length == len(value)))
            for k, item in enumerate(value[: len(slot.items)]):
                self._fix(slot.items[k], item, out)
        if slot.value is not None and slot.value.kind in ("bool", "num", "str"):
            out.append((slot.key, slot.value.z == literal(slot, value)))


class _Lazy:
    """A list item: its slot, whose value is made when a formula reads it."""

    __slots__ = ("slot", "space")

    def __init__(self, space: InputSpace, slot: Slot):
        self.space = space
        self.slot = slot

    def get(self) -> Val:
        return self.space.value(self.slot)


def item_value(item: Any) -> Val:
    return item.get() if isinstance(item, _Lazy) else item


def dotted_key(key: tuple[Any, ...], items: bool = True) -> str:
    """``context.approvals[0].by``; with ``items`` off, ``context.approvals[].by``."""
    text = ""
    for step in key:
        if isinstance(step, str):
            text += f".{step}" if text else step
        else:
            text += f"[{step}]" if items else "[]"
    return text


def _true(model: Any, formula: Any) -> bool:
    return z3.is_true(model.eval(formula, model_completion=True))


def text_of(model: Any, string: Any) -> str:
    """A z3 string in the model, character by character (z3 escapes some in ``as_string``)."""
    length = model.eval(z3.Length(string), model_completion=True).as_long()
    codes = [
        model.eval(z3.StrToCode(z3.SubString(string, i, 1)), model_completion=True).as_long()
        for i in range(length)
    ]
    return "".join(chr(c) for c in codes)


def timestamp_text(seconds: int) -> str:
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"


def number_of(value: Any) -> int | float:
    if z3.is_int_value(value):
        return value.as_long()
    exact = value.as_fraction()
    if exact.denominator == 1 and abs(exact) < 2**53:
        return int(exact)
    try:
        return float(exact)
    except OverflowError:  # past the largest double: no input holds it, a sum may reach it
        return math.inf if exact > 0 else -math.inf


def concrete(slot: Slot, model: Any) -> Any:
    value = slot.value
    assert value is not None
    if value.kind == "bool":
        return _true(model, value.z)
    if value.kind == "str":
        return text_of(model, value.z)
    evaluated = model.eval(value.z, model_completion=True)
    if slot.node.get("format") == "date-time":
        return timestamp_text(evaluated.as_long())
    return number_of(evaluated)


def _same(slot: Slot, current: Any, made: Any) -> bool:
    if slot.node.get("format") == "date-time":
        from aigre_policy.runtime import to_time

        try:
            return bool(to_time(current) == to_time(made))
        except (TypeError, ValueError):
            return False
    return (type(current) is type(made) and current == made) or (
        isinstance(current, int | float)
        and isinstance(made, int | float)
        and not isinstance(current, bool)
        and not isinstance(made, bool)
        and current == made
    )


def literal(slot: Slot, value: Any) -> Any:
    """The z3 constant standing for a concrete field value (for holding a field fixed)."""
    assert slot.value is not None
    if slot.value.kind == "bool":
        return z3.BoolVal(bool(value))
    if slot.value.kind == "str":
        return z3.StringVal(str(value))
    if slot.node.get("format") == "date-time":
        from aigre_policy.runtime import to_time

        return z3.IntVal(int(to_time(value)))
    if slot.value.z.sort() == z3.IntSort():
        return z3.IntVal(int(value))
    return z3.RealVal(Fraction(value))
