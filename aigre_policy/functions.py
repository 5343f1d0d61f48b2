"""The language's functions: one table the checker and every backend read.

Each ``Function`` holds what the checker types a call by (argument kinds, result),
the name and callable of the native runtime (generated code calls ``f_<name>``),
the callable the reference interpreter applies, and the Rego the target emits.
A function that is in no row cannot be checked, generated or translated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aigre_policy import runtime
from aigre_policy.types import BOOL, NUMBER, STRING, WEEKDAYS, NumberType, StringType, Type


@dataclass(frozen=True)
class Function:
    name: str
    # argument kinds (matched by typecheck's ``_arg_ok``); None: the checker inserts
    # the call itself (around durations in messages) and policy text cannot name it
    params: tuple[str, ...] | None
    result: Type | None
    native: Callable[..., Any]  # what generated code calls as ``f_<name>``
    interpret: Callable[..., Any]  # what the reference interpreter applies
    rego: str  # the Rego builtin or ``lib`` function the target calls

    @property
    def runtime_name(self) -> str:
        return f"f_{self.name}"


_HOUR = NumberType(integer=True, minimum=0, maximum=23)
_MINUTE = NumberType(integer=True, minimum=0, maximum=59)

TABLE: tuple[Function, ...] = (
    Function("len", ("list|string",), NumberType(integer=True), runtime.length, len, "count"),
    Function("lower", ("string",), STRING, runtime.lower, str.lower, "lower"),
    Function("upper", ("string",), STRING, runtime.upper, str.upper, "upper"),
    Function(
        "starts_with",
        ("string", "string"),
        BOOL,
        runtime.starts_with,
        lambda text, prefix: text[: len(prefix)] == prefix,
        "startswith",
    ),
    Function(
        "ends_with",
        ("string", "string"),
        BOOL,
        runtime.ends_with,
        lambda text, suffix: text[len(text) - len(suffix) :] == suffix,
        "endswith",
    ),
    Function(
        "contains",
        ("string", "string"),
        BOOL,
        runtime.contains,
        lambda text, part: part in text,
        "contains",
    ),
    Function("sum", ("list of number",), NUMBER, runtime.total, sum, "sum"),
    Function("hour", ("timestamp",), _HOUR, runtime.hour, runtime.hour, "lib.hour"),
    Function("minute", ("timestamp",), _MINUTE, runtime.minute, runtime.minute, "lib.minute"),
    Function(
        "weekday",
        ("timestamp",),
        StringType(WEEKDAYS),
        runtime.weekday,
        runtime.weekday,
        "lib.weekday",
    ),
    Function("date", ("timestamp",), STRING, runtime.date, runtime.date, "lib.date"),
    # on a zone's wall clock; the zone is a literal or an envelope value (aigre_policy/zones.py)
    Function(
        "hour_in", ("timestamp", "string"), _HOUR, runtime.hour_in, runtime.hour_in, "lib.hour_in"
    ),
    Function(
        "minute_in",
        ("timestamp", "string"),
        _MINUTE,
        runtime.minute_in,
        runtime.minute_in,
        "lib.minute_in",
    ),
    Function(
        "weekday_in",
        ("timestamp", "string"),
        StringType(WEEKDAYS),
        runtime.weekday_in,
        runtime.weekday_in,
        "lib.weekday_in",
    ),
    Function(
        "date_in", ("timestamp", "string"), STRING, runtime.date_in, runtime.date_in, "lib.date_in"
    ),
    # typed by the checker itself (a keyed envelope value and a string key)
    Function("lookup", None, None, runtime.keyed, runtime.keyed, "lib.lookup"),
    Function(
        "duration_text",
        None,
        None,
        runtime.duration_text,
        runtime.duration_text,
        "lib.duration_text",
    ),
)

BY_NAME = {function.name: function for function in TABLE}
# what generated code may call, by the name it calls it
NATIVE = {function.runtime_name: function.native for function in TABLE}
