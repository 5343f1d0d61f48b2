"""The check of zones and calendar dates, once envelope overrides are applied.

A zone function (``hour_in``, ``weekday_in``, ...) names its zone with a string literal
or an envelope value, so every engine knows the zone when the pack compiles: the Rego
target and the solver carry the zone's table (aigre_policy/zones.py). An unknown zone
is E210. A date a rule compares ``date(...)`` or ``date_in(...)`` with (a literal, or
an envelope list such as a holiday calendar) must be a real ``YYYY-MM-DD`` date, or it
could never match: E211.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

from aigre_policy import ir
from aigre_policy.diagnostics import Diagnostic, error
from aigre_policy.zones import MAX_ZONES, ZONE_FUNCTIONS, is_zone, known_zones

Values = dict[str, dict[str, Any]]
_DATE_FUNCTIONS = ("date", "date_in")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _expressions(program: ir.Program) -> Iterator[ir.Node]:
    for rule in program.rules:
        yield rule.condition
        yield from (part for part in rule.message if not isinstance(part, str))
    yield from (u.filter for u in program.usages if u.filter is not None)
    yield from (u.argument for u in program.usages if u.argument is not None)
    yield from (i.condition for i in program.invariants if i.condition is not None)


def zone_of(node: ir.Node, values: Values) -> Any:
    """The zone a zone function's argument names, as the pack compiles it."""
    if isinstance(node, ir.Const):
        return node.value
    if isinstance(node, ir.EnvelopeRef):
        return values.get(node.envelope, {}).get(node.name)
    return None


def is_date(text: Any) -> bool:
    if type(text) is not str or not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _zone_problems(call: ir.Call, values: Values) -> Iterator[Diagnostic]:
    argument = call.args[1]
    if not isinstance(argument, ir.Const | ir.EnvelopeRef):
        yield error(
            "E210",
            f"the zone of `{call.function}` must be known when the pack compiles",
            argument.span,
            'write a zone name such as "Europe/Berlin", or an envelope value holding one',
        )
        return
    zone = zone_of(argument, values)
    if not is_zone(zone):
        where = (
            f" (envelope value `{argument.envelope}.{argument.name}`)"
            if isinstance(argument, ir.EnvelopeRef)
            else ""
        )
        hint = 'an IANA zone name, such as "Australia/Sydney", "Europe/Berlin" or "UTC"'
        if not known_zones():  # zoneinfo found no database: not the pack's fault
            hint = "this machine has no time zone database: pip install tzdata"
        yield error("E210", f"unknown time zone `{zone}`{where}", argument.span, hint)


def _dates_compared(node: ir.Node) -> ir.Node | None:
    """What ``node`` compares a calendar date with, if it does."""
    match node:
        case ir.Compare(left=ir.Call(function=f), right=other) if f in _DATE_FUNCTIONS:
            return other
        case ir.Compare(left=other, right=ir.Call(function=f)) if f in _DATE_FUNCTIONS:
            return other
        case ir.Member(item=ir.Call(function=f), collection=other) if f in _DATE_FUNCTIONS:
            return other
    return None


def _date_problems(other: ir.Node, values: Values) -> Iterator[Diagnostic]:
    found: list[tuple[Any, str]] = []
    if isinstance(other, ir.Const):
        items = other.value if isinstance(other.value, list) else [other.value]
        found = [(v, "") for v in items]
    elif isinstance(other, ir.ListOf):
        found = [(i.value, "") for i in other.items if isinstance(i, ir.Const)]
    elif isinstance(other, ir.EnvelopeRef):
        held = values.get(other.envelope, {}).get(other.name)
        where = f" in `{other.envelope}.{other.name}`"
        found = [(v, where) for v in (held if isinstance(held, list) else [held])]
    for value, where in found:
        if not is_date(value):
            yield error(
                "E211",
                f"`{value}`{where} is not a calendar date, so it never matches",
                other.span,
                'dates are written "YYYY-MM-DD", a real day: "2025-12-25"',
            )


def check_zones(program: ir.Program, values: Values) -> list[Diagnostic]:
    """E210 and E211 for every use in the pack (rules, messages, usages, invariants)."""
    problems: list[Diagnostic] = []
    named: set[Any] = set()
    for expression in _expressions(program):
        for node in ir.walk(expression):
            if isinstance(node, ir.Call) and node.function in ZONE_FUNCTIONS:
                found = list(_zone_problems(node, values))
                problems += found
                named.add(zone_of(node.args[1], values))
                if not found and len(named) > MAX_ZONES:
                    problems.append(
                        error(
                            "E210",
                            f"a pack names at most {MAX_ZONES} time zones",
                            node.args[1].span,
                            "read the zone from one envelope value per team clock",
                        )
                    )
            other = _dates_compared(node)
            if other is not None:
                problems += _date_problems(other, values)
    return problems
