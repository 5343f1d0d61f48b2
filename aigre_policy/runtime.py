"""The only names generated evaluator code may use.

``EXPORTED``, with the language's functions (``functions.NATIVE``, ``f_<name>``),
is the whole namespace a compiled pack runs in: no builtins beyond these, so
generated code can reach nothing else. Every function here is total
on the values the input schema admits, or raises, which the caller turns into
a fail-closed verdict.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aigre_policy import zones

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


def local_time(value: Any, zone: str) -> float:
    """Seconds since the epoch on the zone's wall clock: the instant plus its UTC offset."""
    seconds = to_time(value)
    return seconds + zones.offset(zone, seconds)


# A wall clock is read with calendar arithmetic, as the Rego library reads it, not with
# datetime: near the ends of year 1 and 9999 a zone's clock passes the range datetime
# holds, and reading it must not fail where the instant itself is valid.
def _day(seconds: float) -> int:
    return math.floor(seconds / 86400)


def hour_in(value: Any, zone: str) -> int:
    seconds = local_time(value, zone)
    return math.floor((seconds - _day(seconds) * 86400) / 3600)


def minute_in(value: Any, zone: str) -> int:
    seconds = local_time(value, zone)
    minutes = math.floor((seconds - _day(seconds) * 86400) / 60)
    return minutes - math.floor(minutes / 60) * 60


def weekday_in(value: Any, zone: str) -> str:
    days = _day(local_time(value, zone)) + 3  # 1970-01-01 was a Thursday
    return WEEKDAY_NAMES[days - math.floor(days / 7) * 7]


def date_in(value: Any, zone: str) -> str:
    return civil_date(local_time(value, zone))


def civil_date(seconds: float) -> str:
    """``YYYY-MM-DD`` of the day holding ``seconds``, for any year (H. Hinnant's
    civil_from_days, the proleptic Gregorian calendar; years print as ``%d``, as
    ``date`` and the Rego library print them)."""
    z = _day(seconds) + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = (mp + 2) % 12 + 1
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return f"{year}-{month:02d}-{day:02d}"


def lookup(value: Any, *keys: str) -> Any:
    """Walk a path that may be absent; ``None`` where a step is missing."""
    for key in keys:
        if type(value) is not dict:
            return None
        value = value.get(key)
        if value is None:
            return None
    return value


def is_object(value: Any) -> bool:
    """Whether ``value`` is a JSON object: generated code may not name ``type``."""
    return type(value) is dict


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
    "_isdict": is_object,
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
