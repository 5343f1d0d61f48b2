"""Stage 2, check (expressions): resolve names and types against the schema, lower to IR.

One pass over the AST does both: every name is resolved (input path, envelope,
quantifier variable), every expression typed, every read of an optional field
proven safe by a default (``??``) or a guard (``has``), and the IR built as it
goes. Problems are collected as diagnostics; an ill-typed subexpression yields
``None`` so one mistake is reported once, not at every use.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aigre_policy import functions, ir
from aigre_policy import nodes as n
from aigre_policy.diagnostics import Diagnostic, Span, error, warning
from aigre_policy.types import (
    BOOL,
    DECISIONS,
    DURATION,
    NUMBER,
    STRING,
    TIMESTAMP,
    BoolType,
    DurationType,
    FieldType,
    KeyedType,
    ListType,
    NeverType,
    NumberType,
    ObjectType,
    StringType,
    TimestampType,
    Type,
    UnsupportedType,
    join,
    same_kind,
)

INPUT_ROOTS = ("action", "context", "usage")
RESERVED = (*INPUT_ROOTS, "decision", "input", "data")
CATEGORIES = ("risk", "cost", "compliance", "reliability")
SEVERITIES = ("low", "medium", "high", "critical")
META_KEYS = ("title", "category", "severity", "tags", "description", "owner")
CALENDAR_WINDOWS = ("calendar_day", "calendar_week", "calendar_month")
WORD = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")

# name -> (argument kinds, result); kinds are matched by ``_arg_ok``.
FUNCTIONS: dict[str, tuple[tuple[str, ...], Type]] = {
    f.name: (f.params, f.result)
    for f in functions.TABLE
    if f.params is not None and f.result is not None
}


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


@dataclass(frozen=True)
class Scope:
    """What an expression may see: quantifier variables and paths known present."""

    locals: dict[str, Type] = field(default_factory=dict)
    facts: frozenset[str] = frozenset()

    def knowing(self, facts: Iterable[str]) -> Scope:
        return Scope(self.locals, self.facts | frozenset(facts))


class ExprChecker:
    """Types and lowers expressions; one per pack, a fresh comparison counter per rule."""

    def __init__(
        self,
        input_type: ObjectType,
        envelopes: dict[str, ObjectType],
        sources: dict[str, str],
        diagnostics: list[Diagnostic],
    ):
        self.input_type = input_type
        self.envelopes = envelopes
        self.sources = sources
        self.diagnostics = diagnostics
        self.comparisons = 0
        self.extra_roots: dict[str, Type] = {}
        self.reading_table = False  # the first argument of `lookup`: a keyed value may stand
        self.envelope_values: dict[str, n.Constant] = {}  # "cost.max" -> its constant, for enums
        # "autonomy.llm_may" -> the enum of the values it is compared with (for overrides)
        self.envelope_enums: dict[str, tuple[str, ...]] = {}
        self._lines: dict[str, list[str]] = {}  # file -> its lines, split once per check

    # ------------------------------------------------------------ helpers
    def err(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(error(code, message, span, hint))

    def source_text(self, span: Span) -> str:
        """The text ``span`` covers, its lines joined by a space (quoted in evidence)."""
        lines = self._lines.get(span.file)
        if lines is None:  # split each file once, not once per comparison
            lines = self._lines[span.file] = self.sources.get(span.file, "").split("\n")
        if not (1 <= span.line <= len(lines)):
            return ""
        if span.line == span.end_line:
            return lines[span.line - 1][span.column - 1 : span.end_column - 1]
        chunk = [lines[span.line - 1][span.column - 1 :]]
        chunk += lines[span.line : span.end_line - 1]
        chunk.append(lines[span.end_line - 1][: span.end_column - 1])
        return " ".join(part.strip() for part in chunk)

    def next_index(self) -> int:
        self.comparisons += 1
        return self.comparisons - 1

    # ------------------------------------------------------------ conditions
    def condition(self, expr: n.Expr, scope: Scope, what: str) -> ir.Node | None:
        node, typ = self.expr(expr, scope)
        if typ is not None and not isinstance(typ, BoolType):
            self.err(
                "E203",
                f"{what} must be a boolean, found {typ}",
                expr.span,
                "compare it with something, e.g. `x == ...` or `x > ...`",
            )
            return None
        return node

    # ------------------------------------------------------------ expressions
    def expr(self, expr: n.Expr, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        match expr:
            case n.Literal(value=value, is_duration=is_duration):
                return ir.Const(value, expr.span), _literal_type(value, is_duration)
            case n.ListExpr(items=items):
                return self.list_expr(expr, items, scope)
            case n.Name() | n.Field():
                return self.path(expr, scope, allow_optional=False) or (None, None)
            case n.Unary(op="not", operand=operand):
                node = self.condition(operand, scope, "the operand of `not`")
                return (None if node is None else ir.Not(node, expr.span)), BOOL
            case n.Unary(op="-", operand=operand):
                node, typ = self.expr(operand, scope)
                if typ is None:
                    return None, None
                if not isinstance(typ, NumberType | DurationType):
                    self.err("E201", f"cannot negate a {typ}", expr.span)
                    return None, None
                return ir.Neg(node, expr.span), typ  # type: ignore[arg-type]
            case n.Binary(op="and" | "or"):
                return self.bool_op(expr, scope)
            case n.Binary(op="in" | "not in"):
                return self.member(expr, scope)
            case n.Binary(op="==" | "!=" | "<" | "<=" | ">" | ">="):
                return self.compare(expr, scope)
            case n.Binary():
                return self.arith(expr, scope)
            case n.Default():
                return self.default(expr, scope)
            case n.Has(path=path):
                target = self.path(path, scope, allow_optional=True)
                if target is None:
                    return None, BOOL
                node, _ = target
                if isinstance(node, ir.EnvelopeRef):
                    self.err(
                        "E206",
                        "`has` tests an input field; envelope values are always present",
                        expr.span,
                    )
                    return None, BOOL
                if not node.optional:
                    why = (
                        "absent, it reads as its schema default"
                        if node.defaults
                        else "the field is required or already known present"
                    )
                    self.diagnostics.append(
                        warning("W303", f"`has {node.dotted}` is always true: {why}", expr.span)
                    )
                return ir.Has(node, expr.span), BOOL
            case n.Call():
                return self.call(expr, scope)
            case n.Quantifier():
                return self.quantifier(expr, scope)
        raise AssertionError(f"unknown node {expr!r}")  # pragma: no cover - parser makes no others

    def list_expr(
        self, expr: n.ListExpr, items: tuple[n.Expr, ...], scope: Scope
    ) -> tuple[ir.Node | None, Type | None]:
        nodes: list[ir.Node] = []
        item_type: Type = NeverType()
        ok = True
        for item in items:
            node, typ = self.expr(item, scope)
            if node is None or typ is None:
                ok = False
                continue
            if not same_kind(item_type, typ):
                self.err(
                    "E201",
                    f"list mixes {item_type} and {typ}",
                    item.span,
                    "a list holds values of one type",
                )
                ok = False
                continue
            item_type = join(item_type, typ)
            nodes.append(node)
        if not ok:
            return None, None
        return ir.ListOf(tuple(nodes), expr.span), ListType(item_type)

    def bool_op(self, expr: n.Binary, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        left = self.condition(expr.left, scope, f"the left side of `{expr.op}`")
        known = present_when(expr.left, expr.op == "and")
        right = self.condition(expr.right, scope.knowing(known), f"the right side of `{expr.op}`")
        if left is None or right is None:
            return None, BOOL
        return ir.BoolOp(expr.op, left, right, expr.span), BOOL

    def operands(self, expr: n.Binary, scope: Scope) -> tuple[ir.Node, Type, ir.Node, Type] | None:
        """Both sides of a binary expression, typed; ``None`` when either is ill-typed."""
        left, lt = self.expr(expr.left, scope)
        right, rt = self.expr(expr.right, scope)
        if left is None or right is None or lt is None or rt is None:
            return None
        return left, lt, right, rt

    def compare(self, expr: n.Binary, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        operands = self.operands(expr, scope)
        if operands is None:
            return None, BOOL
        left, lt, right, rt = operands
        if not same_kind(lt, rt):
            hint = None
            if {type(lt), type(rt)} == {DurationType, NumberType}:
                hint = "durations are written with a unit: `15m`, `2h`, `7d`"
            elif isinstance(lt, TimestampType) or isinstance(rt, TimestampType):
                hint = "timestamps compare with timestamps; subtract two to get a duration"
            self.err("E201", f"cannot compare {lt} with {rt}", expr.span, hint)
            return None, BOOL
        ordered = isinstance(lt, NumberType | DurationType | TimestampType | NeverType)
        if expr.op not in ("==", "!=") and not ordered:
            self.err(
                "E201",
                f"`{expr.op}` orders numbers, durations or timestamps, not {lt}",
                expr.span,
                "use `==`, `!=` or `in` for strings and booleans",
            )
            return None, BOOL
        self.check_enum(lt, expr.right)
        self.check_enum(rt, expr.left)
        kind = "time" if isinstance(lt, TimestampType) else "value"
        return (
            ir.Compare(
                expr.op,
                left,
                right,
                kind,
                self.next_index(),
                self.source_text(expr.span),
                expr.span,
            ),
            BOOL,
        )

    def check_enum(self, typ: Type, other: n.Expr) -> None:
        """A string literal compared with an enum-typed value must be one of its values."""
        if not (isinstance(typ, StringType) and typ.enum is not None):
            return
        dotted = _envelope_dotted(other, self.envelopes)
        if dotted is not None:  # overrides of this envelope value must fit the enum too
            self.envelope_enums.setdefault(dotted, typ.enum)
        compared = (  # an envelope's values must fit the enum too
            self.envelope_values[dotted]
            if dotted is not None and dotted in self.envelope_values
            else other
        )
        literals = compared.items if isinstance(compared, n.ListExpr) else (compared,)
        for lit in literals:
            if (
                isinstance(lit, n.Literal)
                and isinstance(lit.value, str)
                and lit.value not in typ.enum
            ):
                hint = did_you_mean(lit.value, typ.enum)
                if hint:
                    hint = hint.replace("`", "'")
                else:
                    hint = "one of " + ", ".join(f"'{v}'" for v in typ.enum)
                self.err(
                    "E202",
                    f"'{lit.value}' is never a value here: the schema allows {typ}",
                    lit.span,
                    hint,
                )

    def member(self, expr: n.Binary, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        operands = self.operands(expr, scope)
        if operands is None:
            return None, BOOL
        item, it, coll, ct = operands
        if not isinstance(ct, ListType):
            hint = "use `contains(text, part)` for text" if isinstance(ct, StringType) else None
            self.err(
                "E201",
                f"the right side of `{expr.op}` must be a list, found {ct}",
                expr.right.span,
                hint,
            )
            return None, BOOL
        if not same_kind(it, ct.item):
            self.err("E201", f"cannot look for a {it} in a {ct}", expr.span)
            return None, BOOL
        self.check_enum(it, expr.right)
        if isinstance(ct.item, StringType):
            self.check_enum(ct.item, expr.left)
        return (
            ir.Member(
                expr.op == "not in",
                item,
                coll,
                self.next_index(),
                self.source_text(expr.span),
                expr.span,
                kind="time" if isinstance(it, TimestampType) else "value",
            ),
            BOOL,
        )

    def arith(self, expr: n.Binary, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        operands = self.operands(expr, scope)
        if operands is None:
            return None, None
        left, lt, right, rt = operands
        result = _arith_type(expr.op, lt, rt)
        if result is None:
            self.err("E201", f"cannot apply `{expr.op}` to {lt} and {rt}", expr.span)
            return None, None
        kind = f"{_kind(lt)}{expr.op}{_kind(rt)}"
        return ir.Arith(expr.op, left, right, kind, expr.span), result

    def default(self, expr: n.Default, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        if not isinstance(expr.value, n.Name | n.Field):
            self.err(
                "E206",
                "`??` needs a field path on its left",
                expr.value.span,
                "write `action.field ?? fallback`",
            )
            return None, None
        target = self.path(expr.value, scope, allow_optional=True)
        fallback, ft = self.expr(expr.fallback, scope)
        if target is None or fallback is None or ft is None:
            return None, None
        node, typ = target
        if isinstance(node, ir.EnvelopeRef):
            self.diagnostics.append(
                warning(
                    "W302", f"the default is never used: `{node.dotted}` is always set", expr.span
                )
            )
            return node, typ
        if not same_kind(typ, ft):
            self.err(
                "E201", f"the default is a {ft} but `{node.dotted}` is a {typ}", expr.fallback.span
            )
            return None, None
        self.check_enum(typ, expr.fallback)
        if not node.optional:
            if not node.defaults:
                self.diagnostics.append(
                    warning(
                        "W302",
                        f"the default is never used: `{node.dotted}` is required "
                        "or already known present",
                        expr.span,
                    )
                )
            return ir.Default(node, fallback, expr.span), typ
        return ir.Default(node, fallback, expr.span), join(typ, ft)

    def call(self, expr: n.Call, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        if expr.function == "lookup":
            return self.lookup(expr, scope)
        signature = FUNCTIONS.get(expr.function)
        if signature is None:
            self.err(
                "E104",
                f"unknown function `{expr.function}`",
                expr.span,
                did_you_mean(expr.function, FUNCTIONS)
                or "functions: " + ", ".join(sorted(FUNCTIONS)),
            )
            return None, None
        params, result = signature
        if len(expr.args) != len(params):
            self.err(
                "E204",
                f"`{expr.function}` takes {len(params)} argument"
                f"{'s' if len(params) != 1 else ''}, given {len(expr.args)}",
                expr.span,
            )
            return None, None
        args: list[ir.Node] = []
        ok = True
        for arg, param in zip(expr.args, params, strict=True):
            node, typ = self.expr(arg, scope)
            if node is None or typ is None:
                ok = False
                continue
            if not _arg_ok(param, typ):
                self.err("E204", f"`{expr.function}` expects a {param}, given a {typ}", arg.span)
                ok = False
            args.append(node)
        if not ok:
            return None, None
        return ir.Call(expr.function, tuple(args), expr.span), result

    def lookup(self, expr: n.Call, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        """``lookup(envelope.name, key)``: a keyed envelope value for a string key."""
        if len(expr.args) != 2:
            self.err(
                "E204",
                f"`lookup` takes 2 arguments, given {len(expr.args)}",
                expr.span,
                "write `lookup(cost.max_action_usd, action.team)`",
            )
            return None, None
        table, key = expr.args
        self.reading_table = True
        try:
            table_node, table_type = self.expr(table, scope)
        finally:
            self.reading_table = False
        key_node, key_type = self.expr(key, scope)
        if table_node is None or key_node is None or table_type is None or key_type is None:
            return None, None
        if not (isinstance(table_node, ir.EnvelopeRef) and isinstance(table_type, KeyedType)):
            self.err(
                "E204",
                f"`lookup` reads a keyed envelope value, given a {table_type}",
                table.span,
                "key it in its envelope: `max_action_usd: { default: 250, by_team: { ml: 5000 } }`",
            )
            return None, None
        if not isinstance(key_type, StringType):
            self.err("E204", f"`lookup` takes a string key, given a {key_type}", key.span)
            return None, None
        if key_type.enum is not None:  # a key the input can never hold is a typo
            self.envelope_enums.setdefault(f"{table_node.dotted}#keys", key_type.enum)
            for name in table_type.keys:
                if name not in key_type.enum:
                    self.err(
                        "E202",
                        f"`{table_node.dotted}` is keyed by `{name}`, "
                        f"which `{self.source_text(key.span)}` never holds",
                        table.span,
                        did_you_mean(name, key_type.enum) or "values: " + ", ".join(key_type.enum),
                    )
                    return None, None
        return ir.Call("lookup", (table_node, key_node), expr.span), table_type.value

    def quantifier(self, expr: n.Quantifier, scope: Scope) -> tuple[ir.Node | None, Type | None]:
        items, typ = self.expr(expr.items, scope)
        if items is None or typ is None:
            return None, BOOL
        if not isinstance(typ, ListType):
            self.err("E201", f"`{expr.kind}` ranges over a list, found {typ}", expr.items.span)
            return None, BOOL
        if expr.var in scope.locals or expr.var in RESERVED or expr.var in self.envelopes:
            self.err(
                "E107",
                f"`{expr.var}` is already a name here",
                expr.span,
                "pick another name for the item",
            )
            return None, BOOL
        inner = Scope({**scope.locals, expr.var: typ.item}, scope.facts)
        body = self.condition(expr.body, inner, f"the body of `{expr.kind}`")
        if body is None:
            return None, BOOL
        return ir.Quantifier(expr.kind, expr.var, items, body, expr.span), BOOL

    # ------------------------------------------------------------ paths
    def path(
        self, expr: n.Expr, scope: Scope, allow_optional: bool
    ) -> tuple[ir.Path | ir.EnvelopeRef, Type] | None:
        steps: list[tuple[str, Span]] = []
        base = expr
        while isinstance(base, n.Field):
            steps.append((base.name, base.span))
            base = base.subject
        steps.reverse()
        if not isinstance(base, n.Name):
            self.err(
                "E205", "fields can only be read from input, envelope or item names", expr.span
            )
            return None
        root = base.name
        if root in scope.locals or root in self.extra_roots:
            typ: Type = scope.locals.get(root) or self.extra_roots[root]
            local = True
        elif root in INPUT_ROOTS:
            if root not in self.input_type.fields:
                self.err("E101", f"the input has no `{root}`", base.span)
                return None
            typ = self.input_type.fields[root].type
            local = False
        elif root in self.envelopes:
            found = self.envelope_ref(root, steps, expr.span)
            if found is not None and isinstance(found[1], KeyedType) and not self.reading_table:
                self.err(
                    "E201",
                    f"`{found[0].dotted}` is keyed by {found[1].label}: it is read with a key",
                    expr.span,
                    f"write `lookup({found[0].dotted}, <{found[1].label}>)`",
                )
                return None
            return found
        else:
            names = [*INPUT_ROOTS, *self.envelopes, *scope.locals, *self.extra_roots]
            self.err(
                "E101",
                f"unknown name `{root}`",
                base.span,
                did_you_mean(root, names)
                or "names are `action`, `context`, `usage`, envelopes and `any`/`all` items",
            )
            return None
        optional: list[int] = []
        guarded: list[int] = []
        defaults: list[tuple[int, Any]] = []
        walked = root
        for i, (step, span) in enumerate(steps):
            if isinstance(typ, UnsupportedType):
                self.err("E207", f"`{walked}` cannot be read: {typ.reason}", span)
                return None
            if not isinstance(typ, ObjectType):
                self.err("E205", f"`{walked}` is a {typ} and has no field `{step}`", span)
                return None
            field_type: FieldType | None = typ.fields.get(step)
            if field_type is None:
                hint = did_you_mean(step, typ.fields)
                if hint is None and root == "usage":
                    hint = f"declare it: `usage {step} = ...`"
                elif hint is None and typ.fields:
                    hint = "fields: " + ", ".join(sorted(typ.fields)[:12])
                self.err("E102", f"`{walked}` has no field `{step}`", span, hint)
                return None
            walked = f"{walked}.{step}"
            if field_type.required:
                pass
            elif field_type.default:  # absent reads as the default, guarded or not
                defaults.append((i, field_type.default[0]))
            elif walked in scope.facts:
                guarded.append(i)
            else:
                optional.append(i)
            typ = field_type.type
        if isinstance(typ, UnsupportedType):
            self.err("E207", f"`{walked}` cannot be read: {typ.reason}", expr.span)
            return None
        node = ir.Path(
            root,
            tuple(s for s, _ in steps),
            tuple(optional),
            local,
            tuple(guarded),
            tuple(defaults),
            expr.span,
        )
        if optional and not allow_optional:
            first = ".".join([root, *[s for s, _ in steps][: optional[0] + 1]])
            self.err(
                "E301",
                f"`{first}` is optional and may be absent",
                expr.span,
                f"give a default: `{walked} ?? <value>`, or guard it: `has {walked} and ...`",
            )
            return None
        return node, typ

    def envelope_ref(
        self, root: str, steps: list[tuple[str, Span]], span: Span
    ) -> tuple[ir.EnvelopeRef, Type] | None:
        envelope = self.envelopes[root]
        if len(steps) != 1:
            self.err(
                "E103",
                f"read an envelope value as `{root}.<name>`",
                span,
                "fields: " + ", ".join(sorted(envelope.fields)),
            )
            return None
        name, step_span = steps[0]
        if name not in envelope.fields:
            self.err(
                "E103",
                f"envelope `{root}` has no value `{name}`",
                step_span,
                did_you_mean(name, envelope.fields)
                or "values: " + ", ".join(sorted(envelope.fields)),
            )
            return None
        return ir.EnvelopeRef(root, name, span), envelope.fields[name].type


def _envelope_dotted(expr: n.Expr, envelopes: dict[str, ObjectType]) -> str | None:
    is_ref = isinstance(expr, n.Field) and isinstance(expr.subject, n.Name)
    if is_ref and expr.subject.name in envelopes:  # type: ignore[union-attr]
        return f"{expr.subject.name}.{expr.name}"  # type: ignore[union-attr]
    return None


# ------------------------------------------------------------------ facts from guards


def present_when(expr: n.Expr, truth: bool) -> set[str]:
    """Dotted paths known present when ``expr`` evaluates to ``truth``."""
    match expr:
        case n.Has(path=path):
            if not truth:
                return set()
            dotted = _dotted(path)
            if dotted is None:
                return set()
            parts = dotted.split(".")
            return {".".join(parts[: i + 1]) for i in range(1, len(parts))}
        case n.Unary(op="not", operand=operand):
            return present_when(operand, not truth)
        case n.Binary(op="and", left=a, right=b):
            if truth:
                return present_when(a, True) | present_when(b, True)
            return present_when(a, False) & present_when(b, False)
        case n.Binary(op="or", left=a, right=b):
            if truth:
                return present_when(a, True) & present_when(b, True)
            return present_when(a, False) | present_when(b, False)
    return set()


def _dotted(expr: n.Expr) -> str | None:
    parts: list[str] = []
    while isinstance(expr, n.Field):
        parts.append(expr.name)
        expr = expr.subject
    if not isinstance(expr, n.Name):
        return None
    return ".".join([expr.name, *reversed(parts)])


# ------------------------------------------------------------------ small type rules


def _literal_type(value: Any, is_duration: bool) -> Type:
    if is_duration:
        return DURATION
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return NumberType(integer=True)
    if isinstance(value, float):
        return NUMBER
    return STRING


def _kind(typ: Type) -> str:
    if isinstance(typ, TimestampType):
        return "time"
    if isinstance(typ, DurationType):
        return "dur"
    if isinstance(typ, StringType):
        return "str"
    return "num"


def _arith_type(op: str, lt: Type, rt: Type) -> Type | None:
    num = NumberType
    if isinstance(lt, num) and isinstance(rt, num):
        return NumberType(lt.integer and rt.integer and op != "/")
    if op == "+" and isinstance(lt, StringType) and isinstance(rt, StringType):
        return STRING
    table: dict[tuple[str, type, type], Type] = {
        ("+", DurationType, DurationType): DURATION,
        ("-", DurationType, DurationType): DURATION,
        ("+", TimestampType, DurationType): TIMESTAMP,
        ("+", DurationType, TimestampType): TIMESTAMP,
        ("-", TimestampType, DurationType): TIMESTAMP,
        ("-", TimestampType, TimestampType): DURATION,
        ("*", NumberType, DurationType): DURATION,
        ("*", DurationType, NumberType): DURATION,
        ("/", DurationType, NumberType): DURATION,
        ("/", DurationType, DurationType): NUMBER,
    }
    return table.get((op, type(lt), type(rt)))


def _arg_ok(param: str, typ: Type) -> bool:
    if isinstance(typ, NeverType):
        return True
    match param:
        case "string":
            return isinstance(typ, StringType)
        case "timestamp":
            return isinstance(typ, TimestampType)
        case "list|string":
            return isinstance(typ, ListType | StringType)
        case "list of number":
            return isinstance(typ, ListType) and isinstance(typ.item, NumberType | NeverType)
    return False  # pragma: no cover - FUNCTIONS names no other kinds


def constant_type(node: n.Constant) -> Type | None:
    """The type of an envelope value or override; ``None`` when it is not a plain value."""
    if isinstance(node, n.Literal):
        return _literal_type(node.value, node.is_duration)
    if isinstance(node, n.ListExpr):
        item: Type = NeverType()
        for element in node.items:
            if not isinstance(element, n.Literal):
                return None
            typ = _literal_type(element.value, element.is_duration)
            if not same_kind(item, typ):
                return None
            item = join(item, typ)
        return ListType(item)
    return None


def value_type(value: Any) -> Type | None:
    """The type of a plain value given from outside (``--set``, ``pack.yaml``)."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return NumberType(integer=True)
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list | tuple):
        item: Type = NeverType()
        for element in value:
            typ = value_type(element)
            if typ is None or isinstance(typ, ListType) or not same_kind(item, typ):
                return None
            item = join(item, typ)
        return ListType(item)
    return None


__all__ = [
    "CALENDAR_WINDOWS",
    "CATEGORIES",
    "DECISIONS",
    "FUNCTIONS",
    "META_KEYS",
    "RESERVED",
    "SEVERITIES",
    "WORD",
    "ExprChecker",
    "Scope",
    "constant_type",
    "did_you_mean",
    "present_when",
    "value_type",
]
