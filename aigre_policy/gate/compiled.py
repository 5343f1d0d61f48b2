"""Usage expressions turned into Python closures once, for the contributions of each check.

A row's contribution to a ``usage`` declaration is its filter and argument evaluated
over ``{"action", "decision"}``. The reference interpreter walks the IR tree for each
row; ``compile_node`` walks it once and returns a function of the scope that does what
the interpreter does, node for node: the same reads (an absent field raises the same
``KeyError``, a schema default is read the same way), the same operators and
functions (``interpreter.COMPARISONS``, ``FUNCTIONS``, ``arithmetic``, ``to_time``),
the same order of evaluation, so the same values and the same exceptions. A node it
does not know is left to the interpreter. ``tests/test_gate_usage.py`` compares the
two on generated rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aigre_policy import interpreter, ir
from aigre_policy.runtime import to_time

Scope = Mapping[str, Any]
Compiled = Callable[[Scope], Any]


def compile_node(node: ir.Node, envelopes: Mapping[str, Mapping[str, Any]]) -> Compiled:
    """A function of the scope with the value ``interpreter.evaluate(node, scope, envelopes)``
    has, raising what it raises."""
    match node:
        case ir.Const(value=value):
            return lambda scope: value
        case ir.ListOf(items=items):
            parts = [compile_node(item, envelopes) for item in items]
            return lambda scope: [part(scope) for part in parts]
        case ir.Path():
            return _reader(node, absent_ok=False)
        case ir.EnvelopeRef(envelope=envelope, name=name):
            return lambda scope: envelopes[envelope][name]
        case ir.Not(operand=operand):
            inner = compile_node(operand, envelopes)
            return lambda scope: not inner(scope)
        case ir.Neg(operand=operand):
            inner = compile_node(operand, envelopes)
            return lambda scope: -inner(scope)
        case ir.BoolOp(op="and", left=left, right=right):
            a, b = compile_node(left, envelopes), compile_node(right, envelopes)
            return lambda scope: a(scope) and b(scope)
        case ir.BoolOp(op="or", left=left, right=right):
            a, b = compile_node(left, envelopes), compile_node(right, envelopes)
            return lambda scope: a(scope) or b(scope)
        case ir.Compare(op=op, left=left, right=right, kind=kind):
            return _compare(op, kind, compile_node(left, envelopes), compile_node(right, envelopes))
        case ir.Member(negated=negated, item=item, collection=collection, kind=kind):
            return _member(
                negated, kind, compile_node(item, envelopes), compile_node(collection, envelopes)
            )
        case ir.Arith(op=op, left=left, right=right, kind=kind):
            a, b = compile_node(left, envelopes), compile_node(right, envelopes)
            return lambda scope: interpreter.arithmetic(op, kind, a(scope), b(scope))
        case ir.Default(path=path, fallback=fallback):
            return _default(_reader(path, absent_ok=True), compile_node(fallback, envelopes))
        case ir.Has(path=path):
            present = _reader(path, absent_ok=True)
            return lambda scope: present(scope) is not None
        case ir.Call(function=function, args=args):
            call = interpreter.FUNCTIONS[function]
            parts = [compile_node(arg, envelopes) for arg in args]
            return lambda scope: call(*(part(scope) for part in parts))
        case ir.Quantifier(kind=kind, var=var, items=items, body=body):
            return _quantifier(
                kind, var, compile_node(items, envelopes), compile_node(body, envelopes)
            )
    # anything else: the interpreter itself
    return lambda scope: interpreter.evaluate(node, scope, envelopes)


def _reader(path: ir.Path, absent_ok: bool) -> Compiled:
    """``interpreter.read`` for one path, its defaults looked up once."""
    root, steps, dotted = path.root, path.steps, path.dotted
    defaults = dict(path.defaults)

    def read(scope: Scope) -> Any:
        return interpreter.follow(scope[root], steps, defaults, absent_ok, dotted)

    return read


def _compare(op: str, kind: str, left: Compiled, right: Compiled) -> Compiled:
    test = interpreter.COMPARISONS[op]
    if kind == "time":
        return lambda scope: test(*_times(left(scope), right(scope)))
    return lambda scope: test(left(scope), right(scope))


def _times(a: Any, b: Any) -> tuple[Any, Any]:
    return to_time(a), to_time(b)


def _member(negated: bool, kind: str, item: Compiled, collection: Compiled) -> Compiled:
    def member(scope: Scope) -> bool:
        needle, haystack = item(scope), collection(scope)
        if kind == "time":
            needle, haystack = to_time(needle), [to_time(x) for x in haystack]
        return (needle in haystack) != negated

    return member


def _default(read: Compiled, fallback: Compiled) -> Compiled:
    def default(scope: Scope) -> Any:
        value = read(scope)
        otherwise = fallback(scope)  # evaluated whatever the value, as the interpreter does
        return otherwise if value is None else value

    return default


def _quantifier(kind: str, var: str, items: Compiled, body: Compiled) -> Compiled:
    def quantifier(scope: Scope) -> bool:
        for item in items(scope):
            holds = body({**scope, var: item})
            if kind == "any" and holds:
                return True
            if kind == "all" and not holds:
                return False
        return kind == "all"

    return quantifier
