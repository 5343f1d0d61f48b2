"""IR expressions as Rego: conditions as rule bodies, values as terms.

A condition becomes a *body*, a list of Rego expressions that all hold exactly
when the condition holds. ``or``, ``not`` of a compound and the quantifiers
become counts over comprehensions, so absent reads behind a guard (``has``,
``??``) only make a branch fail, as the short-circuit in Python skips them.
A value becomes a *term*; a condition used as a value is ``lib.truth([1 | body])``.

Nothing from a pack becomes Rego syntax: strings and keys are JSON string
literals, quantifier variables are generated names (``v1``), and operators and
functions come from fixed tables. What the Rego target cannot express exactly
(``%``, ``/`` by a value that may be zero) is reported, never approximated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from aigre_policy import ir
from aigre_policy.diagnostics import Diagnostic, error, warning

FUNCTIONS = {
    "len": "count",
    "lower": "lower",
    "upper": "upper",
    "starts_with": "startswith",
    "ends_with": "endswith",
    "contains": "contains",
    "sum": "sum",
    "hour": "lib.hour",
    "minute": "lib.minute",
    "weekday": "lib.weekday",
    "date": "lib.date",
    "duration_text": "lib.duration_text",
}
CASE_FOLDING = ("lower", "upper")
TIME_FUNCTIONS = ("hour", "minute", "weekday", "date")


def literal(value: Any) -> str:
    """A JSON value as a Rego literal (JSON scalars and arrays are Rego terms)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("non-finite number in a pack")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{literal(str(k))}: {literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Translator:
    """Translates the expressions of one pack; ``envelopes`` is the data path of the limits."""

    envelopes_ref: str
    envelope_values: dict[str, dict[str, Any]]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    scopes: list[dict[str, str]] = field(default_factory=list)
    counter: int = 0
    # input timestamps parsed once per query: rule name -> its definition
    instants: dict[str, str] = field(default_factory=dict)
    instant_names: dict[str, str] = field(default_factory=dict)

    def fresh(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    # ------------------------------------------------------------ conditions
    def body(self, node: ir.Node) -> list[str]:
        match node:
            case ir.BoolOp(op="and", left=a, right=b):
                return [*self.body(a), *self.body(b)]
            case ir.BoolOp(op="or"):
                counts = " + ".join(f"count({self.comprehension(x)})" for x in _disjuncts(node))
                return [f"{counts} > 0"]
            case ir.Not(operand=x):
                inner = self.body(x)
                if len(inner) == 1 and not inner[0].startswith("not "):
                    return [f"not {inner[0]}"]
                return [f"count({self.comprehension(x)}) == 0"]
            case ir.Compare(op=op, left=a, right=b, kind=kind):
                left, right = self.term(a), self.term(b)
                if kind == "time":
                    left, right = self.instant(a, left), self.instant(b, right)
                return [f"{left} {op} {right}"]
            case ir.Member(negated=negated, item=a, collection=b):
                if getattr(node, "kind", "value") == "time":  # timestamps match as instants
                    name = self.fresh()
                    instant = self.instant(a, self.term(a))
                    found = (
                        f"count([1 | some {name} in {self.term(b)}; lib.t({name}) == {instant}])"
                    )
                    return [f"{found} == 0" if negated else f"{found} > 0"]
                test = f"{self.term(a)} in {self.term(b)}"
                return [f"not {test}" if negated else test]
            case ir.Has(path=path):
                return [f"{self.optional_read(path)} != null"]
            case ir.Quantifier(kind=kind, var=var, items=items, body=inner):
                name = self.fresh()
                source = self.term(items)
                self.scopes.append({var: name})
                if kind == "any":
                    held = "; ".join(self.body(inner))
                    test = f"count([1 | some {name} in {source}; {held}]) > 0"
                else:
                    failed = f"count({self.comprehension(inner)}) == 0"
                    test = f"count([1 | some {name} in {source}; {failed}]) == 0"
                self.scopes.pop()
                return [test]
        return [f"{self.term(node)} == true"]

    def comprehension(self, node: ir.Node) -> str:
        return "[1 | " + "; ".join(self.body(node)) + "]"

    # ------------------------------------------------------------ values
    def term(self, node: ir.Node) -> str:
        match node:
            case ir.Const(value=value):
                return literal(value)
            case ir.ListOf(items=items):
                return "[" + ", ".join(self.term(i) for i in items) + "]"
            case ir.Path():
                return self.path(node)
            case ir.EnvelopeRef(envelope=envelope, name=name):
                return f"{self.envelopes_ref}[{literal(envelope)}][{literal(name)}]"
            case ir.Neg(operand=x):
                return f"(0 - {self.term(x)})"
            case ir.Arith(op=op, left=a, right=b, kind=kind):
                return self.arithmetic(node, op, a, b, kind)
            case ir.Default(path=path, fallback=fallback):
                return f"lib.or_else({self.optional_read(path)}, {self.term(fallback)})"
            case ir.Call(function=function, args=args):
                if function in CASE_FOLDING:
                    self.diagnostics.append(
                        warning(
                            "W603",
                            f"`{function}` changes only ASCII letters under rego-cpp; "
                            "engines may disagree on other text",
                            node.span,
                        )
                    )
                if function in TIME_FUNCTIONS:
                    rendered = self.instant(args[0], self.term(args[0]))
                else:
                    rendered = ", ".join(self.term(a) for a in args)
                return self.hoist(node, f"{FUNCTIONS[function]}({rendered})")
        return f"lib.truth({self.comprehension(node)})"

    def arithmetic(self, node: ir.Arith, op: str, a: ir.Node, b: ir.Node, kind: str) -> str:
        left, right = self.term(a), self.term(b)
        if kind == "str+str":
            return f'concat("", [{left}, {right}])'
        left_kind, right_kind = kind.split(op, 1)
        if left_kind == "time":
            left = self.instant(a, left)
        if right_kind == "time":
            right = self.instant(b, right)
        if op == "%":
            self.diagnostics.append(
                error(
                    "E601",
                    "`%` has no exact Rego form (rego-cpp's remainder differs from Python's)",
                    node.span,
                    hint="compare with a multiple instead, or keep this pack on the native engine",
                )
            )
        elif op == "/" and not self.nonzero(b):
            self.diagnostics.append(
                error(
                    "E602",
                    "division by a value that may be zero cannot fail closed in Rego",
                    node.span,
                    hint="divide by a constant or an envelope value that is not zero",
                )
            )
        return f"({left} {op} {right})"

    def instant(self, node: ir.Node, term: str) -> str:
        """Seconds since the epoch; an input timestamp becomes a rule, parsed once per query."""
        if not isinstance(node, ir.Path) or node.local:
            return f"lib.t({term})"
        if term not in self.instant_names:
            name = f"t{len(self.instant_names)}"
            self.instant_names[term] = name
            self.instants[name] = f"{name} := lib.t({term})"
        return self.instant_names[term]

    def hoist(self, node: ir.Node, term: str) -> str:
        """A term reading no quantifier variable, as a rule: computed once per decision."""
        if any(isinstance(x, ir.Path) and x.local for x in ir.walk(node)):
            return term
        if term not in self.instant_names:
            name = f"c{len(self.instant_names)}"
            self.instant_names[term] = name
            self.instants[name] = f"{name} := {term}"
        return self.instant_names[term]

    def take_instants(self) -> list[str]:
        """The instant rules made since the last call (emitted with the module that uses them)."""
        made = list(self.instants.values())
        self.instants.clear()
        return made

    def nonzero(self, node: ir.Node) -> bool:
        match node:
            case ir.Const(value=value):
                return isinstance(value, int | float) and value != 0
            case ir.EnvelopeRef(envelope=envelope, name=name):
                value = self.envelope_values.get(envelope, {}).get(name)
                return isinstance(value, int | float) and value != 0
            case ir.Neg(operand=x):
                return self.nonzero(x)
        return False

    # ------------------------------------------------------------ reads
    def base(self, path: ir.Path) -> str:
        if path.local:
            for scope in reversed(self.scopes):
                if path.root in scope:
                    return scope[path.root]
            raise AssertionError(f"unbound item {path.root}")  # pragma: no cover
        return f"input.{path.root}"  # one of action, context, usage

    def path(self, path: ir.Path) -> str:
        return self.steps(self.base(path), path, 0, len(path.steps), optional=False)

    def optional_read(self, path: ir.Path) -> str:
        """A read that is ``null`` where a step is absent (``??`` and ``has``)."""
        first = path.optional[0] if path.optional else len(path.steps)
        prefix = self.steps(self.base(path), path, 0, first, optional=False)
        return self.steps(prefix, path, first, len(path.steps), optional=True)

    def steps(self, code: str, path: ir.Path, start: int, stop: int, optional: bool) -> str:
        defaults = dict(path.defaults)
        for i in range(start, stop):
            key = literal(path.steps[i])
            if i in defaults:
                code = f"lib.stepd({code}, {key}, {literal(defaults[i])})"
            elif optional:
                code = f"lib.step({code}, {key})"
            else:
                code = f"{code}[{key}]"
        return code

    def reads(self, condition: ir.Node) -> dict[str, str]:
        """The input and envelope values a condition reads, keyed as evidence names them."""
        found: dict[str, str] = {}
        for node in ir.walk(condition):
            if isinstance(node, ir.Path) and not node.local:
                # as the rule saw it: schema defaults applied, null (left out) where absent
                read = self.steps(f"input.{node.root}", node, 0, len(node.steps), optional=True)
                found.setdefault(node.dotted, read)
            elif isinstance(node, ir.EnvelopeRef):
                found.setdefault(node.dotted, self.term(node))
        return dict(sorted(found.items()))


def _disjuncts(node: ir.Node) -> list[ir.Node]:
    if isinstance(node, ir.BoolOp) and node.op == "or":
        return [*_disjuncts(node.left), *_disjuncts(node.right)]
    return [node]
