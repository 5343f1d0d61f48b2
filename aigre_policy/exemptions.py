"""Exemptions as data: ``exemptions.yaml`` read, checked, and compiled into the rules.

An exemption names a rule, the targets it covers and the instant it expires. It is
compiled into the checked program as one more conjunct of the rule's condition,

    CONDITION and not ((target matches) and context.now < expires) [or ... per exemption]

so every engine that reads the ``CheckedPack`` (native, the reference interpreter, Rego
on any engine, the solver) judges it alike, and ``prove``/``test`` check invariants
with the exemptions in force. Only the gate-attested clock (``context.now``) and
``action.target`` are read: a proposer's ``requested_at`` never revives an exemption.

Targets are exact names or globs where ``*`` stands for any run of characters
(``/`` and ``.`` included, case-sensitive), in the forms the language's string
functions express exactly: ``x*`` (``starts_with``), ``*x`` (``ends_with``), ``*x*``
(``contains``), ``x*y`` (both, and long enough for both) and ``*`` alone (every target).

A rule tagged ``bright-line`` cannot be exempted (E532).

Deferred imports: ``pack`` reads this module's ``exempted`` on every load, so jsonschema
and the type checker, which only reading and checking the file need, load when a pack
compiles, never on a cached start.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from aigre_policy import interpreter, ir
from aigre_policy.diagnostics import Diagnostic, Span, error, warning
from aigre_policy.runtime import to_time
from aigre_policy.types import ObjectType, StringType, TimestampType, Type
from aigre_policy.yamlio import Document, read_document

FILE_NAME = "exemptions.yaml"
NOT_EXEMPTABLE = "bright-line"  # the rule tag an exemption can never lift
WARN_DAYS = 14  # `check` and `ci` warn this many days before an exemption expires
# warnings `check --strict` and `ci` report without failing: housekeeping, and the log of
# a child pack's `disable`
NOTICES = frozenset({"W533", "W534", "W537"})


@dataclass(frozen=True)
class Exemption:
    """One entry of ``exemptions.yaml``; ``span`` is where it is written."""

    id: str
    owner: str
    rule: str
    targets: tuple[str, ...]
    reason: str
    ticket: str
    expires: str
    span: Span
    rule_span: Span | None = None  # where its `rule` is written, for E531 and E532

    @property
    def evidence(self) -> dict[str, Any]:
        """What a verdict's ``exempted`` list says of it."""
        return {
            "exemption": self.id,
            "rule": self.rule,
            "owner": self.owner,
            "ticket": self.ticket,
            "expires": self.expires,
            "reason": self.reason,
        }

    def in_force(self, now: Any) -> bool:
        """Whether it counts at ``now`` (the gate's clock): strictly before it expires."""
        return bool(to_time(now) < to_time(self.expires))

    def covers(self, target: Any) -> bool:
        return isinstance(target, str) and any(target_matches(p, target) for p in self.targets)


def target_matches(pattern: str, target: str) -> bool:
    """Whether ``target`` matches an exemption's target pattern (see the module docstring)."""
    if "*" not in pattern:
        return target == pattern
    if pattern == "*":
        return True
    if pattern.startswith("*") and pattern.endswith("*"):
        return pattern[1:-1] in target
    prefix, suffix = pattern.split("*")
    return (
        len(target) >= len(prefix) + len(suffix)
        and target.startswith(prefix)
        and target.endswith(suffix)
    )


def _schema() -> dict[str, Any]:
    text = resources.files("aigre_policy").joinpath("schemas", "exemptions.schema.json")
    return json.loads(text.read_text())


def read_exemptions(
    root: Path, display: str
) -> tuple[tuple[Exemption, ...], list[Diagnostic], Document | None]:
    """The exemptions of the pack at ``root`` (none when it has no ``exemptions.yaml``)."""
    path = root / FILE_NAME
    if not path.exists():
        return (), [], None
    doc, problems = read_document(path, display)
    if doc is None:
        return (), problems, None
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    for problem in sorted(validator.iter_errors(doc.data), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in problem.path) or FILE_NAME
        message, hint = problem.message, None
        if problem.validator == "pattern" and "targets" in problem.path:
            message = f"`{problem.instance}` is not a target pattern"
            hint = "a target is an exact name or a glob: x*, *x, *x*, x*y or *"
        elif problem.validator == "pattern" and "expires" in problem.path:
            message = f"`{problem.instance}` is not a date-time with an offset"
            hint = "an RFC 3339 date-time with an offset: 2027-01-31T00:00:00Z"
        elif problem.validator == "pattern" and "id" in problem.path:
            hint = "lowercase words joined by hyphens: ledger-migration"
        elif problem.validator == "additionalProperties":
            hint = "an exemption has: id, owner, rule, targets, reason, ticket, expires"
        problems.append(
            error("E530", f"{where}: {message}", doc.span_of(tuple(problem.path)), hint)
        )
    if problems:
        return (), problems, doc
    found: list[Exemption] = []
    seen: set[str] = set()
    for i, item in enumerate(doc.data["exemptions"]):
        span = doc.span_of(("exemptions", i))
        try:
            to_time(item["expires"])
        except ValueError as exc:  # the pattern passed, the calendar did not: 2027-02-30
            problems.append(
                error(
                    "E530",
                    f"exemptions.{i}.expires: {exc}",
                    doc.span_of(("exemptions", i, "expires")),
                )
            )
            continue
        if item["id"] in seen:
            problems.append(
                error(
                    "E530",
                    f"exemptions.{i}.id: exemption `{item['id']}` is declared twice",
                    doc.span_of(("exemptions", i, "id")),
                )
            )
            continue
        seen.add(item["id"])
        found.append(
            Exemption(
                item["id"],
                item["owner"],
                item["rule"],
                tuple(item["targets"]),
                item["reason"],
                item["ticket"],
                item["expires"],
                span,
                doc.span_of(("exemptions", i, "rule")),
            )
        )
    return tuple(found), problems, doc


def inherited(levels: Iterable[Iterable[Exemption]]) -> tuple[Exemption, ...]:
    """The exemptions of a pack and those it extends, given farthest ancestor first: a
    pack's own exemption replaces an inherited one of the same id (to shorten or narrow it)."""
    merged: dict[str, Exemption] = {}
    for level in levels:
        for exemption in level:
            merged.pop(exemption.id, None)  # the replacement goes where its pack lists it
            merged[exemption.id] = exemption
    return tuple(merged.values())


def check_exemptions(
    exemptions: Iterable[Exemption], program: ir.Program, shape: Type
) -> list[Diagnostic]:
    """Unknown rules (E531), rules tagged ``bright-line`` (E532), and an input schema
    without the required ``action.target`` string and ``context.now`` timestamp (E531)."""
    from aigre_policy.typecheck import did_you_mean

    exemptions = tuple(exemptions)
    if not exemptions:
        return []
    problems: list[Diagnostic] = []
    rules = {rule.id: rule for rule in program.rules}
    for exemption in exemptions:
        where = exemption.rule_span or exemption.span
        rule = rules.get(exemption.rule)
        if rule is None:
            problems.append(
                error(
                    "E531",
                    f"exemption `{exemption.id}` names an unknown rule `{exemption.rule}`",
                    where,
                    did_you_mean(exemption.rule, rules) or "it names a rule id of the pack",
                )
            )
        elif NOT_EXEMPTABLE in rule.tags:
            problems.append(
                error(
                    "E532",
                    f"exemption `{exemption.id}` lifts `{rule.id}`, a rule tagged "
                    f"`{NOT_EXEMPTABLE}`: no exemption applies to it",
                    where,
                    "change the rule or its envelope values, with review, instead",
                )
            )
    if not (
        _required(shape, "action", "target", StringType)
        and _required(shape, "context", "now", TimestampType)
    ):
        problems.append(
            error(
                "E531",
                "exemptions read `action.target` and `context.now`: the input schema must "
                "require them, a string and a date-time",
                exemptions[0].span,
            )
        )
    return problems


def _required(shape: Type, root: str, name: str, kind: type) -> bool:
    if not isinstance(shape, ObjectType) or root not in shape.fields:
        return False
    parent = shape.fields[root]
    if not parent.required or not isinstance(parent.type, ObjectType):
        return False
    field = parent.type.fields.get(name)
    return field is not None and field.required and isinstance(field.type, kind)


def apply_exemptions(program: ir.Program, exemptions: Iterable[Exemption]) -> ir.Program:
    """``program`` with each exempted rule's condition guarded by its exemptions."""
    by_rule: dict[str, list[Exemption]] = {}
    for exemption in exemptions:
        by_rule.setdefault(exemption.rule, []).append(exemption)
    if not by_rule:
        return program
    rules = []
    for rule in program.rules:
        mine = by_rule.get(rule.id)
        if not mine or NOT_EXEMPTABLE in rule.tags:
            rules.append(rule)
            continue
        counter = [rule.comparisons]
        guards = [_guard(exemption, counter) for exemption in mine]
        lifted: ir.Node = guards[0]
        for guard in guards[1:]:
            lifted = ir.BoolOp("or", lifted, guard, span=guard.span)
        condition = ir.BoolOp(
            "and", rule.condition, ir.Not(lifted, span=lifted.span), span=rule.condition.span
        )
        rules.append(replace(rule, condition=condition, comparisons=counter[0]))
    return replace(program, rules=tuple(rules))


def exemption_conditions(
    exemptions: Iterable[Exemption], original: dict[str, ir.Node]
) -> list[tuple[Exemption, ir.Node]]:
    """Per exemption that can lift its rule, the condition under which the verdict lists it
    as ``exempted``: the rule's own condition (before exemptions) holds, the target matches
    and the gate's clock is before the expiry. What ``exempted`` evaluates, for an engine
    that evaluates conditions itself (the Rego target)."""
    found: list[tuple[Exemption, ir.Node]] = []
    for exemption in exemptions:
        condition = original.get(exemption.rule)
        if condition is None:  # a rule that takes no exemption (a bright line)
            continue
        guard = _guard(exemption, [0])
        found.append((exemption, ir.BoolOp("and", condition, guard, span=condition.span)))
    return found


def _guard(exemption: Exemption, counter: list[int]) -> ir.Node:
    """``(action.target matches) and context.now < expires`` for one exemption."""
    span = exemption.span
    target = ir.Path("action", ("target",), span=span)
    label = f"exemption {exemption.id} ({exemption.ticket})"

    def compare(op: str, left: ir.Node, right: ir.Node, kind: str, text: str) -> ir.Compare:
        index = counter[0]
        counter[0] += 1
        return ir.Compare(op, left, right, kind, index, f"{label}: {text}", span=span)

    matches: ir.Node | None = None
    for pattern in exemption.targets:
        one = _match(pattern, target, compare, span)
        matches = one if matches is None else ir.BoolOp("or", matches, one, span=span)
    assert matches is not None
    now = ir.Path("context", ("now",), span=span)
    # the language has no timestamp literals: the expiry is an instant, seconds since the
    # epoch, as timestamps computed by arithmetic are (every engine and the solver agree)
    seconds = to_time(exemption.expires)
    instant = int(seconds) if float(seconds).is_integer() else seconds
    expiry = compare(
        "<", now, ir.Const(instant, span=span), "time", f'context.now < "{exemption.expires}"'
    )
    return ir.BoolOp("and", matches, expiry, span=span)


def _match(pattern: str, target: ir.Path, compare: Any, span: Span) -> ir.Node:
    def call(function: str, text: str) -> ir.Node:
        return ir.Call(function, (target, ir.Const(text, span=span)), span=span)

    if "*" not in pattern:
        return compare(
            "==",
            target,
            ir.Const(pattern, span=span),
            "value",
            f"action.target == {json.dumps(pattern)}",
        )
    if pattern == "*":
        return ir.Const(True, span=span)
    if pattern.startswith("*") and pattern.endswith("*"):
        return call("contains", pattern[1:-1])
    prefix, suffix = pattern.split("*")
    if not suffix:
        return call("starts_with", prefix)
    if not prefix:
        return call("ends_with", suffix)
    length = ir.Call("len", (target,), span=span)
    long_enough = compare(
        ">=",
        length,
        ir.Const(len(prefix) + len(suffix), span=span),
        "value",
        f"len(action.target) >= {len(prefix) + len(suffix)}",
    )
    both = ir.BoolOp("and", call("starts_with", prefix), call("ends_with", suffix), span=span)
    return ir.BoolOp("and", long_enough, both, span=span)


def exempted(
    exemptions: Iterable[Exemption],
    original: dict[str, ir.Node],
    envelopes: Any,
    document: dict[str, Any],
) -> list[dict[str, Any]]:
    """The verdict's ``exempted`` list: each exemption in force for this action whose rule's
    own condition (before exemptions) holds, so the exemption is why the rule did not fire.

    Evaluated with the reference interpreter on the input the engine judged; a rule whose
    condition fails here failed the evaluation too, which is then closed already.
    """
    action, context = document.get("action", {}), document.get("context", {})
    found = []
    for exemption in exemptions:
        condition = original.get(exemption.rule)
        try:
            if condition is None or not exemption.covers(action.get("target")):
                continue
            if not exemption.in_force(context.get("now")):
                continue
            if interpreter.evaluate(condition, document, envelopes):
                found.append(exemption.evidence)
        except Exception:  # nothing to add: the verdict failed closed on the same fault
            continue
    return found


def pack_expiry_warnings(report: Any, warn_days: int = WARN_DAYS) -> list[Diagnostic]:
    """``expiry_warnings`` of a compiled pack's exemptions, by the machine's clock now."""
    checked = getattr(report, "checked", None)
    if checked is None or not checked.exemptions:
        return []
    return expiry_warnings(checked.exemptions, datetime.now(UTC), warn_days)


def expiry_warnings(
    exemptions: Iterable[Exemption], today: datetime, warn_days: int = WARN_DAYS
) -> list[Diagnostic]:
    """W533 for an exemption expiring within ``warn_days`` of ``today``, W534 for one expired.

    ``check`` and ``ci`` call this with the machine's clock: housekeeping, never a decision.
    """
    problems = []
    now = today.astimezone(UTC).timestamp()
    soon = (today + timedelta(days=warn_days)).astimezone(UTC).timestamp()
    for exemption in exemptions:
        ends = to_time(exemption.expires)
        if ends <= now:
            problems.append(
                warning(
                    "W534",
                    f"exemption `{exemption.id}` of rule `{exemption.rule}` expired at "
                    f"{exemption.expires}: it no longer counts",
                    exemption.span,
                    f"remove it, or renew it under a new ticket (owner: {exemption.owner})",
                )
            )
        elif ends <= soon:
            days = max(0, int((ends - now) // 86400))
            problems.append(
                warning(
                    "W533",
                    f"exemption `{exemption.id}` of rule `{exemption.rule}` expires at "
                    f"{exemption.expires}, in {days} day{'s' if days != 1 else ''}",
                    exemption.span,
                    f"renew it or let it lapse (owner: {exemption.owner}, ticket: "
                    f"{exemption.ticket})",
                )
            )
    return problems
