"""The reference interpreter: the IR evaluated directly, node by node.

This module is the oracle the generated evaluator (``codegen``) is tested
against (``tests/test_interpreter.py``), so it must stay short and obviously
right: no caching, no hoisting, no cleverness, and nothing shared with codegen.
It borrows only the language's function library and value formatting from
``runtime`` (``to_time``, ``hour``, ``minute``, ``weekday``, ``date``, ``fmt``,
``duration_text``), and from ``plain`` the reading of its input as JSON data.

The semantics it spells out:

* A path reads its steps one by one. A step the schema gives a default reads
  as that default when it is absent (or null) and its parent is present.
  Under ``??`` or ``has`` any other missing step makes the whole read absent;
  anywhere else every step must be present, which the checker and the input
  schema guarantee.
* ``path ?? fallback`` is the fallback when the path is absent; the fallback is
  always evaluated, used or not (as Rego's ``object.get`` does).
* ``has path`` holds when the path is present.
* Comparisons of timestamps compare instants, not text.
* Timestamps in arithmetic are seconds since the epoch; durations are seconds.
* ``/`` fails on a zero divisor and gives an integer when the quotient is
  integral (and exactly representable); ``%`` fails on a zero divisor, takes
  the sign of the dividend and is exact on integers of any size.
* Arithmetic whose result is not a finite number (an overflow to infinity)
  fails: no NaN or infinity ever reaches a comparison.
* ``and``/``or`` and ``any``/``all`` stop at the first operand or item that
  settles them, left to right.
* Any failure propagates: the caller turns it into a fail-closed verdict. ``fired`` and
  ``message`` raise it as a ``RuleFault`` naming the rule and the innermost expression that
  failed; ``evaluate`` raises the failure itself.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from types import TracebackType
from typing import Any

from aigre_policy import functions, ir
from aigre_policy.cards import rule_card
from aigre_policy.checked import CheckedPack
from aigre_policy.lattice import decision_of, rank_of
from aigre_policy.plain import as_plain
from aigre_policy.runtime import fmt, to_time
from aigre_policy.verdict import Issuer, Verdict

Scope = Mapping[str, Any]  # input roots and quantifier variables, by name
Envelopes = Mapping[str, Mapping[str, Any]]
# Sees each node evaluated, the scope it was evaluated in and its value (coverage tools).
Trace = Callable[[ir.Node, Scope, Any], None]

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

FUNCTIONS: dict[str, Callable[..., Any]] = {f.name: f.interpret for f in functions.TABLE}


class RuleFault(Exception):
    """A rule failed at run time: which rule, the innermost expression that failed, the cause.

    ``node`` is ``None`` when no expression of the rule was being evaluated. The
    original exception is ``cause`` (and ``__cause__``).
    """

    def __init__(self, rule: ir.Rule, node: ir.Node | None, cause: Exception):
        super().__init__(f"rule {rule.id} ({rule.span}): {type(cause).__name__}: {cause}")
        self.rule = rule
        self.node = node
        self.cause = cause


class InterpreterEvaluator:
    """The reference interpreter behind the backend protocol (``load_pack(engine="interpreter")``).

    Its records carry the rule's message but no bindings or comparisons: evidence is
    what the generated evaluator captures on its way, and this one captures nothing.
    """

    engine = "interpreter"
    warnings: tuple[Any, ...] = ()

    def __init__(self, checked: CheckedPack):
        self.program = checked.program
        self.envelopes = checked.envelopes
        self.default = checked.policy.default
        cards = tuple(rule_card(rule, (), checked.root) for rule in checked.program.rules)
        self.issuer = Issuer(checked.ref, cards)

    def decide(self, document: dict[str, Any], started: int) -> Verdict:
        """The verdict on a validated input; a fault raises (the caller fails closed)."""
        roots = (document["action"], document["context"], document["usage"])
        rules = self.program.rules
        held = fired(self.program, self.envelopes, *roots)
        evidence: list[Any] = [
            (i, True, message(rules[i], self.envelopes, *roots), (), ()) for i in held
        ]
        decision = decision_of(rank_of(rules[i].verdict for i in held), self.default)
        elapsed = (perf_counter_ns() - started) / 1000
        return Verdict(decision, evidence, self.issuer, document, elapsed)


def fired(
    program: ir.Program,
    envelopes: Envelopes,
    action: Any,
    context: Any,
    usage: Any,
    trace: Trace | None = None,
) -> list[int]:
    """Indices of the rules whose condition holds, in pack order; ``RuleFault`` if one fails."""
    scope = _scope(action, context, usage)
    return [rule.index for rule in program.rules if _holds(rule, scope, envelopes, trace)]


def message(rule: ir.Rule, envelopes: Envelopes, action: Any, context: Any, usage: Any) -> str:
    """What a fired rule says: its ``because`` text, else its title, else ``rule <id> fired``.

    ``RuleFault`` if a value it interpolates fails.
    """
    return _message(rule, _scope(action, context, usage), envelopes)


def first_fault(
    program: ir.Program, envelopes: Envelopes, action: Any, context: Any, usage: Any
) -> RuleFault | None:
    """The first rule, in pack order, whose condition or (when it holds) message fails.

    The rules run one at a time, each condition then its message, as the unindexed
    evaluator runs them; ``None`` when every rule evaluates.
    """
    scope = _scope(action, context, usage)
    try:
        for rule in program.rules:
            if _holds(rule, scope, envelopes, None):
                _message(rule, scope, envelopes)
    except RuleFault as fault:
        return fault
    return None


def _holds(rule: ir.Rule, scope: Scope, envelopes: Envelopes, trace: Trace | None) -> bool:
    try:
        return bool(evaluate(rule.condition, scope, envelopes, trace))
    except Exception as exc:
        raise RuleFault(rule, _innermost(exc.__traceback__), exc) from exc


def _message(rule: ir.Rule, scope: Scope, envelopes: Envelopes) -> str:
    try:
        text = "".join(
            part if isinstance(part, str) else fmt(evaluate(part, scope, envelopes))
            for part in rule.message
        )
    except Exception as exc:
        raise RuleFault(rule, _innermost(exc.__traceback__), exc) from exc
    return text or rule.title or f"rule {rule.id} fired"


def _innermost(traceback: TracebackType | None) -> ir.Node | None:
    """The deepest node ``_value`` was evaluating when the failure passed through it.

    Read from the traceback's frames, so evaluation itself pays nothing for it.
    """
    node = None
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code is _value.__code__:
            node = frame.f_locals.get("node", node)
        traceback = traceback.tb_next
    return node


def _scope(action: Any, context: Any, usage: Any) -> dict[str, Any]:
    """The input roots as the JSON data ``Pack.evaluate`` judges; ``NotPlain`` if they are not."""
    return as_plain({"action": action, "context": context, "usage": usage})


def evaluate(node: ir.Node, scope: Scope, envelopes: Envelopes, trace: Trace | None = None) -> Any:
    """The value of one IR expression; ``trace`` sees every node evaluated, after its value."""
    value = _value(node, scope, envelopes, trace)
    if trace is not None:
        trace(node, scope, value)
    return value


def _value(node: ir.Node, scope: Scope, envelopes: Envelopes, trace: Trace | None) -> Any:
    def ev(sub: ir.Node) -> Any:
        return evaluate(sub, scope, envelopes, trace)

    match node:
        case ir.Const(value=value):
            return value
        case ir.ListOf(items=items):
            return [ev(item) for item in items]
        case ir.Path():
            return read(node, scope, absent_ok=False)
        case ir.EnvelopeRef(envelope=envelope, name=name):
            return envelopes[envelope][name]
        case ir.Not(operand=operand):
            return not ev(operand)
        case ir.Neg(operand=operand):
            return -ev(operand)
        case ir.BoolOp(op="and", left=left, right=right):
            return ev(left) and ev(right)
        case ir.BoolOp(op="or", left=left, right=right):
            return ev(left) or ev(right)
        case ir.Compare(op=op, left=left, right=right, kind=kind):
            a, b = ev(left), ev(right)
            if kind == "time":
                a, b = to_time(a), to_time(b)
            return COMPARISONS[op](a, b)
        case ir.Member(negated=negated, item=item, collection=collection, kind=kind):
            needle, haystack = ev(item), ev(collection)
            if kind == "time":
                needle, haystack = to_time(needle), [to_time(x) for x in haystack]
            return (needle in haystack) != negated
        case ir.Arith(op=op, left=left, right=right, kind=kind):
            return arithmetic(op, kind, ev(left), ev(right))
        case ir.Default(path=path, fallback=fallback):
            value = read(path, scope, absent_ok=True)
            otherwise = ev(fallback)
            return otherwise if value is None else value
        case ir.Has(path=path):
            return read(path, scope, absent_ok=True) is not None
        case ir.Call(function=function, args=args):
            return FUNCTIONS[function](*(ev(arg) for arg in args))
        case ir.Quantifier(kind=kind, var=var, items=items, body=body):
            for item in ev(items):
                holds = evaluate(body, {**scope, var: item}, envelopes, trace)
                if kind == "any" and holds:
                    return True
                if kind == "all" and not holds:
                    return False
            return kind == "all"
    raise AssertionError(f"unknown IR node {node!r}")


def read(path: ir.Path, scope: Scope, absent_ok: bool) -> Any:
    """The value at ``path``; absent reads ``None`` if ``absent_ok``, else raise ``KeyError``."""
    return follow(scope[path.root], path.steps, dict(path.defaults), absent_ok, path.dotted)


def follow(
    value: Any, steps: tuple[str, ...], defaults: Mapping[int, Any], absent_ok: bool, dotted: str
) -> Any:
    """``value`` followed down ``steps``, a step's schema default standing in where absent
    from an object (as the generated code and the Rego library's ``stepd`` read it)."""
    for i, step in enumerate(steps):
        if isinstance(value, dict):
            value = value.get(step)
            if value is None:
                value = defaults.get(i)
        else:  # a value with no fields (a schema may let one through): no default either
            value = None
        if value is None:
            if absent_ok:
                return None
            raise KeyError(f"{dotted}: `{step}` is absent")
    return value


def arithmetic(op: str, kind: str, a: Any, b: Any) -> Any:
    """``a op b``; ``kind`` such as ``time-time`` says which operands are timestamps."""
    left_kind, right_kind = kind.split(op, 1)
    if left_kind == "time":
        a = to_time(a)
    if right_kind == "time":
        b = to_time(b)
    match op:
        case "+":
            result = a + b
        case "-":
            result = a - b
        case "*":
            result = a * b
        case "/":
            if b == 0:
                raise ZeroDivisionError("division by zero")
            result = a / b
        case "%":
            if b == 0:
                raise ZeroDivisionError("remainder by zero")
            magnitude = abs(a) % abs(b)
            return -magnitude if a < 0 else magnitude
        case _:
            raise AssertionError(f"unknown operator {op!r}")
    if isinstance(result, str):
        return result
    if isinstance(result, float) and not math.isfinite(result):
        raise ArithmeticError("arithmetic overflow: the result is not a finite number")
    if op == "/" and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result
