"""The only names generated evaluator code may use.

``EXPORTED``, with the language's functions (``functions.NATIVE``, ``f_<name>``),
is the whole namespace a compiled pack runs in: no builtins beyond these, so
generated code can reach nothing else. Every function here is total
on the values the input schema admits, or raises, which the caller turns into
a fail-closed verdict.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _parse_time(text: str) -> float:
    # RFC 3339 lets `T` and `Z` be lower case; fromisoformat wants them upper case
    moment = datetime.fromisoformat(text.upper())
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    # a difference, not .timestamp(): total for every valid year, offsets included
    return (moment - _EPOCH).total_seconds()


def to_time(value: Any) -> float:
    """Seconds since the epoch for an RFC 3339 string, or a number already converted."""
    if type(value) is str:
        return _parse_time(value)
    return value


def keyed(table: Any, key: Any) -> Any:
    """`lookup`: the entry for ``key`` in a keyed envelope value's table, else its default."""
    for label, entries in table.items():
        if label != "default" and key in entries:
            return entries[key]
    return table["default"]


def _utc(value: Any) -> datetime:
    return datetime.fromtimestamp(to_time(value), UTC)


def hour(value: Any) -> int:
    return _utc(value).hour


def minute(value: Any) -> int:
    return _utc(value).minute


def weekday(value: Any) -> str:
    return WEEKDAY_NAMES[_utc(value).weekday()]


def date(value: Any) -> str:
    return _utc(value).strftime("%Y-%m-%d")


def lookup(value: Any, *keys: str) -> Any:
    """Walk a path that may be absent; ``None`` where a step is missing."""
    for key in keys:
        if type(value) is not dict:
            return None
        value = value.get(key)
        if value is None:
            return None
    return value


def lookup_defaults(value: Any, steps: tuple[tuple[str, Any], ...]) -> Any:
    """Walk ``(key, schema default)`` steps: an absent step reads as its default, if any."""
    for key, fallback in steps:
        if type(value) is not dict:
            return None
        value = value.get(key)
        if value is None:
            value = fallback
            if value is None:
                return None
    return value


def time_in(instant: Any, values: Any) -> bool:
    """``timestamp in list``: matched as instants, whatever offset each is written with."""
    return any(to_time(value) == instant for value in values)


def default(value: Any, fallback: Any) -> Any:
    """``value ?? fallback``: absent (or null) values read as the fallback."""
    return fallback if value is None else value


def finite(value: Any) -> Any:
    """``value`` if it is a finite number; arithmetic that overflows fails closed."""
    if value - value == 0:  # false for infinity and NaN; always true for integers
        return value
    raise ArithmeticError("arithmetic overflow: the result is not a finite number")


def remainder(a: Any, b: Any) -> Any:
    """Remainder with the sign of the dividend, as in Rego and Go; exact for integers."""
    if b == 0:
        raise ZeroDivisionError("remainder by zero")
    magnitude = abs(a) % abs(b)
    return -magnitude if a < 0 else magnitude


def divide(a: Any, b: Any) -> Any:
    """Quotient; an integer when it is integral and exactly representable (below 2**53)."""
    if b == 0:
        raise ZeroDivisionError("division by zero")
    result = a / b
    if result - result != 0:
        raise ArithmeticError("arithmetic overflow: the result is not a finite number")
    return int(result) if result.is_integer() and abs(result) < 2**53 else result


def starts_with(text: str, prefix: str) -> bool:
    return text.startswith(prefix)


def ends_with(text: str, suffix: str) -> bool:
    return text.endswith(suffix)


def contains(text: str, part: str) -> bool:
    return part in text


def lower(text: str) -> str:
    return text.lower()


def upper(text: str) -> str:
    return text.upper()


def length(value: Any) -> int:
    return len(value)


def total(values: Any) -> Any:
    return sum(values)


def fmt(value: Any) -> str:
    """How a value reads inside a message: integral numbers without ``.0``, lists joined."""
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def duration_text(seconds: Any) -> str:
    """A duration as a message shows it: ``900`` reads ``15m``, ``90000`` reads ``25h``."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{fmt(seconds // size)}{unit}"
    if seconds and abs(seconds) < 1:
        return f"{fmt(seconds * 1000)}ms"
    return f"{fmt(seconds)}s"


class Evidence(list):
    """The comparisons an explained rule made, as ``(index, left, op, right, result)``.

    Filled by generated ``explain_*`` code for conditions with ``or``, ``not`` or
    ``any``/``all`` around comparisons (plain ``and`` chains need no recording).
    """

    __slots__ = ()
    LIMIT = 64  # comparisons inside `any`/`all` repeat per item; keep the record bounded

    def compare(self, index: int, left: Any, op: str, right: Any, as_time: bool = False) -> bool:
        a, b = (to_time(left), to_time(right)) if as_time else (left, right)
        if op == "==":
            result = a == b
        elif op == "!=":
            result = a != b
        elif op == "<":
            result = a < b
        elif op == "<=":
            result = a <= b
        elif op == ">":
            result = a > b
        else:
            result = a >= b
        self._record(index, left, op, right, result)
        return result

    def member(
        self, index: int, item: Any, collection: Any, negated: bool, as_time: bool = False
    ) -> bool:
        found = time_in(to_time(item), collection) if as_time else item in collection
        result = not found if negated else found
        self._record(index, item, "not in" if negated else "in", collection, result)
        return result

    def _record(self, index: int, left: Any, op: str, right: Any, result: bool) -> None:
        if len(self) < self.LIMIT:
            self.append((index, left, op, right, bool(result)))


def unheld(index: int) -> None:
    """A rule held in ``evaluate`` but not when explained: a compiler fault, never ``allow``."""
    raise RuntimeError(f"rule #{index} held but its evidence does not: evaluation stopped")


EXPORTED: dict[str, Any] = {
    "_t": to_time,
    "_get": lookup,
    "_getd": lookup_defaults,
    "_tin": time_in,
    "_evidence": Evidence,
    "_unheld": unheld,
    "_rem": remainder,
    "_div": divide,
    "_fin": finite,
    "_dflt": default,
    "_any": any,
    "_all": all,
}
