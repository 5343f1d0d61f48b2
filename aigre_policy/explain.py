"""Why a rule stayed silent: each comparison its condition made, with the operand values.

A verdict's evidence covers the rules that fired. For the others, the reference
interpreter (``interpreter``) runs each condition again over the same input and records
every comparison and membership test it evaluated, with the values on both sides and
the result; the false ones are what kept the rule silent. ``and``/``or`` stop early as
in every engine, so a comparison after a false ``and`` operand is not listed: it did not
take part. Run on demand (``aigre-policy eval --explain``), never on the decision path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigre_policy import interpreter, ir
from aigre_policy.plain import NotPlain, as_plain


@dataclass(frozen=True, slots=True)
class Check:
    """One comparison or membership test as it was evaluated."""

    expression: str
    left: Any
    op: str
    right: Any
    result: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "expression": self.expression,
            "left": self.left,
            "op": self.op,
            "right": self.right,
            "result": self.result,
        }


@dataclass(frozen=True, slots=True)
class Silence:
    """A rule that did not fire, and the checks that kept it so."""

    rule: str
    verdict: str
    location: dict[str, Any]
    checks: tuple[Check, ...]
    error: str | None = None  # the condition failed to evaluate (the verdict failed closed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule,
            "verdict": self.verdict,
            "location": self.location,
            "checks": [c.to_dict() for c in self.checks],
            "error": self.error,
        }


def silent_rules(
    pack: Any, fired: list[str], action: Any, context: Any, usage: Any
) -> list[Silence]:
    """Every rule of ``pack`` not in ``fired``, in pack order, with the checks it made.

    ``pack`` is a loaded ``Pack`` (its IR and envelope values are read); the input is
    judged as ``Pack.evaluate`` judges it, as JSON data.
    """
    try:
        scope = as_plain(
            {
                "action": action,
                "context": {} if context is None else context,
                "usage": {} if usage is None else usage,
            }
        )
    except NotPlain:
        return []
    quiet = set(fired)
    found = []
    for rule in pack.program.rules:
        if rule.id in quiet:
            continue
        checks: list[Check] = []
        values: dict[int, Any] = {}
        atoms = _atoms(rule.condition)

        def trace(node: ir.Node, _scope: Any, value: Any) -> None:
            values[id(node)] = value  # noqa: B023 - called while this rule's loop runs
            if isinstance(node, ir.Compare):
                left, right = values.get(id(node.left)), values.get(id(node.right))  # noqa: B023
                checks.append(Check(node.text, left, node.op, right, bool(value)))  # noqa: B023
            elif isinstance(node, ir.Member):
                item = values.get(id(node.item))  # noqa: B023
                collection = values.get(id(node.collection))  # noqa: B023
                op = "not in" if node.negated else "in"
                checks.append(Check(node.text, item, op, collection, bool(value)))  # noqa: B023
            elif id(node) in atoms:  # noqa: B023 - a `has`, a quantifier, a boolean field...
                checks.append(Check(describe(node), value, "", None, bool(value)))  # noqa: B023

        error = None
        try:
            interpreter.evaluate(rule.condition, scope, pack.envelopes, trace)
        except Exception as exc:  # a fault: the verdict already failed closed for it
            error = f"{type(exc).__name__}: {exc}"
        found.append(Silence(rule.id, rule.verdict, rule.location, tuple(checks), error))
    return found


def _atoms(condition: ir.Node) -> set[int]:
    """The operands of the condition's `and`/`or`/`not` that are not themselves one."""
    found: set[int] = set()
    stack = [condition]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.BoolOp):
            stack += [node.left, node.right]
        elif isinstance(node, ir.Not):
            stack.append(node.operand)
        else:
            found.add(id(node))
    return found


def describe(node: ir.Node) -> str:
    """A short source-like text of an operand that has none of its own."""
    match node:
        case ir.Path():
            return node.dotted
        case ir.Has(path=path):
            return f"has {path.dotted}"
        case ir.Default(path=path, fallback=fallback):
            return f"{path.dotted} ?? {describe(fallback)}"
        case ir.Quantifier(kind=kind, var=var, items=items):
            return f"{kind}({var} in {describe(items)}: ...)"
        case ir.Call(function=function, args=args):
            return f"{function}({', '.join(describe(a) for a in args)})"
        case ir.Const(value=value):
            return repr(value) if not isinstance(value, str) else f'"{value}"'
        case ir.ListOf():
            return "[...]"
        case ir.Compare() | ir.Member():
            return node.text
    return type(node).__name__.lower()
