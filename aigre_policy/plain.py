"""What a caller passes, as the plain JSON data every engine judges, within the evaluation bounds.

``Pack.evaluate`` accepts any Python value, but a pack judges JSON data: the native evaluator,
the reference interpreter and the Rego engines must all see the same document. So before the
schema is checked, :func:`as_plain` turns the caller's value into JSON data (``dict``, ``list``,
``str``, ``int``, ``float``, ``bool``, ``None``, exact types only), the way a JSON round trip
would read it:

* any mapping (``OrderedDict``, ``MappingProxyType``, ``UserDict``, ...) becomes a ``dict`` with
  the same items, in the same order; a list or tuple (or a subclass) becomes a ``list``;
* a subclass of ``str``, ``int`` or ``float`` (a ``StrEnum``, an ``IntEnum``, ...) becomes the
  value of its base type, as JSON writes it; a pydantic model becomes its JSON dump.

Anything JSON cannot carry is refused with a :class:`NotPlain` naming its path: a ``datetime``,
``set``, ``bytes`` or any other object, a key that is not a string, NaN and infinity, an integer
of more than 4300 digits, a value that contains itself. So are documents past the
:data:`BOUNDS` every decision is held to (nesting, items per list or object, values, text),
which keep the cost of a decision bounded whatever the pack.

The usual input is already plain: :func:`as_plain` first checks it in one pass without copying
(:func:`_fits`), and only converts (:class:`_Conversion`) when that check finds something to do.
Both walks stop at the depth bound, so neither recursion nor a cycle can run away.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from itertools import islice
from typing import Any

from aigre_policy.validation import dotted

__all__ = ["BOUNDS", "Bounds", "NotPlain", "as_plain"]


def _is_model(value: Any) -> bool:
    """A pydantic model: only possible once pydantic is imported, so a caller that never
    loads it (the command line) never pays for importing it here."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


@dataclass(frozen=True, slots=True)
class Bounds:
    """What one decision's input may hold (documented in docs/packs.md)."""

    depth: int = 32
    """Steps in the longest path: ``action`` is 1, ``action.blast_radius.services[0]`` is 4."""
    items: int = 1_000
    """Items of one list, members of one object."""
    values: int = 10_000
    """Items and members in the whole document, at every depth."""
    text: int = 1_000_000
    """Characters in all string values together."""
    digits: int = 4_300
    """Digits of an integer (Python's JSON reader and writer refuse longer ones)."""
    int_limit: int = field(init=False, repr=False, compare=False)
    """``10 ** digits``: the smallest integer too long, computed once."""
    int_floor: int = field(init=False, repr=False, compare=False)
    """``-int_limit``, computed once: negating it on every integer read copies 4300 digits."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "int_limit", 10**self.digits)
        object.__setattr__(self, "int_floor", -self.int_limit)


BOUNDS = Bounds()


class NotPlain(ValueError):
    """A value with no JSON meaning, or past a bound: where it is and what is wrong."""

    def __init__(self, path: str, message: str, keyword: str):
        super().__init__(f"{path or '<input>'}: {message}")
        self.path = path
        self.message = message
        self.keyword = keyword  # "json" (not JSON data) or "bounds" (past an evaluation bound)

    def problem(self) -> dict[str, str]:
        """The verdict's error entry."""
        return {
            "kind": "input",
            "path": self.path,
            "message": self.message,
            "keyword": self.keyword,
        }


def as_plain(value: Any, root: str = "", bounds: Bounds = BOUNDS) -> Any:
    """``value`` as plain JSON data: itself when it already is, else a converted copy.

    ``root``: the path ``value`` sits at, for messages (``"action"``); paths deeper than
    ``bounds.depth`` count from there. Raises :class:`NotPlain`.
    """
    kind = type(value)
    if (kind is dict or kind is list) and _fits(value, 1 if root else 0, bounds):
        return value
    return _Conversion(bounds).value(value, [root] if root else [])


# --- the check: is it plain already? -----------------------------------------------------------

_ATOMS = frozenset({str, int, float, bool, type(None)})


def _fits(container: Any, depth: int, bounds: Bounds) -> bool:
    """Whether a dict or list is plain JSON data within ``bounds`` as it is.

    ``False`` also when it cannot tell cheaply (a container at the depth bound, even empty):
    the conversion then decides. ``depth``: the path length of ``container``. On every
    decision's path, so it goes level by level in one function: exact types only, no copies;
    an object's keys are checked in the same pass as its values, and the members of a list
    and of an object are checked by the same test, written out twice (a helper call per
    member would cost more than the test).
    """
    items, budget, text = bounds.items, bounds.values, bounds.text
    high, low = bounds.int_limit, bounds.int_floor
    level = [container]
    while level:
        below: list[Any] = []
        push = below.append
        for members in level:
            size = len(members)
            budget -= size
            if size > items or budget < 0:
                return False
            if type(members) is dict:
                for key, member in members.items():
                    if type(key) is not str:
                        return False
                    kind = type(member)
                    if kind is str:
                        text -= len(member)
                    elif kind is dict or kind is list:
                        push(member)
                    elif kind is int:
                        if not low < member < high:
                            return False
                    elif kind is bool or member is None:
                        pass
                    elif kind is float:
                        if member - member != 0:  # NaN or infinity
                            return False
                    else:
                        return False
            else:
                for member in members:
                    kind = type(member)
                    if kind is str:
                        text -= len(member)
                    elif kind is dict or kind is list:
                        push(member)
                    elif kind is int:
                        if not low < member < high:
                            return False
                    elif kind is bool or member is None:
                        pass
                    elif kind is float:
                        if member - member != 0:  # NaN or infinity
                            return False
                    else:
                        return False
        depth += 1
        if below and depth >= bounds.depth:
            return False
        level = below
    return text >= 0


# --- the conversion: a plain copy, or where it stops ------------------------------------------


class _Conversion:
    """One conversion of a caller's value: the bounds left and the containers on the path."""

    def __init__(self, bounds: Bounds):
        self.bounds = bounds
        self.values = bounds.values
        self.text = bounds.text
        self.open: set[int] = set()  # ids of the containers on the current path (cycles)

    def value(self, value: Any, path: list[str | int]) -> Any:
        kind = type(value)
        if kind in _ATOMS:
            converted = _convert_atom(value, path, self.bounds)
            if type(converted) is str:
                self.text -= len(converted)
                if self.text < 0:
                    raise NotPlain(
                        dotted(path),
                        f"the strings of the input exceed {self.bounds.text} characters "
                        "(evaluation bound)",
                        "bounds",
                    )
            return converted
        if _is_model(value):
            try:
                dumped = value.model_dump(mode="json", exclude_none=True)
            except Exception as exc:  # a model pydantic cannot write as JSON
                raise NotPlain(
                    dotted(path), f"cannot be read: {type(exc).__name__}", "json"
                ) from None
            return self.value(dumped, path)
        if isinstance(value, str | int | float):  # subclasses: what JSON writes for them
            return self.value(_base_value(value), path)
        if isinstance(value, Mapping):
            return self._container(value, path, mapping=True)
        if isinstance(value, list | tuple):
            return self._container(value, path, mapping=False)
        raise NotPlain(dotted(path), _not_json(value), "json")

    def _container(self, value: Any, path: list[str | int], mapping: bool) -> Any:
        where = dotted(path)
        if id(value) in self.open:
            raise NotPlain(where, "the value contains itself: JSON data cannot", "json")
        bounds = self.bounds
        try:  # one past the bound at most: a caller's mapping may never end
            items = list(islice(value.items() if mapping else value, bounds.items + 1))
        except Exception as exc:  # a caller's mapping whose items cannot be read
            raise NotPlain(where, f"cannot be read: {type(exc).__name__}", "json") from None
        if len(items) > bounds.items:
            noun = "members" if mapping else "items"
            raise NotPlain(
                where, f"has more than {bounds.items} {noun} (evaluation bound)", "bounds"
            )
        self.values -= len(items)
        if self.values < 0:
            raise NotPlain(
                where,
                f"the input holds more than {bounds.values} values (evaluation bound)",
                "bounds",
            )
        if items and len(path) >= bounds.depth:
            raise NotPlain(
                where, f"nests deeper than {bounds.depth} levels (evaluation bound)", "bounds"
            )
        self.open.add(id(value))
        try:
            if not mapping:
                return [self.value(item, [*path, i]) for i, item in enumerate(items)]
            converted: dict[str, Any] = {}
            for key, member in items:
                if isinstance(key, str):
                    key = str.__str__(key)
                else:
                    raise NotPlain(
                        where,
                        f"has a key of type {type(key).__name__}: JSON object keys are strings",
                        "json",
                    )
                if key in converted:
                    raise NotPlain(dotted([*path, key]), "is a key twice", "json")
                converted[key] = self.value(member, [*path, key])
            return converted
        finally:
            self.open.discard(id(value))


def _convert_atom(value: Any, path: list[str | int], bounds: Bounds) -> Any:
    """An exact ``str``/``int``/``float``/``bool``/``None``, checked where JSON has limits."""
    kind = type(value)
    if kind is float and value - value != 0:
        raise NotPlain(dotted(path), f"{value!r} is not a JSON number", "json")
    if kind is int and not bounds.int_floor < value < bounds.int_limit:
        raise NotPlain(
            dotted(path),
            f"an integer of more than {bounds.digits} digits (evaluation bound)",
            "bounds",
        )
    return value


def _base_value(value: str | int | float) -> str | int | float:
    """A ``str``/``int``/``float`` subclass as its base type's value, as JSON writes it."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    return float.__float__(value)


def _not_json(value: Any) -> str:
    """Why ``value`` is not JSON data (its type only: its text may be huge or hostile)."""
    name = type(value).__name__
    if isinstance(value, date | time):
        return f"a {name} is not JSON data: pass it as an RFC 3339 string"
    if isinstance(value, timedelta):
        return f"a {name} is not JSON data: pass it as a number of seconds"
    if isinstance(value, set | frozenset):
        return f"a {name} is not JSON data: pass a list"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{name} are not JSON data: pass a string"
    return f"a {name} is not JSON data"
