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
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aigre_policy import functions, ir, zones
from aigre_policy.diagnostics import Diagnostic, warning
from aigre_policy.rego.shape import Shape

FUNCTIONS = {f.name: f.rego for f in functions.TABLE}  # name -> the Rego it calls
CASE_FOLDING = ("lower", "upper")
FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}  # a < b is b > a
TIME_FUNCTIONS = ("hour", "minute", "weekday", "date")
ZONES_REF = "zones"  # a rule of the rules package: the zone tables in data.json


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


@dataclass(frozen=True)
class Local:
    """A quantifier variable: its Rego name and what the schema says of its items."""

    name: str
    shape: Shape


@dataclass(frozen=True)
class Read:
    """An input read as Rego. ``target`` and ``keys`` are set when ``code`` is
    ``object.get(target, keys, null)``, so a ``??`` can give it its own default."""

    code: str
    shape: Shape
    never_null: bool = False
    target: str | None = None
    keys: str | None = None


@dataclass
class Translator:
    """Translates the expressions of one pack; ``envelopes`` is the data path of the limits.

    ``shape`` is the pack's input schema: rules only ever see valid input, so a value
    the schema makes an object is read with ``object.get`` rather than a helper call.
    """

    envelopes_ref: str
    envelope_values: dict[str, dict[str, Any]]
    shape: Shape = field(default_factory=lambda: Shape.of({}))
    diagnostics: list[Diagnostic] = field(default_factory=list)
    scopes: list[dict[str, Local]] = field(default_factory=list)
    counter: int = 0
    # input timestamps parsed once per query: rule name -> its definition
    instants: dict[str, str] = field(default_factory=dict)
    instant_names: dict[str, str] = field(default_factory=dict)
    zone_tables: dict[str, Any] = field(default_factory=dict)  # zone -> its table (data)
    # helper rules of the rule being translated: `or`, `not`, quantifiers (see `helper`)
    owner: str = "r"
    helpers: list[str] = field(default_factory=list)
    # helpers by their text with variables renamed: the pack's rules share equal ones
    known_helpers: dict[str, str] = field(default_factory=dict)
    # tests reading no quantifier variable, as often as the pack makes them; `shared` are
    # those made more than once (from a first pass): rules, evaluated once per decision
    tests: Counter[str] = field(default_factory=Counter)
    shared: frozenset[str] = frozenset()

    def fresh(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def start(self, owner: str) -> None:
        """Translate the rule named ``owner`` next; its helpers are ``<owner>_1``, ..."""
        self.owner = owner
        self.helpers = []

    def helper(self, node: ir.Node, bodies: list[list[str]]) -> str:
        """A rule that is true when one of ``bodies`` holds, else false, used where
        ``node`` was.

        Rego has no `or` inside a body, and a comprehension per branch costs rego-cpp
        far more than a rule. The branches are an `else` chain: rego-cpp evaluates every
        definition of a rule, but stops an `else` chain at the first body that holds.
        Inside a quantifier the helper is a function of the variables it reads.
        """
        params = self.free(node)
        branches = " else := true if ".join(f"{{\n{_lines(body)}\n}}" for body in bodies)
        arguments = f"({', '.join(params)})" if params else ""
        renamed: dict[str, str] = {}
        canonical = re.sub(
            r"\bv\d+\b",
            lambda m: renamed.setdefault(m.group(), f"v{len(renamed)}"),
            f"{arguments} := true if {branches}",
        )
        if canonical in self.known_helpers:  # another rule asks the same: one rule answers
            return self.known_helpers[canonical] + arguments
        name = f"{self.owner}_{len(self.helpers) + 1}"
        self.known_helpers[canonical] = name
        self.helpers.append(f"{name}{arguments} := true if {branches} else := false\n")
        return name + arguments

    def free(self, node: ir.Node) -> list[str]:
        """The Rego names of the enclosing quantifier variables ``node`` reads."""
        used = {x.root for x in ir.walk(node) if isinstance(x, ir.Path) and x.local}
        names: list[str] = []
        for scope in self.scopes:
            for var, local in scope.items():
                if var in used and local.name not in names:
                    names.append(local.name)
        return names

    # ------------------------------------------------------------ conditions
    def body(self, node: ir.Node) -> list[str]:
        match node:
            case ir.BoolOp(op="and", left=a, right=b):
                return [*self.body(a), *self.body(b)]
            case ir.BoolOp(op="or"):
                return [self.helper(node, [self.body(x) for x in _disjuncts(node)])]
            case ir.Not(operand=x):
                return self.negated(x, self.body(x))
            case ir.Compare(op=op, left=a, right=b, kind=kind):
                left, right = self.term(a), self.term(b)
                if kind == "time":
                    left, right = self.instant(a, left), self.instant(b, right)
                left = _bare(left)
                if left.startswith(_NOT_FIRST) and not right.startswith(_NOT_FIRST):
                    left, op, right = right, FLIPPED.get(op, op), left
                if left.startswith(_NOT_FIRST):
                    name = self.fresh()
                    return [f"{name} := {left}", f"{name} {op} {right}"]
                if op == "!=" and _defined(a) and _defined(b):
                    # `!=` is a builtin call to rego-cpp, `==` is not; they differ only
                    # where a side is undefined, and these sides are always defined
                    return self.test(node, f"{left} == {right}", negated=True)
                return self.test(node, f"{left} {op} {right}")
            case ir.Member(negated=negated, item=a, collection=b):
                if getattr(node, "kind", "value") == "time":  # timestamps match as instants
                    name = self.fresh()
                    instant = self.instant(a, self.term(a))
                    found = [f"some {name} in {self.term(b)}", f"lib.t({name}) == {instant}"]
                    return [f"not {self.helper(node, [found])}"] if negated else found
                item = self.term(a)
                if item.startswith(_NOT_FIRST):
                    name = self.fresh()
                    bind, item = [f"{name} := {item}"], name
                else:
                    bind = []
                if bind:
                    test = f"{item} in {self.term(b)}"
                    return [*bind, f"not {test}" if negated else test]
                return self.test(node, f"{item} in {self.term(b)}", negated)
            case ir.Has(path=path):
                return self.test(node, f"{self.optional_read(path).code} != null")
            case ir.Quantifier(kind=kind, var=var, items=items, body=inner):
                name = self.fresh()
                source = self.term(items)
                self.scopes.append({var: Local(name, self.shape_of(items).item())})
                held = self.body(inner)
                if kind == "any":  # in line: a body holds if some item makes it hold
                    self.scopes.pop()
                    return [f"some {name} in {source}", *held]
                held = self.negated(inner, held)  # all: no item breaks the body
                self.scopes.pop()
                return [f"not {self.helper(node, [[f'some {name} in {source}', *held]])}"]
        return [f"{self.term(node)} == true"]

    def test(self, node: ir.Node, text: str, negated: bool = False) -> list[str]:
        """The body of one test. A test reading no quantifier variable that the pack makes
        more than once becomes a rule (`c<n>`), evaluated once per decision."""
        if not any(isinstance(x, ir.Path) and x.local for x in ir.walk(node)):
            self.tests[text] += 1
            if text in self.shared:
                name = self.hoisted(text, test=True)
                return [f"{'not ' if negated else ''}{name}  # {comment_of(text)}"]
        return [f"not {text}" if negated else text]

    def hoisted(self, term: str, test: bool = False) -> str:
        """The rule holding ``term`` (which reads no quantifier variable). A test is a
        boolean rule, false by default: `a == b` in a body costs rego-cpp no builtin
        call, as a value (`c := a == b`) it does."""
        key = f"test {term}" if test else term
        if key not in self.instant_names:
            name = f"c{len(self.instant_names)}"
            self.instant_names[key] = name
            if test:
                self.instants[name] = f"{name} if {term}\n\ndefault {name} := false"
            else:
                self.instants[name] = f"{name} := {term}"
        return self.instant_names[key]

    def negated(self, node: ir.Node, held: list[str]) -> list[str]:
        """The body that holds when ``held`` (the body of ``node``) does not."""
        if len(held) == 1 and not held[0].startswith(("not ", "some ")):
            return [f"not {held[0]}"]
        return [f"not {self.helper(node, [held])}"]

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
                return self.hoist(node, self.default(path, self.term(fallback)))
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
                elif function in zones.ZONE_FUNCTIONS:
                    instant = self.instant(args[0], self.term(args[0]))
                    rendered = f"{instant}, {self.zone(args[1])}"
                else:
                    rendered = ", ".join(self.term(a) for a in args)
                return self.hoist(node, f"{FUNCTIONS[function]}({rendered})")
        return self.helper(node, [self.body(node)])

    def arithmetic(self, node: ir.Arith, op: str, a: ir.Node, b: ir.Node, kind: str) -> str:
        left, right = self.term(a), self.term(b)
        if kind == "str+str":
            return f'concat("", [{left}, {right}])'
        left_kind, right_kind = kind.split(op, 1)
        if left_kind == "time":
            left = self.instant(a, left)
        if right_kind == "time":
            right = self.instant(b, right)
        # `%` and a division by a value that may be zero: the check stage reported them for
        # this target (targets.target_diagnostics: E601, E602), so the program is refused
        return f"({left} {op} {right})"

    def instant(self, node: ir.Node, term: str) -> str:
        """Seconds since the epoch; an input timestamp becomes a rule, parsed once per query."""
        parse = "lib.ts" if self.is_text(node) else "lib.t"  # a string needs no number test
        if not isinstance(node, ir.Path) or node.local:
            return f"{parse}({term})"
        if term not in self.instant_names:
            name = f"t{len(self.instant_names)}"
            self.instant_names[term] = name
            self.instants[name] = f"{name} := {parse}({term})"
        return self.instant_names[term]

    def zone(self, node: ir.Node) -> str:
        """The table of the zone ``node`` names, in ``data.json`` beside the envelopes: the
        zone is known when the pack compiles (E210), so its table, not an edit of the
        zone's name in ``data.json``, decides the offsets."""
        if isinstance(node, ir.EnvelopeRef):
            key = self.envelope_values[node.envelope][node.name]
        else:
            assert isinstance(node, ir.Const)
            key = node.value
        self.zone_tables[key] = zones.table(key).as_json()
        return f"{ZONES_REF}[{literal(key)}]"

    def hoist(self, node: ir.Node, term: str) -> str:
        """A term reading no quantifier variable that the pack computes more than once, as
        a rule, or read inside a quantifier: computed once per decision. (Each rule
        rego-cpp has computed makes every later builtin call dearer, so a term used once
        stays in line.)"""
        if any(isinstance(x, ir.Path) and x.local for x in ir.walk(node)):
            return term
        self.tests[term] += 1
        # inside a quantifier it would be computed again for every item
        return self.hoisted(term) if term in self.shared or self.scopes else term

    def take_instants(self) -> list[str]:
        """The instant rules made since the last call (emitted with the module that uses them)."""
        made = list(self.instants.values())
        self.instants.clear()
        return made

    # ------------------------------------------------------------ reads
    def base(self, path: ir.Path) -> tuple[str, Shape]:
        if path.local:
            for scope in reversed(self.scopes):
                if path.root in scope:
                    return scope[path.root].name, scope[path.root].shape
            raise AssertionError(f"unbound item {path.root}")  # pragma: no cover
        return f"input.{path.root}", self.shape.child(path.root)  # action, context or usage

    def path(self, path: ir.Path) -> str:
        """A read the checker proved present: references, schema defaults applied."""
        return self.read(path, len(path.steps)).code

    def shape_of(self, node: ir.Node) -> Shape:
        """What the schema says of a value, as far as it is a plain read."""
        if isinstance(node, ir.Default):
            node = node.path
        if not isinstance(node, ir.Path):
            return Shape.of({})
        _, shape = self.base(node)
        for step in node.steps:
            shape = shape.child(step)
        return shape

    def is_text(self, node: ir.Node) -> bool:
        """Whether ``node`` is a plain read of a value the schema makes a string."""
        return isinstance(node, ir.Path) and self.shape_of(node).only("string")

    def optional_read(self, path: ir.Path) -> Read:
        """A read that is ``null`` where a step is absent (``??`` and ``has``)."""
        first = path.optional[0] if path.optional else len(path.steps)
        return self.read(path, first)

    def default(self, path: ir.Path, fallback: str) -> str:
        """``path ?? fallback``."""
        read = self.optional_read(path)
        if read.never_null:
            return read.code
        if read.target is not None and read.shape.never_null:
            return f"object.get({read.target}, {read.keys}, {fallback})"
        return f"lib.or_else({read.code}, {fallback})"

    def read(self, path: ir.Path, first_optional: int) -> Read:
        """``path`` as Rego, ``null`` where an optional step is absent, schema defaults applied.

        Plain references while steps are known present (before ``first_optional``, or
        required keys of a present object); ``object.get`` on a value the schema makes an
        object; the ``lib.step`` helpers where neither is exact (any value, or a schema
        default below a value that may be absent).
        """
        code, shape = self.base(path)
        present, defaults = True, dict(path.defaults)
        index = 0
        while index < len(path.steps):
            key = path.steps[index]
            known_object = present and shape.only("object")
            if index not in defaults and (
                index < first_optional or (known_object and shape.requires(key))
            ):
                code, shape, index = f"{code}[{literal(key)}]", shape.child(key), index + 1
                continue
            if not known_object:
                break
            if index in defaults:
                child, fallback = shape.child(key), defaults[index]
                if fallback is None or not child.never_null:
                    break
                code = f"object.get({code}, {literal(key)}, {literal(fallback)})"
                shape, index = child, index + 1
                # never null now; an object below only if the default is one too
                present = isinstance(fallback, dict) or not child.only("object")
                continue
            stop = index
            while stop < len(path.steps) and stop not in defaults:
                stop += 1
            keys = path.steps[index:stop]
            target, rendered = code, literal(keys[0] if len(keys) == 1 else list(keys))
            code = f"object.get({target}, {rendered}, null)"
            for step in keys:
                shape = shape.child(step)
            if stop == len(path.steps):
                return Read(code, shape, target=target, keys=rendered)
            index, present = stop, False
        if index == len(path.steps):
            return Read(code, shape, never_null=present and shape.never_null)
        return Read(self.steps(code, path, index, first_optional), Shape.of({}))

    def steps(self, code: str, path: ir.Path, start: int, first_optional: int) -> str:
        """The generic read of ``path.steps[start:]`` below ``code``, with the helpers."""
        defaults = dict(path.defaults)
        for i in range(start, len(path.steps)):
            key = literal(path.steps[i])
            if i in defaults:
                code = f"lib.stepd({code}, {key}, {literal(defaults[i])})"
            elif i >= first_optional:
                code = f"lib.step({code}, {key})"
            else:
                code = f"{code}[{key}]"
        return code

    def reads(self, condition: ir.Node) -> dict[str, Read]:
        """The input and envelope values a condition reads, keyed as evidence names them."""
        found: dict[str, Read] = {}
        for node in ir.walk(condition):
            if isinstance(node, ir.Path) and not node.local:
                # as the rule saw it: schema defaults applied, null (left out) where absent
                found.setdefault(node.dotted, self.read(node, 0))
            elif isinstance(node, ir.EnvelopeRef):
                value = self.envelope_values.get(node.envelope, {}).get(node.name)
                found.setdefault(
                    node.dotted, Read(self.term(node), Shape.of({}), value is not None)
                )
        return dict(sorted(found.items()))

    def text(self, node: ir.Node) -> str:
        """``node`` as a message shows it (``runtime.fmt``): the type the schema or the
        envelope gives it picks the rendering, ``lib.fmt`` where neither says."""
        term = self.term(node)
        if isinstance(node, ir.EnvelopeRef):
            value = self.envelope_values.get(node.envelope, {}).get(node.name)
            if isinstance(value, str):
                return term
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                return f'concat(", ", {term})'
            if isinstance(value, int | float) and not isinstance(value, bool):
                return f"lib.num({term})"
        elif isinstance(node, ir.Path | ir.Default):
            shape = self.shape_of(node)
            if shape.only("string") and isinstance(node, ir.Path):
                return term
            if shape.only("number") and (isinstance(node, ir.Path) or self.numeric(node.fallback)):
                return f"lib.num({term})"
        elif _numeric_result(node):
            return f"lib.num({term})"
        return f"lib.fmt({term})"

    def numeric(self, node: ir.Node) -> bool:
        """Whether ``node`` is a number for sure (a `??` fallback, say)."""
        match node:
            case ir.Const(value=value):
                return isinstance(value, int | float) and not isinstance(value, bool)
            case ir.EnvelopeRef(envelope=envelope, name=name):
                value = self.envelope_values.get(envelope, {}).get(name)
                return isinstance(value, int | float) and not isinstance(value, bool)
        return isinstance(node, ir.Path) and self.shape_of(node).only("number")


def _numeric_result(node: ir.Node) -> bool:
    """Whether ``node`` computes a number: arithmetic on numbers, a count, a sum, a clock."""
    if isinstance(node, ir.Arith):
        return node.kind == f"num{node.op}num"
    numeric = ("len", "sum", "hour", "minute", "hour_in", "minute_in")
    return isinstance(node, ir.Call) and node.function in numeric


def comment_of(text: str) -> str:
    """Rego text on one comment line (what a hoisted rule holds, beside its use)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:160]


def _defined(node: ir.Node) -> bool:
    """Whether ``node`` always has a value where a rule reads it (the checker proved the
    reads present; ``??`` gives one where they are not)."""
    return isinstance(node, ir.Const | ir.EnvelopeRef | ir.Path | ir.Default)


# A body line must not start with these: rego-cpp reads `(` as a call of the line before
# and `-` as a subtraction from it (`some x in [1]` then `-2 < 1` is `[1] - 2 < 1`).
_NOT_FIRST = ("(", "-")


def _bare(term: str) -> str:
    """``term`` without the parentheses around all of it: a body line must not start with
    `(`, which rego-cpp reads as a call of the line before (comparisons bind looser)."""
    if not term.startswith("("):
        return term
    depth, quoted, escaped = 0, False, False
    for i, ch in enumerate(term):
        if quoted:  # inside a JSON string literal
            quoted, escaped = (escaped or ch != '"'), (not escaped and ch == "\\")
        elif ch == '"':
            quoted = True
        elif ch in "()":
            depth += 1 if ch == "(" else -1
            if depth == 0:
                return term[1:-1] if i == len(term) - 1 else term
    return term  # pragma: no cover


def _lines(body: list[str]) -> str:
    return "\n".join(f"\t{line}" for line in body)


def _disjuncts(node: ir.Node) -> list[ir.Node]:
    if isinstance(node, ir.BoolOp) and node.op == "or":
        return [*_disjuncts(node.left), *_disjuncts(node.right)]
    return [node]
