"""Stage 4, emit Python: the IR as a readable Python module.

The module holds ``evaluate(action, context, usage)`` and one ``explain_N``
per rule. ``evaluate`` reads every input field the rules use once, into locals
(``x0``, ``x1``, ...: timestamps already turned into instants where compared,
schema defaults already applied; a field under an optional object read from the local
holding that object; a ``??`` with a literal fallback read once), then tests each rule as
a plain ``if``. ``any``/``all`` over an input list test the local first, so an absent or
empty list, the usual case, builds no generator.
``explain_N``, given the locals a rule uses, returns the rule's evidence:
``(index, held, message values, bindings, comparisons)``.

When a rule holds, ``evaluate`` adds its record and raises ``rank`` to its
verdict's (``RANKS``); it returns the records, in pack order, and the rank, from
which the pack reads the decision. A rule that is a plain ``and`` chain of
comparisons, with a message that cannot fail, is *deferred*: its record is
``(index, *locals)``, and ``explain_N`` runs on those captured values only when
the verdict's records are read — every comparison of such a chain held, so the
evidence is a function of the values alone. Other rules (``or``, ``not``,
``any``/``all``) call ``explain_N`` at once; it re-evaluates the condition while
recording each comparison as it runs, and stops evaluation if the two disagree.
Deciding stays an ``if`` chain over locals; evidence costs only when a rule holds.

Rules that test one input field for equality with a string (``action.kind ==
"deploy"``, ``action.environment in ["production", "staging"]``) are indexed by
that field (``_plan``): ``evaluate`` looks at the field's value once and runs only
the rules written for that value, with that test left out of their ``if``.
A few values become an ``if``/``elif`` on the local; many become a dict from
value to a ``when_N`` function holding that value's rules (``I0 = {...}`` at the
end of the module). A field qualifies only where every conjunct before it cannot
raise, so skipping a rule never hides an error the chain would have met. Indexed
rules may run out of pack order; ``evaluate`` sorts the evidence before returning.
A rule tested by ``in`` sits in one bucket per value, so the number of buckets a
rule is copied into, nested indexes multiplied, is capped (``_MAX_COPIES``): the
emitted code stays within a constant factor of the pack, whatever its lists.

Nothing from a pack becomes Python syntax: literals go through ``repr``, field
names are subscripts with ``repr``'d keys, rule ids and variable names are
replaced by generated names (``x3``, ``v0``, ``E2``). ``sandbox`` checks the
result against an allowlist before it is compiled.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aigre_policy import ir
from aigre_policy.emitted import EmittedModule as EmittedModule  # re-exported
from aigre_policy.lattice import RULE_RANKS

_MIN_INDEXED = 3  # rules sharing a key path before an index pays for its lookup
_INLINE_VALUES = 4  # up to this many values: an if/elif on the local; more: a dict of when_N
_MAX_DEPTH = 2  # indexes inside indexes
# A rule keyed by `in [k values]` is copied into k buckets, and again inside nested indexes:
# the product of those k is capped, so the emitted code stays within a constant factor of
# the pack's. A rule whose list is longer runs in the plain chain (its `in` on a tuple).
_MAX_COPIES = 4
# A table's when_N all take the locals of every rule of the index: past this many, the
# index is an if/elif chain instead, which takes none (the table would grow as values x locals).
_MAX_TABLE_PARAMS = 48
# The rank a rule that holds raises ``rank`` to; a ``warn`` never decides.
RANKS = RULE_RANKS  # a permit holds the rank of allow; a warn has none
_RANK_NOTE = "the strongest verdict that held: -1 none, 0 permit, 1 escalate, 2 approval, 3 deny"


@dataclass(frozen=True, slots=True)
class _Key:
    """A conjunct a rule can be indexed by: ``path == value`` or ``path in [values]``."""

    at: int  # its position in the rule's `and` chain
    path: ir.Path
    local: str  # the hoisted local holding the path's value
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Block:
    steps: tuple[ir.Rule | _Index, ...]  # in pack order of each step's first rule
    decided: dict[int, frozenset[int]]  # rule -> conjuncts known true here


@dataclass(frozen=True, slots=True)
class _Index:
    """Rules run by the value of one input path: value -> the block for that value."""

    dotted: str
    local: str
    buckets: dict[str, _Block]
    first: int  # the lowest rule index it holds: where it sits among the other steps
    rules: int


@dataclass
class _Emitter:
    program: ir.Program
    header: str
    indexed: bool = True  # False: every rule in one if chain (the reference the tests compare)
    defer: bool = True  # False: every rule that holds is explained at once (the tests compare)
    hoisted: dict[tuple[str, str], str] = field(default_factory=dict)  # (how, dotted) -> local
    hoist_lines: list[str] = field(default_factory=list)
    envelope_names: dict[str, str] = field(default_factory=dict)
    scopes: list[dict[str, str]] = field(default_factory=list)
    used: set[str] = field(default_factory=set)  # hoisted locals the current rule reads
    counter: int = 0
    tests: dict[int, list[str]] = field(default_factory=dict)  # rule -> code of each conjunct
    whole: dict[int, str] = field(default_factory=dict)  # rule -> code of its condition
    keys: dict[int, dict[str, _Key]] = field(default_factory=dict)  # rule -> its key tests
    params: dict[int, frozenset[str]] = field(default_factory=dict)  # rule -> locals it reads
    functions: list[str] = field(default_factory=list)  # when_N, one per indexed value
    tables: list[str] = field(default_factory=list)  # I0 = {value: when_N, ...}
    deferred: set[int] = field(default_factory=set)  # rules whose explain_N waits for a reader

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # ------------------------------------------------------------ module
    def module(self) -> EmittedModule:
        explains, bindings = [], {}
        for rule in self.program.rules:
            self.used = set()
            conjuncts = _and_chain(rule.condition)
            self.tests[rule.index] = [self.expr(c, explain=False) for c in conjuncts]
            self.whole[rule.index] = self.expr(rule.condition, explain=False)
            self.keys[rule.index] = self.key_tests(conjuncts)
            if (
                self.defer
                and _conjuncts(rule.condition) is not None
                and all(_total(part) for part in rule.message if not isinstance(part, str))
            ):
                self.deferred.add(rule.index)
            explain, reads = self.explain(rule)
            bindings[rule.index] = tuple(dotted for dotted, _ in reads)
            self.params[rule.index] = frozenset(self.used)
            explains.append(explain.replace("PARAMS", ", ".join(_ordered(self.used))))
        plan = self.plan(list(self.program.rules), {}, 0)
        body = self.steps(plan, "    ")
        ordered = (
            [] if _in_order(plan) else ["    fired.sort()  # the indexes ran out of pack order"]
        )
        lines = [
            f"# {self.header}",
            "# Generated by aigre-policy: regenerate from the pack rather than edit.",
            "",
            "",
            "def evaluate(action, context, usage):",
            '    """The records of the rules that hold, in pack order, and the rank they reach."""',
            "    fired = []",
            f"    rank = -1  # {_RANK_NOTE}",
            *self.hoist_lines,
            *body,
            *ordered,
            "    return fired, rank",
            "",
            *explains,
            *self.functions,
        ]
        if self.tables:
            lines += ["", "", *self.tables]
        return EmittedModule(
            "\n".join(lines) + "\n", self.envelope_names, bindings, frozenset(self.deferred)
        )

    # ------------------------------------------------------------ indexing
    def key_tests(self, conjuncts: list[ir.Node]) -> dict[str, _Key]:
        """The conjuncts a rule could be indexed by, per input path (the first one for each).

        A key test is ``path == "text"`` or ``path in ["text", ...]``. Only those
        before the first conjunct that could raise count: running a rule only for
        its key's values must not skip an error the ``if`` chain would meet.
        """
        found: dict[str, _Key] = {}
        for at, node in enumerate(conjuncts):
            key = _key_test(node)
            if key is not None and key[0].dotted not in found:
                path, values = key
                found[path.dotted] = _Key(at, path, self.hoist(path), values)
            if not _total(node):
                break
        return found

    def plan(
        self,
        rules: list[ir.Rule],
        decided: dict[int, frozenset[int]],
        depth: int,
        copies: dict[int, int] | None = None,
    ) -> _Block:
        """``rules`` as steps: an index over the key path most of them test, again, then the rest.

        ``decided`` holds, per rule, the conjuncts the enclosing indexes already
        know to be true: its ``if`` leaves them out. ``copies`` holds, per rule, how
        many buckets of the enclosing indexes it already sits in (1 when absent).
        """
        copies = copies or {}
        steps: list[ir.Rule | _Index] = []
        pool = list(rules)

        def key(rule: ir.Rule, dotted: str) -> _Key | None:
            found = self.keys[rule.index].get(dotted)
            if found is None or found.at in decided.get(rule.index, ()):
                return None
            if len(found.values) * copies.get(rule.index, 1) > _MAX_COPIES:
                return None  # copying it into every bucket would outgrow the pack
            return found

        if not self.indexed or depth >= _MAX_DEPTH:
            return _Block(tuple(pool), decided)
        # per rule, the paths it could be indexed by; counted once, then kept up to date as
        # indexes take their rules (one pass per index, not one over the whole pool)
        usable = {r.index: [d for d in self.keys[r.index] if key(r, d)] for r in pool}
        counts = Counter(d for r in pool for d in usable[r.index])
        taken: set[int] = set()
        while counts:
            dotted, count = counts.most_common(1)[0]  # ties: the first met in pack order
            if count < _MIN_INDEXED:
                break
            members = [r for r in pool if r.index not in taken and dotted in usable[r.index]]
            for rule in members:
                taken.add(rule.index)
                counts.subtract(usable[rule.index])
            counts = +counts  # drop the paths no rule left in the pool is indexed by
            buckets: dict[str, list[ir.Rule]] = {}
            for rule in members:
                for value in self.keys[rule.index][dotted].values:
                    buckets.setdefault(value, []).append(rule)
            inner = {
                **decided,
                **{
                    r.index: decided.get(r.index, frozenset()) | {self.keys[r.index][dotted].at}
                    for r in members
                },
            }
            spread = {
                **copies,
                **{
                    r.index: copies.get(r.index, 1) * len(self.keys[r.index][dotted].values)
                    for r in members
                },
            }
            blocks = {
                value: self.plan(group, inner, depth + 1, spread)
                for value, group in buckets.items()
            }
            local = self.keys[members[0].index][dotted].local
            steps.append(_Index(dotted, local, blocks, members[0].index, len(members)))
        steps += [r for r in pool if r.index not in taken]
        steps.sort(key=lambda step: step.index if isinstance(step, ir.Rule) else step.first)
        return _Block(tuple(steps), decided)

    def steps(self, block: _Block, indent: str) -> list[str]:
        lines: list[str] = []
        for step in block.steps:
            if isinstance(step, ir.Rule):
                lines += self.rule_lines(step, block.decided.get(step.index, frozenset()), indent)
            else:
                lines += self.index_lines(step, indent)
        return lines

    def rule_lines(self, rule: ir.Rule, drop: frozenset[int], indent: str) -> list[str]:
        where = f"{indent}# {_comment(rule.id)} ({_comment(str(rule.span))})"
        tests = [code for at, code in enumerate(self.tests[rule.index]) if at not in drop]
        if not tests:  # an enclosing index decided the whole condition
            return [where, *self.fire_lines(rule, indent)]
        test = self.whole[rule.index] if not drop else tests[0]
        for code in tests[1:] if drop else ():  # nested as the `and` chain was: no deeper
            test = f"({test} and {code})"
        return [where, f"{indent}if {test}:", *self.fire_lines(rule, indent + "    ")]

    def fire_lines(self, rule: ir.Rule, indent: str) -> list[str]:
        """What a rule that holds does: add its record, raise ``rank`` to its verdict's.

        A deferred rule's record is its index and the locals ``explain_N`` takes;
        the others call ``explain_N`` now (it records comparisons as they run).
        """
        params = _ordered(self.params[rule.index])
        if rule.index in self.deferred:
            record = f"({rule.index}, " + "".join(f"{p}, " for p in params) + ")"
        else:
            record = f"explain_{rule.index}({', '.join(params)})"
        lines = [f"{indent}fired.append({record})"]
        rank = RANKS.get(rule.verdict)
        if rank == max(RANKS.values()):
            lines.append(f"{indent}rank = {rank}")
        elif rank is not None:
            lines += [f"{indent}if rank < {rank}:", f"{indent}    rank = {rank}"]
        return lines

    def index_lines(self, index: _Index, indent: str) -> list[str]:
        about = f"{_comment(index.dotted)}: {index.rules} rules, by value"
        params = (
            ["fired", "rank", *_ordered(self.needs(index))]
            if len(index.buckets) > _INLINE_VALUES
            else []
        )
        if not params or len(params) > _MAX_TABLE_PARAMS:
            lines = [f"{indent}# {about}"]
            for n, (value, block) in enumerate(index.buckets.items()):
                # the values exclude each other; a long elif chain would nest as deep as it is long
                keyword = "elif" if 0 < n < _INLINE_VALUES else "if"
                lines.append(f"{indent}{keyword} {index.local} == {_literal(value)}:")
                lines += self.steps(block, indent + "    ")
            return lines
        table = f"I{len(self.tables)}"
        self.tables.append("")  # reserve the name: the indexes nested below take the next ones
        slot_of_table = len(self.tables) - 1
        entries = []
        for value, block in index.buckets.items():
            name = f"when_{len(self.functions)}"
            self.functions.append("")  # reserve the number before nested indexes take theirs
            slot = len(self.functions) - 1
            body = self.steps(block, "    ")
            self.functions[slot] = "\n".join(
                [
                    "",
                    "",
                    f"def {name}({', '.join(params)}):",
                    f"    # {_comment(index.dotted)} == {_comment(repr(value))}",
                    *body,
                    "    return rank",
                ]
            )
            entries.append(f"    {_literal(value)}: {name},")
        self.tables[slot_of_table] = "\n".join(
            [f"{table} = {{  # {_comment(index.dotted)}", *entries, "}"]
        )
        return [
            f"{indent}# {about}: only the rules for this value run",
            f"{indent}on = {table}.get({index.local})",
            f"{indent}if on is not None:",
            f"{indent}    rank = on({', '.join(params)})",
        ]

    def needs(self, index: _Index) -> set[str]:
        """The locals the rules of an index read: the parameters of its ``when_N``."""
        found = {index.local}
        for block in index.buckets.values():
            for step in block.steps:
                found |= self.params[step.index] if isinstance(step, ir.Rule) else self.needs(step)
        return found

    def explain(self, rule: ir.Rule) -> tuple[str, list[tuple[str, str]]]:
        leaves = _conjuncts(rule.condition)
        if leaves is None:  # or, not, any/all around comparisons: record them as they run
            recorder, held = "    ev = _evidence()", self.expr(rule.condition, explain=True)
        else:  # `evaluate` saw every conjunct hold: each comparison was made and was true
            recorder, held = "", "True"
            records = "".join(f"{self.record(leaf)}, " for leaf in leaves[:_EVIDENCE_LIMIT])
        # the values the message interpolates; the verdict formats them when it is read.
        # Evaluated, not explained: a comparison in a message is a value, not evidence
        parts = [self.expr(p, explain=False) for p in rule.message if not isinstance(p, str)]
        message = "(" + "".join(f"{part}, " for part in parts) + ")"
        reads = self.reads(rule.condition)
        values = "".join(f"{code}, " for _, code in reads)
        lines = [
            "",
            "def explain_{index}(PARAMS):",
            f"    # {_comment(rule.id)} ({_comment(str(rule.span))})",
        ]
        if recorder:  # evaluated twice, so they must agree: else a compiler fault, fail closed
            lines += [
                recorder,
                f"    held = {held}",
                "    if not held:",
                "        _unheld({index})",
            ]
            lines.append(f"    return {{index}}, True, {message}, ({values}), ev")
        else:
            lines.append(f"    return {{index}}, True, {message}, ({values}), ({records})")
        text = "\n".join(lines)
        return text.replace("{index}", str(rule.index)), reads

    def reads(self, condition: ir.Node) -> list[tuple[str, str]]:
        """The input and envelope values a condition reads, as the locals that hold them.

        Input paths read as the rule saw them: schema defaults applied, ``None``
        (left out of the bindings) where an optional field is absent.
        """
        found: dict[str, str] = {}
        for node in ir.walk(condition):
            if isinstance(node, ir.Path) and not node.local:
                found.setdefault(node.dotted, self.hoist(node))
            elif isinstance(node, ir.EnvelopeRef):
                found.setdefault(node.dotted, self.envelope(node))
        return sorted(found.items())

    def record(self, node: ir.Compare | ir.Member) -> str:
        """The evidence of a comparison known to have held: ``(index, left, op, right, True)``."""
        if isinstance(node, ir.Compare):
            left, right = self.expr(node.left, True), self.expr(node.right, True)
            return f"({node.index}, {left}, {node.op!r}, {right}, True)"
        op = "not in" if node.negated else "in"
        item, coll = self.expr(node.item, True), self.expr(node.collection, True)
        return f"({node.index}, {item}, {op!r}, {coll}, True)"

    # ------------------------------------------------------------ expressions
    def expr(self, node: ir.Node, explain: bool) -> str:
        match node:
            case ir.Const(value=value):
                return _literal(value)
            case ir.ListOf(items=items):
                return "[" + ", ".join(self.expr(i, explain) for i in items) + "]"
            case ir.Path():
                return self.path(node)
            case ir.EnvelopeRef():
                return self.envelope(node)
            case ir.Not(operand=x):
                return f"(not {self.expr(x, explain)})"
            case ir.Neg(operand=x):
                return f"(-{self.expr(x, explain)})"
            case ir.BoolOp(op=op, left=a, right=b):
                return f"({self.expr(a, explain)} {op} {self.expr(b, explain)})"
            case ir.Compare(op=op, left=a, right=b, kind=kind, index=index):
                left, right = self.expr(a, explain), self.expr(b, explain)
                if explain:
                    as_time = ", True" if kind == "time" else ""
                    return f"ev.compare({index}, {left}, {op!r}, {right}{as_time})"
                if kind == "time":
                    left, right = self.instant(a, left), self.instant(b, right)
                return f"({left} {op} {right})"
            case ir.Member(negated=negated, item=a, collection=b, index=index, kind=kind):
                item, coll = self.expr(a, explain), self.expr(b, explain)
                if explain:
                    as_time = ", True" if kind == "time" else ""
                    return f"ev.member({index}, {item}, {coll}, {negated}{as_time})"
                if kind == "time":
                    found = f"_tin({self.instant(a, item)}, {coll})"
                    return f"(not {found})" if negated else found
                if isinstance(b, ir.ListOf) and all(isinstance(i, ir.Const) for i in b.items):
                    coll = "(" + "".join(f"{self.expr(i, False)}, " for i in b.items) + ")"
                return f"({item} {'not in' if negated else 'in'} {coll})"
            case ir.Arith(op=op, left=a, right=b, kind=kind):
                left, right = self.expr(a, explain), self.expr(b, explain)
                lkind, rkind = kind.split(op, 1)
                if lkind == "time":
                    left = self.instant(a, left)
                if rkind == "time":
                    right = self.instant(b, right)
                if op == "/":
                    return f"_div({left}, {right})"
                if op == "%":
                    return f"_rem({left}, {right})"
                if kind == "str+str":
                    return f"({left} + {right})"
                return f"_fin({left} {op} {right})"  # an overflow to infinity fails closed
            case ir.Default(path=path, fallback=ir.Const(value=scalar)) if (
                not path.local and type(scalar) in _SCALARS
            ):
                return self.hoist_default(path, scalar)
            case ir.Default(path=path, fallback=fallback):
                value, otherwise = self.path(path, absent_ok=True), self.expr(fallback, explain)
                if _cannot_fail(fallback):  # nothing to evaluate eagerly: a plain conditional
                    return f"({otherwise} if {value} is None else {value})"
                # the fallback is evaluated eagerly, as Rego's object.get does
                return f"_dflt({value}, {otherwise})"
            case ir.Has(path=path):
                return f"({self.path(path, absent_ok=True)} is not None)"
            case ir.Call(function=function, args=args):
                return f"f_{function}(" + ", ".join(self.expr(a, explain) for a in args) + ")"
            case ir.Quantifier(kind=kind, var=var, items=items, body=body):
                name = self.fresh("v")
                held = self.held_list(items)
                source = self.expr(items, explain) if held is None else held
                self.scopes.append({var: name})
                inner = self.expr(body, explain)
                self.scopes.pop()
                loop = f"_{kind}({inner} for {name} in {source})"
                if held is None:
                    return loop
                # an absent or empty list, the usual case, builds no generator
                return f"({loop} if {held} else {kind == 'all'})"
        raise AssertionError(f"unknown IR node {node!r}")  # pragma: no cover

    def held_list(self, items: ir.Node) -> str | None:
        """The local holding the list a quantifier runs over (``None`` when absent), if one
        does: an input path, or an input path read as ``[]`` when absent."""
        if isinstance(items, ir.Default) and _empty_list(items.fallback):
            items = items.path
        if isinstance(items, ir.Path) and not items.local:
            return self.hoist(items)
        return None

    def instant(self, node: ir.Node, code: str) -> str:
        """A timestamp as seconds since the epoch; input paths are converted once per call."""
        if isinstance(node, ir.Path) and not node.local:
            return self.hoist(node, as_instant=True)
        return f"_t({code})"

    def path(self, path: ir.Path, absent_ok: bool = False) -> str:
        if not path.local:
            return self.hoist(path)
        return read(self.base(path), path, absent_ok)

    def hoist(self, path: ir.Path, as_instant: bool = False) -> str:
        """The local ``evaluate`` reads ``path`` into once per call (``None`` when absent)."""
        name = self.hoist_unused(path, as_instant)
        self.used.add(name)
        return name

    def hoist_default(self, path: ir.Path, fallback: Any) -> str:
        """The local holding ``path ?? fallback`` for a literal ``fallback``: a pack reads the
        same field with the same fallback in many rules (``context.actor.kind ?? "llm"``)."""
        literal = _literal(fallback)
        key = (f"?? {literal}", path.dotted)
        if key not in self.hoisted:
            value = self.hoist_unused(path)
            name = f"x{len(self.hoisted)}"
            self.hoisted[key] = name
            note = f"{path.dotted} ?? {literal}"
            self.hoist_lines.append(
                f"    {name} = {literal} if {value} is None else {value}  # {_comment(note)}"
            )
        self.used.add(self.hoisted[key])
        return self.hoisted[key]

    def hoist_unused(self, path: ir.Path, as_instant: bool = False) -> str:
        """``hoist`` without counting the local as read by the current rule: a path's parent
        hoisted to read the path from is not one of the rule's values."""
        key = ("instant" if as_instant else "value", path.dotted)
        if key in self.hoisted:
            return self.hoisted[key]
        if as_instant:
            return self._hoisted(key, f"_t({self.hoist(path)})", f"{path.dotted} as an instant")
        parent = _absent_parent(path)
        if parent is not None:  # read from the parent's local, not walked from the root again
            return self._hoisted_below(key, path, self.hoist_unused(parent))
        fallback = _last_step_default(path)
        if fallback is None:
            return self._hoisted(key, read(path.root, path, absent_ok=True), path.dotted)
        # a conditional, not a _dflt call
        steps = "".join(f"[{step!r}]" for step in path.steps[:-1])
        name = self._hoisted(key, f"{path.root}{steps}.get({path.steps[-1]!r})", path.dotted)
        line = f"    {name} = {_literal(fallback)} if {name} is None else {name}"
        self.hoist_lines.append(f"{line}  # absent: the schema default")
        return name

    def _hoisted(self, key: tuple[str, str], code: str, note: str) -> str:
        name = f"x{len(self.hoisted)}"
        self.hoisted[key] = name
        self.hoist_lines.append(f"    {name} = {code}  # {_comment(note)}")
        return name

    def _hoisted_below(self, key: tuple[str, str], path: ir.Path, above: str) -> str:
        """``path`` read from ``above``, the local of its parent, as ``lookup`` reads it:
        absent unless the parent is an object (a schema giving ``properties`` without
        ``type`` lets a string through); the schema default only under an object."""
        code = f"{above}.get({path.steps[-1]!r}) if _isdict({above}) else None"
        name = self._hoisted(key, code, path.dotted)
        fallback = dict(path.defaults).get(len(path.steps) - 1)
        if fallback is not None:
            self.hoist_lines.append(
                f"    if {name} is None and _isdict({above}):"
                f"  # absent: the schema default\n        {name} = {_literal(fallback)}"
            )
        return name

    def base(self, path: ir.Path) -> str:
        for scope in reversed(self.scopes):
            if path.root in scope:
                return scope[path.root]
        raise AssertionError(f"unbound item {path.root}")  # pragma: no cover

    def envelope(self, ref: ir.EnvelopeRef) -> str:
        if ref.dotted not in self.envelope_names:
            self.envelope_names[ref.dotted] = f"E{len(self.envelope_names)}"
        return self.envelope_names[ref.dotted]


def read(code: str, path: ir.Path, absent_ok: bool) -> str:
    """Code reading ``path`` from ``code``.

    Steps known present are subscripts; an absent step the schema gives a
    default reads as that default. With ``absent_ok`` an optional or guarded
    step that is absent makes the whole read ``None``; without it the checker
    has proved every step present (or defaulted).
    """
    defaults = dict(path.defaults)
    maybe = set(path.optional) | (set(path.guarded) if absent_ok else set())
    for i, step in enumerate(path.steps):
        if i in maybe:
            rest = path.steps[i:]
            if any(j in defaults for j in range(i, len(path.steps))):
                pairs = "".join(
                    f"({s!r}, {_literal(defaults.get(j))}), "
                    for j, s in enumerate(path.steps)
                    if j >= i
                )
                return f"_getd({code}, ({pairs}))"
            if len(rest) == 1:
                return f"{code}.get({step!r})"
            return f"_get({code}, " + ", ".join(repr(s) for s in rest) + ")"
        if i in defaults:
            code = f"_dflt({code}.get({step!r}), {_literal(defaults[i])})"
        else:
            code = f"{code}[{step!r}]"
    return code


_EVIDENCE_LIMIT = 64  # as runtime.Evidence.LIMIT


def _conjuncts(condition: ir.Node) -> list[ir.Compare | ir.Member] | None:
    """The comparisons of an ``and`` chain whose every comparison is a conjunct, else ``None``.

    When such a condition holds, each of those comparisons ran and was true, so
    the evidence is known without running them again.
    """
    if isinstance(condition, ir.BoolOp) and condition.op == "and":
        left, right = _conjuncts(condition.left), _conjuncts(condition.right)
        return None if left is None or right is None else left + right
    if isinstance(condition, ir.Compare | ir.Member):
        inner = [*ir.walk(condition.left if isinstance(condition, ir.Compare) else condition.item)]
        if isinstance(condition, ir.Compare):
            inner += ir.walk(condition.right)
        else:
            inner += ir.walk(condition.collection)
        nested = any(isinstance(n, ir.Compare | ir.Member | ir.Quantifier) for n in inner)
        return None if nested else [condition]
    if any(isinstance(n, ir.Compare | ir.Member) for n in ir.walk(condition)):
        return None
    return []


def _absent_parent(path: ir.Path) -> ir.Path | None:
    """The path one step up from ``path`` when that parent may itself be absent (a step
    before the last one is optional or guarded), else ``None``: then ``read`` needs no walk."""
    last = len(path.steps) - 1
    if last < 1 or not any(i < last for i in (*path.optional, *path.guarded)):
        return None
    return ir.Path(
        path.root,
        path.steps[:last],
        optional=tuple(i for i in path.optional if i < last),
        guarded=tuple(i for i in path.guarded if i < last),
        defaults=tuple((i, v) for i, v in path.defaults if i < last),
        span=path.span,
    )


# the literal fallbacks a ``??`` is hoisted with: one value, nothing a rule could share
_SCALARS = frozenset({str, int, float, bool})


def _empty_list(node: ir.Node) -> bool:
    if isinstance(node, ir.Const):
        return type(node.value) is list and not node.value
    return isinstance(node, ir.ListOf) and not node.items


def _last_step_default(path: ir.Path) -> Any:
    """The schema default of ``path`` when only its last step may be absent and has one."""
    last = len(path.steps) - 1
    defaults = dict(path.defaults)
    if set(defaults) != {last} or set(path.optional) | set(path.guarded):
        return None
    return defaults[last]


def _in_order(block: _Block) -> bool:
    """Whether ``block`` adds evidence in pack order: plain rules, or one index of such blocks."""
    if all(isinstance(step, ir.Rule) for step in block.steps):
        return True
    only = block.steps[0]
    return (
        len(block.steps) == 1
        and isinstance(only, _Index)
        and all(_in_order(b) for b in only.buckets.values())
    )


def _and_chain(condition: ir.Node) -> list[ir.Node]:
    """The conjuncts of a top-level ``and`` chain, left to right (one node if there is none)."""
    if isinstance(condition, ir.BoolOp) and condition.op == "and":
        return _and_chain(condition.left) + _and_chain(condition.right)
    return [condition]


def _key_test(node: ir.Node) -> tuple[ir.Path, tuple[str, ...]] | None:
    """``(path, values)`` when ``node`` is ``path == "text"`` or ``path in ["text", ...]``."""
    match node:
        case ir.Compare(
            op="==", kind="value", left=ir.Path(local=False) as p, right=ir.Const(value=str() as v)
        ):
            return p, (v,)
        case ir.Compare(
            op="==", kind="value", left=ir.Const(value=str() as v), right=ir.Path(local=False) as p
        ):
            return p, (v,)
        case ir.Member(
            negated=False,
            kind="value",
            item=ir.Path(local=False) as p,
            collection=ir.ListOf(items=items),
        ):
            texts = [i.value for i in items if isinstance(i, ir.Const) and type(i.value) is str]
            if items and len(texts) == len(items):
                return p, tuple(dict.fromkeys(texts))
    return None


def _total(node: ir.Node) -> bool:
    """Whether evaluating ``node`` cannot raise: equality and membership of plain values.

    Arithmetic, calls, quantifiers, orderings (``None < 1`` raises) and
    timestamps (parsed) are left out.
    """
    match node:
        case ir.Const() | ir.EnvelopeRef() | ir.Path(local=False):
            return True
        case ir.Has(path=ir.Path(local=False)):
            return True
        case ir.ListOf(items=items):
            return all(_total(i) for i in items)
        case ir.Not(operand=x):
            return _total(x)
        case ir.BoolOp(left=a, right=b):
            return _total(a) and _total(b)
        case ir.Default(path=ir.Path(local=False), fallback=fallback):
            return _total(fallback)
        case ir.Compare(op="==" | "!=", kind="value", left=a, right=b):
            return _total(a) and _total(b)
        case ir.Member(kind="value", item=a, collection=ir.ListOf() as b):
            return _total(a) and _total(b)
    return False


def _cannot_fail(node: ir.Node) -> bool:
    """Whether evaluating ``node`` can neither raise nor cost more than a name lookup."""
    match node:
        case ir.Const() | ir.EnvelopeRef():
            return True
        case ir.Path(local=False):
            return True  # a hoisted local
        case ir.ListOf(items=items):
            return all(_cannot_fail(i) for i in items)
    return False


def _ordered(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda name: int(name[1:]))


def _literal(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("non-finite number in a pack")  # the parser rejects these first
    if isinstance(value, bool | int | float | str) or value is None:
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise TypeError(f"no literal form for {type(value).__name__}")


def _comment(text: str) -> str:
    """Text safe inside a ``#`` comment: one line, printable."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:120]


def emit_python(
    program: ir.Program, header: str, indexed: bool = True, defer: bool = True
) -> EmittedModule:
    """The Python source of a checked pack.

    ``indexed=False`` tests every rule in turn; ``defer=False`` explains every rule
    that holds at once. Both are references the tests compare the default against.
    """
    return _Emitter(program, _comment(header), indexed, defer).module()
