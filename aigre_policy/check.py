"""Stage 2, check (declarations): envelopes, rules, usages, tests and invariants.

Builds the ``ir.Program`` of a whole pack from its parsed modules and the type
of its input, with every problem as a diagnostic. Expressions are handed to
``typecheck``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from aigre_policy import ir
from aigre_policy import nodes as n
from aigre_policy.diagnostics import Diagnostic, Span, error, warning
from aigre_policy.lattice import RULE_VERDICTS
from aigre_policy.typecheck import (
    CALENDAR_WINDOWS,
    CATEGORIES,
    DECISIONS,
    META_KEYS,
    RESERVED,
    SEVERITIES,
    WORD,
    ExprChecker,
    Scope,
    constant_type,
    did_you_mean,
    present_when,
)
from aigre_policy.types import (
    BoolType,
    DurationType,
    FieldType,
    KeyedType,
    ListType,
    NumberType,
    ObjectType,
    StringType,
    TimestampType,
    Type,
    join,
    same_kind,
)

VERDICTS = RULE_VERDICTS


@dataclass
class CheckResult:
    program: ir.Program
    diagnostics: list[Diagnostic]
    # envelope value -> the enum of the field it is compared with: overrides must fit it
    envelope_enums: dict[str, tuple[str, ...]] = field(default_factory=dict)


def declared_usages(modules: list[n.Module]) -> list[n.Usage]:
    return [d for m in modules for d in m.declarations if isinstance(d, n.Usage)]


def check_pack(
    modules: list[n.Module],
    input_type: ObjectType,
    sources: dict[str, str],
    pack_dir: FsPath | None = None,
    partial: bool = False,
) -> CheckResult:
    """Check every declaration of a pack; ``partial`` when some files did not parse.

    With ``partial`` set, unknown names may be declared in a file that failed,
    so those diagnostics are held back rather than reported twice over.
    """
    diagnostics: list[Diagnostic] = []
    envelopes, envelope_values = _envelopes(modules, diagnostics)
    checker = ExprChecker(input_type, envelopes, sources, diagnostics)
    checker.envelope_values = {
        f"{decl.name}.{item.name}": item.value
        for module in modules
        for decl in module.declarations
        if isinstance(decl, n.Envelope)
        for item in decl.fields
    }
    rules = _rules(modules, checker, diagnostics)
    usages = _usages(modules, checker, diagnostics)
    # every declared rule, checked or not: a rule with a type error is still no unknown rule
    rule_ids = {d.id for m in modules for d in m.declarations if isinstance(d, n.Rule)}
    _tests(modules, checker, input_type, envelopes, rule_ids, pack_dir, diagnostics)
    invariants = _invariants(modules, checker, diagnostics)
    if partial:
        diagnostics = [d for d in diagnostics if d.code not in ("E101", "E103", "E108")]
    program = ir.Program(tuple(rules), envelope_values, tuple(usages), invariants)
    return CheckResult(program, diagnostics, checker.envelope_enums)


# ------------------------------------------------------------------ envelopes


def _envelopes(
    modules: list[n.Module], diagnostics: list[Diagnostic]
) -> tuple[dict[str, ObjectType], dict[str, dict[str, Any]]]:
    types: dict[str, ObjectType] = {}
    values: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, Span] = {}
    for module in modules:
        for decl in module.declarations:
            if not isinstance(decl, n.Envelope):
                continue
            if decl.name in RESERVED:
                diagnostics.append(
                    error(
                        "E107",
                        f"`{decl.name}` is reserved and cannot name an envelope",
                        decl.span,
                        "pick another name",
                    )
                )
                continue
            if decl.name in first_seen:
                diagnostics.append(
                    error(
                        "E106",
                        f"envelope `{decl.name}` is declared twice",
                        decl.span,
                        f"first declared at {first_seen[decl.name]}",
                    )
                )
                continue
            first_seen[decl.name] = decl.span
            fields: dict[str, FieldType] = {}
            data: dict[str, Any] = {}
            for item in decl.fields:
                if item.name in fields:
                    diagnostics.append(
                        error("E106", f"`{decl.name}.{item.name}` is set twice", item.span)
                    )
                    continue
                if isinstance(item.value, n.ObjectConst):  # a value keyed by team, service...
                    keyed = keyed_value(f"{decl.name}.{item.name}", item.value, diagnostics)
                    if keyed is not None:
                        fields[item.name] = FieldType(keyed[0], True)
                        data[item.name] = keyed[1]
                    continue
                typ = constant_type(item.value)
                if typ is None:
                    diagnostics.append(
                        error(
                            "E201",
                            f"`{decl.name}.{item.name}` must be a number, string, boolean, "
                            "duration, or a list of one of those",
                            item.value.span,
                        )
                    )
                    continue
                fields[item.name] = FieldType(typ, True)
                data[item.name] = n.constant_value(item.value)
            types[decl.name] = ObjectType(f"envelope {decl.name}", fields)
            values[decl.name] = data
    return types, values


KEYED_HINT = "write `{ default: 250, by_team: { data: 1000, ml: 5000 } }`"


def keyed_value(
    where: str, value: n.ObjectConst, diagnostics: list[Diagnostic]
) -> tuple[KeyedType, dict[str, Any]] | None:
    """An envelope value keyed by a string: ``{ default: V, by_LABEL: { KEY: V, ... } }``.

    Every value has the default's type (a number, string, boolean or duration), so a
    lookup is typed and total: a key the table does not list reads the default.
    """
    default = next((f for f in value.fields if f.name == "default"), None)
    tables = [f for f in value.fields if f.name != "default"]
    if default is None:
        diagnostics.append(
            error("E208", f"`{where}` is keyed but has no `default`", value.span, KEYED_HINT)
        )
        return None
    typ = constant_type(default.value)
    if not isinstance(typ, NumberType | StringType | BoolType | DurationType):
        diagnostics.append(
            error(
                "E209",
                f"`{where}.default` must be a number, string, boolean or duration",
                default.value.span,
                KEYED_HINT,
            )
        )
        return None
    bad = [
        f for f in tables if not (WORD_KEY.fullmatch(f.name) and isinstance(f.value, n.ObjectConst))
    ]
    if len(tables) != 1 or bad:
        at = (bad or tables or [default])[0]
        diagnostics.append(
            error(
                "E209",
                f"`{where}` holds `default` and one table `by_<what>: {{ key: value, ... }}`",
                at.span,
                KEYED_HINT,
            )
        )
        return None
    (table,) = tables
    assert isinstance(table.value, n.ObjectConst)
    entries: dict[str, Any] = {}
    ok = True
    for entry in table.value.fields:
        entry_type = constant_type(entry.value)
        if entry.name in entries:
            diagnostics.append(error("E106", f"`{where}` sets `{entry.name}` twice", entry.span))
            ok = False
        elif entry_type is None or not same_kind(typ, entry_type):
            diagnostics.append(
                error(
                    "E209",
                    f"`{where}` for `{entry.name}` must have the default's type ({typ})",
                    entry.value.span,
                )
            )
            ok = False
        else:
            typ = join(typ, entry_type)
            entries[entry.name] = n.constant_value(entry.value)
    if not ok:
        return None
    data = {"default": n.constant_value(default.value), table.name: entries}
    return KeyedType(typ, table.name[3:], tuple(entries)), data


WORD_KEY = re.compile(r"by_[a-z][a-z0-9_]*")


# ------------------------------------------------------------------ rules


def _rules(
    modules: list[n.Module], checker: ExprChecker, diagnostics: list[Diagnostic]
) -> list[ir.Rule]:
    rules: list[ir.Rule] = []
    seen: dict[str, Span] = {}
    for module in modules:
        for decl in module.declarations:
            if not isinstance(decl, n.Rule):
                continue
            if decl.id in seen:
                diagnostics.append(
                    error(
                        "E105",
                        f"rule `{decl.id}` is declared twice",
                        decl.id_span,
                        f"first declared at {seen[decl.id]}",
                    )
                )
                continue
            seen[decl.id] = decl.id_span
            rule = _rule(decl, len(rules), checker, diagnostics)
            if rule is not None:
                rules.append(rule)
    return rules


def _rule(
    decl: n.Rule, index: int, checker: ExprChecker, diagnostics: list[Diagnostic]
) -> ir.Rule | None:
    meta = _meta(decl, diagnostics)
    if not decl.verdicts:
        diagnostics.append(
            error(
                "E110",
                f"rule `{decl.id}` has no verdict",
                decl.id_span,
                'add one: `deny when ...`, `require_approval by ["group"] '
                "when ...`, `escalate when ...`, `warn when ...` or "
                "`permit when ...`",
            )
        )
        return None
    for extra in decl.verdicts[1:]:
        diagnostics.append(
            error(
                "E110",
                f"rule `{decl.id}` has more than one verdict",
                extra.span,
                "split it into two rules",
            )
        )
    for again in decl.because[1:]:
        diagnostics.append(
            error("E110", f"rule `{decl.id}` has more than one `because`", again.span)
        )
    clause = decl.verdicts[0]
    if clause.verdict == "require_approval" and not clause.groups:
        diagnostics.append(
            error(
                "E111",
                "`require_approval` needs at least one approver group",
                clause.span,
                'write `require_approval by ["sre-oncall"] when ...`',
            )
        )
    for group in clause.groups:
        if not WORD.fullmatch(group):
            diagnostics.append(
                error(
                    "E111",
                    f"approver group `{group}` is not a lowercase word",
                    clause.span,
                    "groups look like `sre-oncall` or `finops`",
                )
            )
    checker.comparisons = 0
    condition = checker.condition(clause.condition, Scope(), "a rule's condition")
    message = _message(decl.because[0], checker, clause.condition) if decl.because else ()
    if condition is None or message is None:
        return None
    return ir.Rule(
        index=index,
        id=decl.id,
        verdict=clause.verdict,
        groups=clause.groups,
        title=meta.get("title"),  # type: ignore[arg-type]
        category=meta.get("category", "risk"),  # type: ignore[arg-type]
        severity=meta.get("severity", "medium"),  # type: ignore[arg-type]
        tags=meta.get("tags", ()),  # type: ignore[arg-type]
        condition=condition,
        message=message,
        comparisons=checker.comparisons,
        span=decl.id_span,
        description=meta.get("description"),  # type: ignore[arg-type]
        owner=meta.get("owner"),  # type: ignore[arg-type]
    )


def _message(
    message: n.Message, checker: ExprChecker, condition: n.Expr
) -> tuple[str | ir.Node, ...] | None:
    """Messages render only when the rule fired, so they see the guards of its condition."""
    scope = Scope().knowing(present_when(condition, True))
    parts: list[str | ir.Node] = []
    ok = True
    for part in message.parts:
        if isinstance(part, str):
            parts.append(part)
            continue
        node, typ = checker.expr(part, scope)
        if node is None:
            ok = False
        elif isinstance(typ, DurationType):
            parts.append(ir.Call("duration_text", (node,), part.span))  # 900 -> "15m"
        else:
            parts.append(node)
    return tuple(parts) if ok else None


def _meta(decl: n.Rule, diagnostics: list[Diagnostic]) -> dict[str, object]:
    meta: dict[str, object] = {}
    for item in decl.meta:
        if item.key in meta:
            diagnostics.append(error("E109", f"`{item.key}` is set twice", item.span))
            continue
        if item.key not in META_KEYS:
            diagnostics.append(
                error(
                    "E109",
                    f"unknown rule field `{item.key}`",
                    item.span,
                    did_you_mean(item.key, META_KEYS) or "rule fields: " + ", ".join(META_KEYS),
                )
            )
            continue
        checker = _META_CHECKS[item.key]
        problem = checker(item.value)
        if problem:
            diagnostics.append(error("E109", problem[0], item.span, problem[1]))
            continue
        meta[item.key] = item.value
    return meta


def _one_of(
    allowed: tuple[str, ...], key: str, custom: bool = False
) -> Callable[[object], tuple[str, str | None] | None]:
    def check(value: object) -> tuple[str, str | None] | None:
        if isinstance(value, str) and (value in allowed or (custom and WORD.fullmatch(value))):
            return None
        shown = ", ".join(allowed)
        if custom:
            return (
                f"`{key}` must be one of {shown}, or a lowercase word",
                did_you_mean(str(value), allowed),
            )
        return f"`{key}` must be one of {shown}", did_you_mean(str(value), allowed)

    return check


def _text(key: str) -> Callable[[object], tuple[str, str | None] | None]:
    def check(value: object) -> tuple[str, str | None] | None:
        if isinstance(value, str) and value.strip():
            return None
        return f"`{key}` must be a non-empty string", f'write `{key}: "..."`'

    return check


def _tags(value: object) -> tuple[str, str | None] | None:
    if isinstance(value, tuple) and all(isinstance(t, str) and t for t in value):
        return None
    return "`tags` must be a list of strings", 'write `tags: ["prod", "cost"]`'


_META_CHECKS: dict[str, Callable[[object], tuple[str, str | None] | None]] = {
    "title": _text("title"),
    "description": _text("description"),
    "owner": _text("owner"),
    "category": _one_of(CATEGORIES, "category", custom=True),
    "severity": _one_of(SEVERITIES, "severity"),
    "tags": _tags,
}


# ------------------------------------------------------------------ usage


def _usages(
    modules: list[n.Module], checker: ExprChecker, diagnostics: list[Diagnostic]
) -> list[ir.Usage]:
    usages: list[ir.Usage] = []
    seen: dict[str, Span] = {}
    action_only = ObjectType(
        "history", {k: v for k, v in checker.input_type.fields.items() if k == "action"}
    )
    history = ExprChecker(action_only, {}, checker.sources, diagnostics)
    history.extra_roots = {"decision": StringType(DECISIONS)}
    if "action" in action_only.fields:  # the action being checked, for ``where`` matches
        history.extra_roots[CURRENT] = action_only.fields["action"].type
    for module in modules:
        for decl in module.declarations:
            if not isinstance(decl, n.Usage):
                continue
            if decl.name in seen:
                diagnostics.append(
                    error(
                        "E106",
                        f"usage `{decl.name}` is declared twice",
                        decl.span,
                        f"first declared at {seen[decl.name]}",
                    )
                )
                continue
            seen[decl.name] = decl.span
            argument = None
            if decl.aggregate == "count":
                if decl.argument is not None:
                    diagnostics.append(
                        error("E204", "`count()` takes no argument", decl.argument.span)
                    )
            elif decl.argument is None:
                diagnostics.append(
                    error(
                        "E204",
                        f"`{decl.aggregate}` needs a value to add up",
                        decl.span,
                        "write `sum(action.cost.estimated_usd)`",
                    )
                )
            else:
                argument, typ = history.expr(decl.argument, Scope())
                if typ is not None and not isinstance(typ, NumberType):
                    diagnostics.append(
                        error(
                            "E204",
                            f"`{decl.aggregate}` adds up numbers, given a {typ}",
                            decl.argument.span,
                        )
                    )
            if decl.window_seconds is None and decl.window not in CALENDAR_WINDOWS:
                diagnostics.append(
                    error(
                        "E112",
                        f"unknown window `{decl.window}`",
                        decl.span,
                        did_you_mean(decl.window, CALENDAR_WINDOWS)
                        or "windows: " + ", ".join(CALENDAR_WINDOWS) + ", or `last <duration>`",
                    )
                )
            if argument is not None:
                _no_current(argument, "the value a usage adds up", diagnostics)
            flt: ir.Node | None = None
            matches: tuple[tuple[ir.Node, ir.Node], ...] = ()
            if decl.filter is not None:
                flt = history.condition(decl.filter, Scope(), "a usage filter")
                if flt is not None:
                    flt, matches = _usage_matches(flt, diagnostics)
            usages.append(
                ir.Usage(
                    decl.name,
                    decl.aggregate,
                    argument,
                    decl.window,
                    decl.window_seconds,
                    flt,
                    decl.span,
                    matches,
                )
            )
    return usages


CURRENT = "current"  # in a usage filter: the action being checked, not the past one


def _reads_current(node: ir.Node) -> bool:
    return any(isinstance(x, ir.Path) and x.local and x.root == CURRENT for x in ir.walk(node))


def _reads_past(node: ir.Node) -> bool:
    return any(isinstance(x, ir.Path) and x.root != CURRENT for x in ir.walk(node))


def _no_current(node: ir.Node, where: str, diagnostics: list[Diagnostic]) -> None:
    for x in ir.walk(node):
        if isinstance(x, ir.Path) and x.local and x.root == CURRENT:
            diagnostics.append(
                error(
                    "E115",
                    f"`current` is read in {where}: a usage filter reads it only in "
                    "`PAST == current.FIELD` joined to the rest by `and`",
                    x.span,
                    'write, e.g., `where action.kind == "restart" '
                    "and action.target == current.target`",
                )
            )
            return


def _usage_matches(
    flt: ir.Node, diagnostics: list[Diagnostic]
) -> tuple[ir.Node | None, tuple[tuple[ir.Node, ir.Node], ...]]:
    """Split the ``and`` conjuncts ``PAST == CURRENT`` off a usage filter.

    The rest is the row's own filter, computed once when the row is written; each
    pair is compared with the action being checked when usage is read.
    """
    conjuncts: list[ir.Node] = []
    pending = [flt]
    while pending:
        node = pending.pop()
        if isinstance(node, ir.BoolOp) and node.op == "and":
            pending += [node.right, node.left]
        else:
            conjuncts.append(node)
    rest: list[ir.Node] = []
    matches: list[tuple[ir.Node, ir.Node]] = []
    for node in conjuncts:
        if not _reads_current(node):
            rest.append(node)
            continue
        if isinstance(node, ir.Compare) and node.op == "==" and node.kind == "value":
            for past, now in ((node.left, node.right), (node.right, node.left)):
                if _reads_current(now) and not _reads_past(now) and not _reads_current(past):
                    matches.append((past, now))
                    break
            else:
                _no_current(node, "a comparison that is not `PAST == CURRENT`", diagnostics)
            continue
        _no_current(node, "a condition that is not `PAST == CURRENT`", diagnostics)
    kept: ir.Node | None = None
    for node in rest:
        kept = node if kept is None else ir.BoolOp("and", kept, node, node.span)
    return kept, tuple(matches)


USAGE_LIMIT = 1e12  # with two decimals a sum stays within the 15 digits every Rego engine prints


def usage_schema(usages: list[n.Usage]) -> dict[str, Any]:
    """The JSON Schema of the ``usage`` input: one number per declaration, all required.

    Each is bounded by ``USAGE_LIMIT``: a count or a sum of costs past it is no
    real ledger's, and with it a sum of usage and costs never overflows (an
    overflow fails closed, which would make every ``deny`` promise breakable)."""
    names = list(dict.fromkeys(u.name for u in usages))
    bounded = {"type": "number", "minimum": -USAGE_LIMIT, "maximum": USAGE_LIMIT}
    return {
        "type": "object",
        "properties": {name: dict(bounded) for name in names},
        "required": names,
        "additionalProperties": False,
    }


# ------------------------------------------------------------------ tests and invariants


def _tests(
    modules: list[n.Module],
    checker: ExprChecker,
    input_type: ObjectType,
    envelopes: dict[str, ObjectType],
    rule_ids: set[str],
    pack_dir: FsPath | None,
    diagnostics: list[Diagnostic],
) -> None:
    seen: dict[tuple[FsPath | None, str], Span] = {}
    for module in modules:
        # a parent pack's module (`extends:`) reads its files from its own pack, and its
        # tests may be restated under the same name by the child
        home = _pack_of(module, pack_dir)
        for decl in module.declarations:
            if not isinstance(decl, n.Test):
                continue
            if (home, decl.name) in seen:
                diagnostics.append(
                    error(
                        "E106",
                        f'test "{decl.name}" is declared twice',
                        decl.span,
                        f"first declared at {seen[home, decl.name]}",
                    )
                )
            seen.setdefault((home, decl.name), decl.span)
            roots: set[str] = set()
            for given in decl.inputs:
                if given.root in roots:
                    diagnostics.append(
                        error("E113", f"the test gives `{given.root}` twice", given.span)
                    )
                roots.add(given.root)
                root_field = input_type.fields.get(given.root)
                if given.value is not None and root_field is not None:
                    _check_value(given.value, root_field.type, given.root, diagnostics)
                missing = (
                    given.from_file is not None
                    and home is not None
                    and not (home / given.from_file).is_file()
                )
                if missing:
                    diagnostics.append(
                        error(
                            "E113",
                            f"test input file `{given.from_file}` not found",
                            given.span,
                            f"paths are relative to the pack directory {home}",
                        )
                    )
            for override in decl.overrides:
                env = envelopes.get(override.envelope)
                if env is None:
                    diagnostics.append(
                        error(
                            "E103",
                            f"unknown envelope `{override.envelope}`",
                            override.span,
                            did_you_mean(override.envelope, envelopes),
                        )
                    )
                    continue
                current = env.fields.get(override.name)
                if current is None:
                    diagnostics.append(
                        error(
                            "E103",
                            f"envelope `{override.envelope}` has no value `{override.name}`",
                            override.span,
                            did_you_mean(override.name, env.fields),
                        )
                    )
                    continue
                where = f"{override.envelope}.{override.name}"
                if isinstance(current.type, KeyedType) and isinstance(
                    override.value, n.ObjectConst
                ):  # a whole table in its place: the same `by_<what>` and value type
                    keyed = keyed_value(where, override.value, diagnostics)
                    if keyed is not None and (
                        keyed[0].label != current.type.label
                        or not same_kind(keyed[0].value, current.type.value)
                    ):
                        diagnostics.append(
                            error(
                                "E201",
                                f"`{where}` is a {current.type}, given a {keyed[0]}",
                                override.value.span,
                            )
                        )
                    continue
                typ = constant_type(override.value)
                if typ is None or not same_kind(typ, current.type):
                    diagnostics.append(
                        error(
                            "E201",
                            f"`{override.envelope}.{override.name}` is a {current.type}, "
                            f"given {typ or 'an object'}",
                            override.value.span,
                        )
                    )
            for expectation in decl.expectations:
                named = (*expectation.rules, *expectation.silent)
                for rule_id, span in zip(named, expectation.rule_spans, strict=False):
                    if rule_id not in rule_ids:
                        diagnostics.append(
                            error(
                                "E108",
                                f"unknown rule `{rule_id}`",
                                span,
                                did_you_mean(rule_id, rule_ids),
                            )
                        )
                if expectation.evidence is not None:
                    root = expectation.evidence[0].split(".", 1)[0]
                    if root not in input_type.fields and root not in envelopes:
                        diagnostics.append(
                            error(
                                "E101",
                                f"unknown name `{root}` in an evidence expectation",
                                expectation.span,
                                "evidence paths start with action, context, usage or an envelope",
                            )
                        )
            if not decl.expectations:
                diagnostics.append(
                    warning(
                        "W114",
                        f'test "{decl.name}" expects nothing',
                        decl.span,
                        "add `expect allow` or the like",
                    )
                )


def _pack_of(module: n.Module, pack_dir: FsPath | None) -> FsPath | None:
    """The pack a module belongs to: ``pack_dir``, or a parent pack (``extends:``) whose
    ``policies/`` holds it."""
    folder = FsPath(module.file).parent
    if pack_dir is None or folder.name != "policies" or folder.parent == pack_dir:
        return pack_dir
    return folder.parent if (folder.parent / "pack.yaml").is_file() else pack_dir


def _check_value(node: n.Constant, typ: Type, where: str, diagnostics: list[Diagnostic]) -> None:
    """A test's inline input against the schema's type: field names, kinds, enum values."""
    if isinstance(node, n.ObjectConst):
        if not isinstance(typ, ObjectType):
            diagnostics.append(error("E201", f"`{where}` is a {typ}, given an object", node.span))
            return
        for item in node.fields:
            sub = typ.fields.get(item.name)
            if sub is None:
                diagnostics.append(
                    error(
                        "E102",
                        f"`{where}` has no field `{item.name}`",
                        item.span,
                        did_you_mean(item.name, typ.fields),
                    )
                )
                continue
            _check_value(item.value, sub.type, f"{where}.{item.name}", diagnostics)
        return
    if isinstance(node, n.ListExpr):
        if not isinstance(typ, ListType):
            diagnostics.append(error("E201", f"`{where}` is a {typ}, given a list", node.span))
            return
        for i, element in enumerate(node.items):
            _check_value(element, typ.item, f"{where}[{i}]", diagnostics)  # type: ignore[arg-type]
        return
    value = node.value
    ok = {
        NumberType: isinstance(value, int | float) and not isinstance(value, bool),
        StringType: isinstance(value, str),
        TimestampType: isinstance(value, str),
        BoolType: isinstance(value, bool),
        DurationType: node.is_duration,
    }.get(type(typ), False)
    if not ok:
        diagnostics.append(error("E201", f"`{where}` is a {typ}, given {value!r}", node.span))
    elif isinstance(typ, StringType) and typ.enum is not None and value not in typ.enum:
        diagnostics.append(
            error(
                "E202",
                f"'{value}' is never a value of `{where}`",
                node.span,
                (did_you_mean(value, typ.enum) or "").replace("`", "'")
                or "one of " + ", ".join(typ.enum),
            )
        )


def _invariants(
    modules: list[n.Module], checker: ExprChecker, diagnostics: list[Diagnostic]
) -> tuple[ir.Invariant, ...]:
    invariants: list[ir.Invariant] = []
    for module in modules:
        for decl in module.declarations:
            if not isinstance(decl, n.Invariant):
                continue
            condition = None
            if decl.condition is not None:
                checker.comparisons = 0
                condition = checker.condition(decl.condition, Scope(), "an invariant's condition")
                if condition is None:
                    continue
            invariants.append(
                ir.Invariant(decl.name, condition, decl.relation, decl.decision, decl.span)
            )
    return tuple(invariants)
