"""IR expressions to formulas: each expression gives its value and when it fails.

The failure formula follows the engine's order exactly: ``and``/``or`` and
``any``/``all`` stop at the first operand or item that settles them, ``??``
always evaluates its fallback, and a failure anywhere fails the decision closed.
``lower``, ``upper`` and ``date`` have no exact counterpart in z3's string theory:
they are uninterpreted functions (a proof holds whatever they compute), and each
witness is checked against the real function and refined until it agrees.
A construct the encoding cannot state is not approximated: the boolean test that
holds it becomes a free variable (a proof holds whichever way it goes), and the
construct is reported with its place in the source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from aigre_policy import ir, runtime, zones
from aigre_policy.solver.inputs import (
    FIRST_SECOND,
    LAST_SECOND,
    InputSpace,
    Unencodable,
    item_value,
)
from aigre_policy.solver.values import (
    FALSE,
    TRUE,
    Arithmetic,
    Val,
    all_of,
    any_of,
    boolean,
    constant,
    equal,
    order,
)

Scope = Mapping[str, Val]
_UNINTERPRETED: dict[str, Callable[..., Any]] = {
    "lower": runtime.lower,
    "upper": runtime.upper,
    "date": runtime.date,
}
_DAY = 86400
ZONED = zones.ZONE_FUNCTIONS
_CLOCKS = ("hour", "minute", "weekday", "date")


@dataclass(frozen=True)
class Application:
    """One use of an uninterpreted function: what to check a witness against."""

    name: str
    function: Any  # the z3 function
    argument: Any  # the z3 argument
    is_time: bool


@dataclass(frozen=True)
class Opaque:
    """A construct stated as a free variable: what it is and where."""

    construct: str
    span: Any


@dataclass
class Encoder:
    space: InputSpace
    envelopes: Mapping[str, Mapping[str, Any]]
    arithmetic: Arithmetic
    prefix: str = ""  # names this pack's free variables apart from another's
    symbolic_envelopes: bool = False
    opaque: list[Opaque] = field(default_factory=list)
    applications: list[Application] = field(default_factory=list)
    envelope_vars: dict[str, Any] = field(default_factory=dict)
    _functions: dict[str, Any] = field(default_factory=dict)
    _reads: dict[Any, tuple[Val, Any]] = field(default_factory=dict)  # input paths, read once

    # ------------------------------------------------------------------ entry points

    def condition(self, node: ir.Node, scope: Scope | None = None) -> tuple[Any, Any]:
        """A boolean expression: (holds, fails)."""
        value, fails = self.expr(node, dict(scope or {}))
        return value.z, fails

    def fails(self, node: ir.Node) -> Any:
        """When evaluating ``node`` (a message part) fails; its value is not needed."""
        try:
            return self.expr(node, {})[1]
        except Unencodable as exc:
            if not _may_fail(node):
                return FALSE
            return self._opaque(exc, node)[1]

    # ------------------------------------------------------------------ expressions

    def expr(self, node: ir.Node, scope: dict[str, Val]) -> tuple[Val, Any]:
        match node:
            case ir.Compare() | ir.Member() | ir.Call():
                try:
                    return self._expr(node, scope)
                except Unencodable as exc:
                    if _is_boolean(node):
                        return self._opaque(exc, node)
                    raise
        return self._expr(node, scope)

    def _opaque(self, exc: Unencodable, node: ir.Node) -> tuple[Val, Any]:
        self.opaque.append(Opaque(exc.construct, exc.span or node.span))
        n = len(self.opaque)
        holds = z3.Bool(f"{self.prefix}opaque {n}")
        fails = z3.Bool(f"{self.prefix}opaque {n} fails") if _may_fail(node) else FALSE
        return boolean(holds), fails

    def _expr(self, node: ir.Node, scope: dict[str, Val]) -> tuple[Val, Any]:
        ev = self.expr
        match node:
            case ir.Const(value=value):
                return constant(value), FALSE
            case ir.ListOf(items=items):
                parts = [ev(item, scope) for item in items]
                values = tuple(v for v, _ in parts)
                return Val("list", items=values, length=z3.IntVal(len(values))), _any(
                    [f for _, f in parts]
                )
            case ir.EnvelopeRef(envelope=envelope, name=name):
                return self._envelope(envelope, name), FALSE
            case ir.Path():
                value, present = self.read(node, scope)
                return value, z3.Not(present)
            case ir.Not(operand=operand):
                v, f = ev(operand, scope)
                return boolean(z3.Not(v.z)), f
            case ir.Neg(operand=operand):
                v, f = ev(operand, scope)
                return self.arithmetic.negate(v), f
            case ir.BoolOp(op=op, left=left, right=right):
                a, fa = ev(left, scope)
                b, fb = ev(right, scope)
                if op == "and":
                    return boolean(all_of(a.z, b.z)), any_of(fa, all_of(a.z, fb))
                return boolean(any_of(a.z, b.z)), any_of(fa, all_of(z3.Not(a.z), fb))
            case ir.Compare(op=op, left=left, right=right):
                a, fa = ev(left, scope)
                b, fb = ev(right, scope)
                if "list" in (a.kind, b.kind) or "obj" in (a.kind, b.kind):
                    raise Unencodable("a comparison of lists or objects", node.span)
                if op in ("==", "!="):
                    same = equal(a, b)
                    return boolean(same if op == "==" else z3.Not(same)), any_of(fa, fb)
                return boolean(order(op, a, b)), any_of(fa, fb)
            case ir.Member(negated=negated, item=item, collection=collection):
                needle, fa = ev(item, scope)
                hay, fb = ev(collection, scope)
                if needle.kind in ("list", "obj"):
                    raise Unencodable("membership of a list or object", node.span)
                found = any_of(
                    [
                        all_of(k < hay.length, equal(needle, item_value(x)))
                        for k, x in enumerate(hay.items)
                    ]
                    or [FALSE]
                )
                return boolean(z3.Not(found) if negated else found), any_of(fa, fb)
            case ir.Arith(op=op, left=left, right=right):
                a, fa = ev(left, scope)
                b, fb = ev(right, scope)
                if "list" in (a.kind, b.kind):
                    raise Unencodable("arithmetic on lists", node.span)
                value, fails = self.arithmetic.apply(op, a, b)
                return value, any_of(fa, fb, fails)
            case ir.Default(path=path, fallback=fallback):
                otherwise, ff = ev(fallback, scope)
                value, present = self.read(path, scope)
                return merge(present, value, otherwise, node), ff
            case ir.Has(path=path):
                return boolean(self.read(path, scope)[1]), FALSE
            case ir.Call(function=function, args=args):
                return self._call(node, function, args, scope)
            case ir.Quantifier(kind=kind, var=var, items=items, body=body):
                return self._quantifier(kind, var, items, body, scope)
        raise Unencodable(f"the expression {type(node).__name__}", getattr(node, "span", None))

    def _lookup(self, node: ir.Call, args: tuple[ir.Node, ...], scope: dict[str, Val]) -> Any:
        """A keyed envelope value: an if-then-else chain over the key, from the default up."""
        table_ref, key_node = args
        if not isinstance(table_ref, ir.EnvelopeRef):
            raise Unencodable("a lookup in something other than an envelope", node.span)
        key, fails = self.expr(key_node, scope)
        table = self.envelopes[table_ref.envelope][table_ref.name]
        value = constant(table["default"])
        for label, entries in table.items():
            if label == "default":
                continue
            for name in sorted(entries, reverse=True):
                value = merge(key.z == z3.StringVal(name), constant(entries[name]), value, node)
        return value, fails

    def _envelope(self, envelope: str, name: str) -> Val:
        value = self.envelopes[envelope][name]
        if not self.symbolic_envelopes or isinstance(value, list | tuple):
            return constant(value)
        dotted = f"{envelope}.{name}"
        var = self.envelope_vars.get(dotted)
        if var is None:
            sort = (
                z3.BoolSort()
                if isinstance(value, bool)
                else z3.IntSort()
                if isinstance(value, int)
                else z3.RealSort()
                if isinstance(value, float)
                else z3.StringSort()
            )
            var = self.envelope_vars[dotted] = z3.Const(f"envelope {dotted}", sort)
        made = constant(value)
        return Val(made.kind, var, pyint=made.pyint)

    def read(self, path: ir.Path, scope: dict[str, Val]) -> tuple[Val, Any]:
        """The value at ``path`` and whether it is present (a schema default stands in)."""
        if path.local:
            return self._read(path, scope)
        key = (path.root, path.steps, path.defaults)
        found = self._reads.get(key)
        if found is None:
            found = self._reads[key] = self._read(path, scope)
        return found

    def _read(self, path: ir.Path, scope: dict[str, Val]) -> tuple[Val, Any]:
        current = scope[path.root] if path.local else self.space.value(self.space.roots[path.root])
        defaults = dict(path.defaults)
        present: Any = TRUE
        for i, step in enumerate(path.steps):
            if current.kind != "obj":
                raise Unencodable(f"a field of a {current.kind}", path.span)
            slot = self.space.child(current.slot, step)
            value = self.space.value(slot)
            if i in defaults:
                value = merge(slot.present, value, constant(defaults[i]), path)
            else:
                present = all_of(present, slot.present)
            current = value
        return current, z3.simplify(present)

    def _call(
        self, node: ir.Call, function: str, args: tuple[ir.Node, ...], scope: dict[str, Val]
    ) -> Any:
        if function == "lookup":
            return self._lookup(node, args, scope)
        parts = [self.expr(arg, scope) for arg in args]
        values = [v for v, _ in parts]
        fails = _any([f for _, f in parts])
        if function in zones.ZONE_FUNCTIONS:
            return self._wall_clock(function, args[1], values[0], fails)
        match function:
            case "len":
                (v,) = values
                if v.kind == "list":
                    return Val("num", v.length, pyint=True), fails
                return Val("num", z3.Length(v.z), pyint=True), fails
            case "starts_with":
                return boolean(z3.PrefixOf(values[1].z, values[0].z)), fails
            case "ends_with":
                return boolean(z3.SuffixOf(values[1].z, values[0].z)), fails
            case "contains":
                return boolean(z3.Contains(values[0].z, values[1].z)), fails
            case "sum":
                (v,) = values
                total, total_fails = constant(0), FALSE
                for k, item in enumerate(v.items):
                    added, fault = self.arithmetic.apply("+", total, item_value(item))
                    inside = k < v.length
                    total_fails = any_of(total_fails, all_of(inside, fault))
                    total = merge(inside, added, total, node)
                return total, any_of(fails, total_fails)
            case "hour" | "minute" | "weekday":
                seconds, outside = _seconds(values[0])
                fails = any_of(fails, outside)
                if function == "hour":
                    return Val("num", (seconds % _DAY) / 3600, pyint=True), fails
                if function == "minute":
                    return Val("num", (seconds % 3600) / 60, pyint=True), fails
                return Val("str", _weekday(seconds)), fails
            case "lower" | "upper" | "date":
                (v,) = values
                is_time = function == "date"
                argument = v.z
                if is_time:
                    argument, outside = _seconds(v)
                    fails = any_of(fails, outside)
                fn = self._functions.get(function)
                if fn is None:
                    domain = z3.IntSort() if is_time else z3.StringSort()
                    fn = z3.Function(f"{function}", domain, z3.StringSort())
                    self._functions[function] = fn
                self.applications.append(Application(function, fn, argument, is_time))
                return Val("str", fn(argument)), fails
            case "duration_text":
                return Val("str", z3.StringVal("")), fails  # messages only: its text is not needed
        raise Unencodable(f"the function {function}()", node.span)

    def _wall_clock(self, function: str, zone: ir.Node, instant: Val, fails: Any) -> Any:
        """``hour_in`` and friends: the clock at the instant plus the zone's offset. Read
        as the runtime reads it, with no range check: a wall clock past year 9999 is read
        too (``runtime.hour_in``)."""
        seconds, outside = _seconds(instant)
        local = seconds + _offset(zones.table(self._zone(zone)), seconds)
        fails = any_of(fails, outside)
        match function:
            case "hour_in":
                return Val("num", (local % _DAY) / 3600, pyint=True), fails
            case "minute_in":
                return Val("num", (local % 3600) / 60, pyint=True), fails
            case "weekday_in":
                return Val("str", _weekday(local)), fails
        fn = self._functions.get("date")  # one function of the day, as `date` uses
        if fn is None:
            fn = self._functions["date"] = z3.Function("date", z3.IntSort(), z3.StringSort())
        self.applications.append(Application("date", fn, local, True))
        return Val("str", fn(local)), fails

    def _zone(self, node: ir.Node) -> str:
        """The zone a zone function names: a literal, or an envelope value the pack fixed."""
        if isinstance(node, ir.Const):
            return str(node.value)
        if isinstance(node, ir.EnvelopeRef) and not self.symbolic_envelopes:
            return str(self.envelopes[node.envelope][node.name])
        raise Unencodable("a time zone that is not fixed", node.span)

    def _quantifier(
        self, kind: str, var: str, items: ir.Node, body: ir.Node, scope: dict[str, Val]
    ) -> Any:
        listed, fails = self.expr(items, scope)
        settled: Any = FALSE  # an earlier item settled the answer
        result: Any = FALSE if kind == "any" else TRUE
        for k, item in enumerate(listed.items):
            inside = k < listed.length
            holds, fault = self.expr(body, {**scope, var: item_value(item)})
            fails = any_of(fails, all_of(inside, z3.Not(settled), fault))
            decides = holds.z if kind == "any" else z3.Not(holds.z)
            settled = any_of(settled, all_of(inside, decides))
        result = settled if kind == "any" else z3.Not(settled)
        return boolean(result), fails


def merge(condition: Any, then: Val, otherwise: Val, node: Any) -> Val:
    """``then`` where ``condition`` holds, else ``otherwise`` (one kind of value)."""
    if then.kind != otherwise.kind:
        raise Unencodable(f"a default of another kind ({otherwise.kind})", node.span)
    if then.kind in ("bool", "str"):
        return Val(then.kind, z3.If(condition, then.z, otherwise.z))
    if then.kind == "num":
        a, b = then.z, otherwise.z
        if a.sort() != b.sort():
            a, b = (
                z3.ToReal(a) if a.sort() == z3.IntSort() else a,
                (z3.ToReal(b) if b.sort() == z3.IntSort() else b),
            )
        return Val(
            "num",
            z3.If(condition, a, b),
            pyint=then.pyint and otherwise.pyint,
            integral=then.integral and otherwise.integral,
        )
    if then.kind == "list":
        if not otherwise.items:
            return Val("list", items=then.items, length=z3.If(condition, then.length, 0))
        if not then.items:
            return Val("list", items=otherwise.items, length=z3.If(condition, 0, otherwise.length))
        longest = max(len(then.items), len(otherwise.items))
        items = []
        for k in range(longest):
            a = item_value(then.items[k]) if k < len(then.items) else None
            b = item_value(otherwise.items[k]) if k < len(otherwise.items) else None
            if a is None or b is None:
                items.append(a if b is None else b)
            else:
                items.append(merge(condition, a, b, node))
        return Val(
            "list", items=tuple(items), length=z3.If(condition, then.length, otherwise.length)
        )
    raise Unencodable("a default for an object", node.span)


def _seconds(value: Val) -> tuple[Any, Any]:
    """Whole seconds of a time, and when it falls outside what the engine can convert."""
    seconds = value.z if value.z.sort() == z3.IntSort() else z3.ToInt(value.z)
    outside = any_of(seconds < FIRST_SECOND, seconds > LAST_SECOND)
    return seconds, outside


def _weekday(seconds: Any) -> Any:
    index = (seconds / _DAY + 3) % 7  # 1970-01-01 was a Thursday
    name: Any = z3.StringVal(runtime.WEEKDAY_NAMES[6])
    for i in range(5, -1, -1):
        name = z3.If(index == i, z3.StringVal(runtime.WEEKDAY_NAMES[i]), name)
    return name


def _offset(table: zones.ZoneTable, seconds: Any) -> Any:
    """The zone's offset at ``seconds``, exactly as its table says (zones.ZoneTable.offset):
    the instant folded into the table's period, then a balanced search of its transitions."""
    folded = z3.If(
        seconds >= table.fold, table.fold + (seconds - table.fold) % zones.PERIOD, seconds
    )
    steps = [(start, o) for row in table.buckets for start, o in row]
    steps = [(start, o) for k, (start, o) in enumerate(steps) if k == 0 or steps[k - 1][1] != o]

    def search(low: int, high: int) -> Any:  # steps[low:high], the first holding from -inf
        if high - low == 1:
            return z3.IntVal(steps[low][1])
        middle = (low + high) // 2
        return z3.If(folded < steps[middle][0], search(low, middle), search(middle, high))

    if not steps:
        return z3.IntVal(table.before)
    return z3.If(folded < table.origin, table.before, search(0, len(steps)))


def _any(formulas: list[Any]) -> Any:
    return any_of(formulas) if formulas else FALSE


def _is_boolean(node: ir.Node) -> bool:
    if isinstance(node, ir.Call):
        return node.function in ("starts_with", "ends_with", "contains")
    return True


def _may_fail(node: ir.Node) -> bool:
    """Whether evaluating ``node`` can fail on valid input: only arithmetic and time can."""
    return any(
        isinstance(sub, ir.Arith)
        or (isinstance(sub, ir.Call) and sub.function in (*_CLOCKS, *ZONED))
        for sub in ir.walk(node)
    )
