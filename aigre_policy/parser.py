"""Stage 1, parse: source text to AST, with syntax errors as diagnostics.

This is the only module that knows Lark's parser. It returns a ``Module``
(or ``None`` when the file does not parse) and the diagnostics it found; it
never raises for bad input. Nodes are built as Lark's LALR parser reduces each
rule, with no parse tree in between (see "building during the parse").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any

from lark import Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

try:  # what building during the parse reads of Lark; without it, the tree is transformed
    from lark.parse_tree_builder import (
        ChildFilter,
        ChildFilterLALR,
        ChildFilterLALR_NoPlaceholders,
        ExpandSingleChild,
        PropagatePositions,
    )
    from lark.parsers.lalr_analysis import Reduce
    from lark.parsers.lalr_parser import _Parser as _LalrParser

    _BUILDS_DURING_PARSE = True
except ImportError:  # pragma: no cover - a Lark that moved these
    _BUILDS_DURING_PARSE = False

from aigre_policy import nodes as n
from aigre_policy.diagnostics import Diagnostic, Span, error
from aigre_policy.grammar import parser as lark_parser

DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_INT = 2**63 - 1
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "{": "{", "}": "}"}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
# How deep a file's syntax tree may nest (parentheses add no level): every later stage walks
# the tree recursively, and this depth keeps them all well inside Python's recursion limit.
MAX_NESTING = 100


@dataclass(frozen=True, slots=True)
class ParseResult:
    module: n.Module | None
    diagnostics: list[Diagnostic]


def parse_module(text: str, file: str) -> ParseResult:
    """Parse one ``.aigre`` file."""
    diagnostics: list[Diagnostic] = []
    builder = _AstBuilder(file, diagnostics)
    try:
        module = builder.build(text, "start")
    except UnexpectedInput as exc:
        return ParseResult(None, syntax_errors(exc, text, file))
    except _TooDeep as exc:
        return ParseResult(None, [exc.diagnostic])
    return ParseResult(module, diagnostics)


def parse_expression(text: str, file: str = "<expr>") -> tuple[n.Expr | None, list[Diagnostic]]:
    """Parse a lone expression, for tests and tools."""
    diagnostics: list[Diagnostic] = []
    builder = _AstBuilder(file, diagnostics)
    try:
        expr = builder.build(text, "expr")
    except UnexpectedInput as exc:
        return None, [_syntax_error(exc, text, file)]
    except _TooDeep as exc:
        return None, [exc.diagnostic]
    return expr, diagnostics


class _TooDeep(Exception):
    """The text parsed, but nests past ``MAX_NESTING``: its E004 replaces every other
    diagnostic."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _nesting_error(tree: Tree, builder: _AstBuilder) -> Diagnostic | None:
    """E004 at the first node (in source order) nested past ``MAX_NESTING``, found without
    recursing."""
    stack = [(tree, 0)]
    too_deep: list[Tree] = []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            too_deep.append(node)
            continue
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    if not too_deep:
        return None
    first = min(too_deep, key=lambda node: (getattr(node.meta, "line", 0), node.meta.column))
    return error(
        "E004",
        f"expression nests more than {MAX_NESTING} levels deep",
        builder.span(_meta_pos(first.meta)),
        "split the condition into several rules, or test membership with "
        "`x in [...]` instead of chaining `or`",
    )


def _meta_pos(meta: Any) -> _Pos:
    if getattr(meta, "empty", True):
        return None
    return (meta.line, meta.column, meta.end_line, meta.end_column)


# ------------------------------------------------------------------ building during the parse
#
# Lark's LALR parser calls one function per reduced rule; by default each builds a parse-tree
# node, and a transformer then walks that tree. Here each function builds the ``nodes`` object
# at once, so no tree is made. ``_Reduce`` keeps what Lark's tree gave: the children a rule
# keeps (read from Lark's own child filters, so from the grammar), each node's text spanning
# all its children, anonymous tokens and parentheses included (Lark's
# ``propagate_positions``), and each node's depth, for the nesting limit.

# (line, column, end_line, end_column) of a node, or None when it covers no text
_Pos = tuple[int, int, int, int] | None
# a rule's children, for the builder methods below its rule named `list`
_Children = list[Any]


class _Part:
    """A reduced rule on the parser's stack: its value, the text it covers and its height
    (how many nodes deep the tree under it goes; a rule inlined into its parent, one whose
    name starts with ``_``, holds ``children`` instead and adds no level)."""

    __slots__ = ("children", "height", "pos", "value")

    def __init__(self, value: Any, height: int, pos: _Pos, children: list[Any] | None = None):
        self.value = value
        self.height = height
        self.pos = pos
        self.children = children


def _extent(children: list[Any]) -> _Pos:
    """The text from the first to the last of ``children`` that covers any."""
    first: Any = None
    last: Any = None
    for child in children:
        if type(child) is _Part:
            if child.pos is not None:
                first = child.pos
                break
        elif isinstance(child, Token):
            first = (child.line, child.column, child.end_line, child.end_column)
            break
    if first is None:
        return None
    for child in reversed(children):
        if type(child) is _Part:
            if child.pos is not None:
                last = child.pos
                break
        elif isinstance(child, Token):
            last = (child.line, child.column, child.end_line, child.end_column)
            break
    return (first[0], first[1], last[2], last[3])


# A rule's shape, from the grammar: which children it keeps, ``(index, splice, nones)``:
# splice in the children of an inlined rule, put ``nones`` placeholders (``[x]`` absent)
# before; the placeholders after the last; whether it passes a single kept child through
# (``?rule``).
_Shape = tuple[list[tuple[int, bool, int]], int, bool]


class _Reduce:
    """What the parser calls for one grammar rule: the node built from its children."""

    __slots__ = ("append_none", "include", "method", "passes_single")

    def __init__(self, shape: _Shape, method: Callable[[_Pos, list[Any]], Any] | None):
        self.include, self.append_none, self.passes_single = shape
        self.method = method  # None: an inlined rule, its parent takes its children

    def __call__(self, children: list[Any]) -> Any:
        pos = _extent(children)
        kept: list[Any] = []
        for index, splice, nones in self.include:
            if nones:
                kept += [None] * nones
            if splice:
                kept += children[index].children
            else:
                kept.append(children[index])
        if self.append_none:
            kept += [None] * self.append_none
        if self.passes_single and len(kept) == 1:
            single = kept[0]
            if pos is not None and type(single) is _Part:
                single.pos = pos  # its text now covers, say, its parentheses
            return single
        if self.method is None:
            return _Part(None, 0, pos, kept)
        height = 0
        values = []
        for child in kept:
            if type(child) is _Part:
                if child.height > height:
                    height = child.height
                values.append(child.value)
            else:
                values.append(child)
        if height > MAX_NESTING:  # past the limit: the file gets E004 alone, skip the node
            return _Part(None, height + 1, pos)
        return _Part(self.method(pos, values), height + 1, pos)


_only_child = itemgetter(0)


def _missing(name: str) -> Callable[[_Pos, list[Any]], Any]:
    def fail(pos: _Pos, children: list[Any]) -> Any:
        raise AssertionError(f"the grammar rule {name} has no builder")

    return fail


def _shape(rule: Any, wrapper_chain: list[Any]) -> _Shape | None:
    """The shape of ``rule`` from the wrappers Lark made for it; None for one not known."""
    include = [(i, False, 0) for i in range(len(rule.expansion))]
    append_none = 0
    passes_single = False
    for wrapper in wrapper_chain:
        if wrapper is PropagatePositions:
            continue
        if wrapper is ExpandSingleChild:
            passes_single = True
        elif getattr(wrapper, "func", None) in (ChildFilterLALR, ChildFilter):
            include, append_none = list(wrapper.args[0]), wrapper.args[1]
        elif getattr(wrapper, "func", None) is ChildFilterLALR_NoPlaceholders:
            include = [(*pair, 0) for pair in wrapper.args[0]]
        else:
            return None
    well_formed = all(
        len(entry) == 3 and 0 <= entry[0] < len(rule.expansion) and isinstance(entry[2], int)
        for entry in include
    )
    if not well_formed or not isinstance(append_none, int):
        return None
    return include, append_none, passes_single


@cache
def _reduce_plan() -> tuple[Any, list[tuple[Any, str, _Shape]]] | None:
    """Per grammar rule: its callback name and shape. ``None`` when this Lark does not
    expose what building during the parse needs (then the parse tree is built and
    transformed, as Lark documents)."""
    if not _BUILDS_DURING_PARSE:
        return None
    lark = lark_parser()
    try:
        table = lark.parser.parser._parse_table
        make_thread = lark.parser._make_lexer_thread
        rule_builders = lark._parse_tree_builder.rule_builders
    except AttributeError:
        return None
    del make_thread
    # the table's own rule objects as keys: the parser finds its callback by identity
    in_table = {
        arg: arg
        for state in table.states.values()
        for action, arg in state.values()
        if action is Reduce
    }
    plan = []
    for rule, wrapper_chain in rule_builders:
        name = rule.alias or rule.options.template_source or rule.origin.name
        shape = _shape(rule, wrapper_chain)
        if shape is None:
            return None
        plan.append((in_table.get(rule, rule), name, shape))
    return table, plan


# ------------------------------------------------------------------ syntax errors

_TOKEN_TEXT = {
    "LBRACE": "{",
    "RBRACE": "}",
    "LPAR": "(",
    "RPAR": ")",
    "LSQB": "[",
    "RSQB": "]",
    "COLON": ":",
    "COMMA": ",",
    "DOT": ".",
    "EQUAL": "=",
    "STRING": "a string",
    "NUMBER": "a number",
    "DURATION": "a duration",
    "NAME": "a name",
    "RULE_ID": "a rule id",
    "DECISION": "a decision",
    "COMPARE": "a comparison",
    "ADD": "`+` or `-`",
    "MUL": "`*`, `/` or `%`",
    "AGGREGATE": "`sum`, `count` or `max`",
    "QUANTIFIER": "`any` or `all`",
    "AT_LEAST": "`at least`",
    "$END": "end of file",
}


# Lark's LALR tables offer every terminal that may follow; these say it the way a reader thinks.
_EXPRESSION_START = {"QUANTIFIER", "LPAR"}  # only an expression can start with these
_OPERATOR = {"COMPARE", "ADD", "MUL", "DOT"}  # only a complete operand can be followed by these
_CONSTANT_START = {"NUMBER", "STRING", "DURATION", "LSQB"}


def _expected_text(expected: set[str]) -> str:
    if expected & _EXPRESSION_START:
        return "; expected an expression: a value, a field such as `action.kind`, `(`, `not`"
    if expected & _OPERATOR:
        return "; expected an operator such as `==`, `in`, `and` or `+`"
    if expected >= _CONSTANT_START:
        return "; expected a value: a number, duration, string, true, false, list or object"
    names = []
    for term in sorted(expected):
        if term in _TOKEN_TEXT:
            names.append(_TOKEN_TEXT[term])
        elif term.startswith("VERDICT_"):
            names.append("a verdict")
        elif term.startswith("__ANON"):
            continue
        else:
            names.append(f"`{term.lower()}`")
    names = sorted(dict.fromkeys(names))
    if not names:
        return ""
    if len(names) > 6:
        return "; expected one of " + ", ".join(names[:6]) + ", ..."
    return "; expected " + (names[0] if len(names) == 1 else "one of " + ", ".join(names))


def _chained(token: Token, expected: set[str], text: str) -> bool:
    """Whether ``token`` starts a second comparison right after a whole one."""
    if "AND" not in expected or "COMPARE" in expected:
        return False
    if token.type == "NOT":  # `not in`
        end = token.end_pos if token.end_pos is not None else len(text)
        return re.match(r"\s*in\b", text[end:]) is not None
    return token.type in ("COMPARE", "IN")


def _token_position(token: Token) -> tuple[int, int, int, int]:
    """line, column, end line, end column of ``token``: the lexer positions every token."""
    line, column, end_line, end_column = token.line, token.column, token.end_line, token.end_column
    assert line is not None and column is not None
    assert end_line is not None and end_column is not None
    return line, column, end_line, end_column


# ------------------------------------------------------------------ every syntax error at once
#
# After the first error, the text up to the end of the declaration it sits in is blanked out
# (spaces, newlines kept, so every later position stays where it was): up to the next
# declaration that starts a line. The rest is parsed again, until it parses or the errors
# stop moving forward. A file with three broken rules gives three E001 in one run. The file
# still contributes no module: a pack with a syntax error does not compile, and the checker
# holds back what a missing declaration would make it say
# (docs/diagnostics.md#when-a-file-does-not-parse).

_DECLARATION = re.compile(r"^(?:envelope|rule|usage|test|invariant)\b", re.MULTILINE)
_MAX_SYNTAX_ERRORS = 50  # per file; past it the file is surely not aigre


def syntax_errors(first: UnexpectedInput, text: str, file: str) -> list[Diagnostic]:
    """Every syntax error of ``text``, ``first`` (the parse's own) first."""
    found = [_syntax_error(first, text, file)]
    starts = [text.count("\n", 0, m.start()) + 1 for m in _DECLARATION.finditer(text)]
    lines = text.split("\n")
    exc: UnexpectedInput | None = first
    last_line = 0
    while exc is not None and len(found) < _MAX_SYNTAX_ERRORS:
        line = getattr(exc, "line", None)
        column = getattr(exc, "column", None)
        if not isinstance(line, int) or line < 1 or line <= last_line:
            break  # the end of the file, or no progress
        last_line = line
        begin, end = _broken_declaration(starts, line, column, len(lines))
        if begin is None:
            break
        # everything up to the end of the broken declaration: what came before it parsed
        # (or was reported), so each parse reads only what is left and the whole search
        # stays linear in the file, whatever the number of errors
        for index in range(end - 1):
            lines[index] = " " * len(lines[index])
        try:
            lark_parser().parse("\n".join(lines), start="start")
            exc = None
        except UnexpectedInput as again:
            exc = again
            if isinstance(getattr(again, "line", None), int) and again.line > last_line:
                found.append(_syntax_error(again, text, file))
        except Exception:  # a later parse that fails otherwise: the errors so far stand
            exc = None
    return found


def _broken_declaration(
    starts: list[int], line: int, column: Any, total: int
) -> tuple[int | None, int]:
    """The lines ``[begin, end)`` of the declaration an error at ``line`` belongs to: a
    declaration keyword at the start of its line closes the one before it (a missing `}`)."""
    if column == 1 and line in starts:
        before = [s for s in starts if s < line]
        return (before[-1] if before else None), line
    begin = max((s for s in starts if s <= line), default=1)
    end = min((s for s in starts if s > line), default=total + 1)
    return begin, end


# Curated messages for the common mistakes, matched by the parser state they leave
# (Lark's ``match_examples``): key -> (examples, message made from the unexpected token).
_CURATED: dict[str, tuple[list[str], Callable[[str], str], str | None]] = {
    "approver-list": (
        ["rule r { require_approval by finops when true }"],
        lambda t: f'approver groups are a list: `by ["{t}"]`',
        'write the groups as strings in brackets, e.g. `by ["finops", "sre-oncall"]`',
    ),
    "escalate-list": (
        ["rule r { escalate to reviewers when true }"],
        lambda t: f'escalation groups are a list: `to ["{t}"]`',
        'write the groups as strings in brackets, e.g. `escalate to ["sre-leads"] when ...`',
    ),
    "rule-id-string": (
        ['rule "r" { deny when true }'],
        lambda t: f"a rule id is a name, not a string: `rule {t.strip(chr(34)) or 'my-rule'} {{`",
        "rule ids are lowercase words joined by `-`, e.g. `rule llm-outside-its-remit {`",
    ),
    "test-name-word": (
        ["test t { expect allow }"],
        lambda t: f'a test\'s name is a string: `test "{t}" {{`',
        'name the test with what it shows, e.g. `test "an LLM may roll back" {`',
    ),
    "envelope-equals": (
        ["envelope e { a = 1 }"],
        lambda t: "envelope values are written `name: value`, not `name = value`",
        "e.g. `monthly_budget_usd: 2000`",
    ),
    "because-word": (
        ["rule r { deny when true because r }"],
        lambda t: 'a `because` message is a string: `because "..."`',
        'e.g. `because "{action.kind} on {action.target} cannot be undone"`',
    ),
    "expect-by-nothing": (
        ['test "t" { expect allow by }'],
        lambda t: "`expect ... by` names the rules that fire",
        "to say no rule fires, write `expect allow by no rule`; to leave the rules open, "
        "leave `by` out",
    ),
}


_AFTER_A_DECLARATION = "envelope e0 { a: 1 }\n"


@cache
def _curated_errors() -> tuple[tuple[str, Any, frozenset[str], str], ...]:
    """Each curated example's error: (key, parser state, tokens accepted there, token type).

    Lark compares parser states by stack depth and state (``match_examples``): the first
    declaration of a file and a later one differ, so each example is tried in both places.
    """
    found = []
    for key, (examples, _, _) in _CURATED.items():
        for example in [*examples, *(_AFTER_A_DECLARATION + e for e in examples)]:
            try:
                lark_parser().parse(example, start="start")
            except UnexpectedToken as exc:
                found.append((key, exc.state, frozenset(exc.accepts or ()), exc.token.type))
    return tuple(found)


def _curated(exc: UnexpectedInput) -> tuple[str, str | None] | None:
    """The curated message and hint for ``exc``, when it is one of the common mistakes: the
    parser stopped in the state an example leaves it in, on the same kind of token."""
    if not isinstance(exc, UnexpectedToken) or exc.token.type == "$END":
        return None
    accepts = frozenset(exc.accepts or ())
    for key, state, example_accepts, token_type in _curated_errors():
        if state == exc.state and example_accepts == accepts and token_type == exc.token.type:
            _, message, hint = _CURATED[key]
            return message(str(exc.token.value)), hint
    return None


def _syntax_error(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    line = getattr(exc, "line", 1) or 1
    column = getattr(exc, "column", 1) or 1
    hint = None
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream if exc.pos_in_stream is not None else len(text)
        char = text[at] if at < len(text) else ""
        message = f"unexpected character `{char}`"
        rest = text[at : at + 2]
        hint = {"&&": "write `and`", "||": "write `or`"}.get(rest)
        if hint is None and char == "!":
            hint = "write `not`"
        elif char == "'":
            hint = 'strings use double quotes: "like this"'
        elif char == "=" and rest != "==":
            hint = "compare with `==`"
        width = 1
    elif isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token: Token = exc.token
        message = f"unexpected `{token.value}`" + _expected_text(set(exc.expected))
        width = max(1, len(str(token.value)))
        if _chained(token, exc.expected, text):
            # after a whole comparison: the generic "expected `==`, `in`..." would contradict
            message = f"unexpected `{token.value}`: comparisons do not chain"
            hint = "join them with `and`: write `1 < x and x < 5`, not `1 < x < 5`"
        elif token.type == "EQUAL" and "COMPARE" in exc.expected:
            hint = "compare with `==`; `=` only names a usage or an override"
        elif token.value in ("&&", "||"):
            hint = "write `and` / `or`"
        elif "WHEN" in exc.expected and token.type != "WHEN":
            hint = "a verdict is written `deny when <condition>`"
        elif token.type == "NAME" and "RBRACE" in exc.expected:
            hint = "check the line before: a field or clause may be incomplete"
        curated = _curated(exc)
        if curated is not None:
            message, hint = curated
    else:
        expected = set(getattr(exc, "expected", ()) or ())
        message = "unexpected end of file" + _expected_text(expected)
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        width = 1
        if isinstance(exc, UnexpectedEOF | UnexpectedToken):
            hint = "a block may be missing its closing `}`"
    span = Span(file, line, column, line, column + width)
    return error("E001", message, span, hint)


# ------------------------------------------------------------------ text to AST


class _AstBuilder:
    """Builds ``nodes`` while Lark parses; bad literals become diagnostics, not exceptions."""

    def __init__(self, file: str, diagnostics: list[Diagnostic]):
        self.file = file
        self.diagnostics = diagnostics
        # In an interpolation, column ``c`` of its (unescaped) text sits at column
        # ``columns[c - 1]`` of ``line`` in the file; outside one, ``line`` is 0.
        self.columns: list[int] = []
        self.line = 0
        self._callbacks: dict[Any, Callable[[list[Any]], Any]] | None = None

    def build(self, text: str, start: str) -> Any:
        """The node of ``text`` read as ``start``. Raises Lark's ``UnexpectedInput`` when
        it does not parse and ``_TooDeep`` when it nests past the limit."""
        plan = _reduce_plan()
        if plan is None:
            return self._build_from_tree(text, start)
        table, rules = plan
        if self._callbacks is None:
            self._callbacks = self._make_callbacks(rules)
        lark = lark_parser()
        thread: Any = lark.parser._make_lexer_thread(text)
        root = _LalrParser(table, self._callbacks).parse(thread, start)
        if root.height > MAX_NESTING + 1:  # a node sits deeper than MAX_NESTING below root
            self._raise_too_deep(text, start)
        return root.value

    def _make_callbacks(self, rules: list[Any]) -> dict[Any, Callable[[list[Any]], Any]]:
        callbacks: dict[Any, Callable[[list[Any]], Any]] = {}
        for rule, name, shape in rules:
            if len(rule.expansion) == 1 and shape == ([(0, False, 0)], 0, True):
                # `?expr: or_expr` and the like: the one child passes through, text and all
                callbacks[rule] = _only_child
                continue
            if name.startswith("_"):
                callbacks[rule] = _Reduce(shape, None)
            else:
                callbacks[rule] = _Reduce(shape, getattr(self, name, None) or _missing(name))
        return callbacks

    def _raise_too_deep(self, text: str, start: str) -> None:
        """Rare: the tree is built only to point at the first node past the limit,
        exactly where the tree-walking check always pointed."""
        too_deep = _nesting_error(lark_parser().parse(text, start=start), self)
        assert too_deep is not None
        raise _TooDeep(too_deep)

    def _build_from_tree(self, text: str, start: str) -> Any:
        tree = lark_parser().parse(text, start=start)
        too_deep = _nesting_error(tree, self)
        if too_deep is not None:
            raise _TooDeep(too_deep)
        return _TreeBuilder(self).transform(tree)

    # spans -----------------------------------------------------------------
    def _column(self, column: int) -> int:
        return self.columns[min(column, len(self.columns)) - 1]

    def span(self, pos: _Pos) -> Span:
        if pos is None:
            return Span(self.file, 1, 1, 1, 1)
        if self.line:
            start, end = self._column(pos[1]), self._column(pos[3])
            return Span(self.file, self.line, start, self.line, end)
        return Span(self.file, pos[0], pos[1], pos[2], pos[3])

    def token_span(self, token: Token) -> Span:
        line, column, end_line, end_column = _token_position(token)
        if self.line:
            start, end = self._column(column), self._column(end_column)
            return Span(self.file, self.line, start, self.line, end)
        return Span(self.file, line, column, end_line, end_column)

    # module ----------------------------------------------------------------
    def start(self, pos: _Pos, children: list[Any]) -> n.Module:
        return n.Module(self.file, tuple(children), self.span(pos))

    def envelope(self, pos: _Pos, children: list[Any]) -> n.Envelope:
        name, *fields = children
        return n.Envelope(str(name), tuple(fields), self.span(pos))

    def envelope_field(self, pos: _Pos, children: list[Any]) -> n.EnvelopeField:
        name, value = children
        return n.EnvelopeField(str(name), value, self.span(pos))

    # rules -----------------------------------------------------------------
    def rule(self, pos: _Pos, children: list[Any]) -> n.Rule:
        rule_id, *parts = children
        return n.Rule(
            id=str(rule_id),
            meta=tuple(p for p in parts if isinstance(p, n.Meta)),
            verdicts=tuple(p for p in parts if isinstance(p, n.VerdictClause)),
            because=tuple(p for p in parts if isinstance(p, n.Message)),
            span=self.span(pos),
            id_span=self.token_span(rule_id),
        )

    def meta(self, pos: _Pos, children: list[Any]) -> n.Meta:
        key, (value, is_word) = children
        return n.Meta(str(key), value, is_word, self.span(pos))

    def meta_string(self, pos: _Pos, children: list[Any]) -> tuple[str, bool]:
        return self._string(children[0]), False

    def meta_word(self, pos: _Pos, children: list[Any]) -> tuple[str, bool]:
        return str(children[0]), True

    def meta_list(self, pos: _Pos, children: list[Any]) -> tuple[tuple[str, ...], bool]:
        return tuple(self._string(t) for t in children if t is not None), False

    def group_list(self, pos: _Pos, children: list[Any]) -> tuple[str, ...]:
        return tuple(self._string(t) for t in children if t is not None)

    def verdict(self, pos: _Pos, children: list[Any]) -> n.VerdictClause:
        keyword, *rest = children
        condition = rest[-1]
        groups = rest[0] if len(rest) == 2 and rest[0] is not None else ()
        return n.VerdictClause(str(keyword), groups, condition, self.span(pos))

    def because(self, pos: _Pos, children: list[Any]) -> n.Message:
        return self._message(children[0], self.span(pos))

    # usage -----------------------------------------------------------------
    def usage(self, pos: _Pos, children: list[Any]) -> n.Usage:
        name, aggregate, argument, (window, seconds), filter_ = children
        return n.Usage(
            str(name), str(aggregate), argument, window, seconds, filter_, self.span(pos)
        )

    def calendar_window(self, pos: _Pos, children: list[Any]) -> tuple[str, None]:
        return str(children[0]), None

    def sliding_window(self, pos: _Pos, children: list[Any]) -> tuple[str, float]:
        token = children[0]
        return f"last {token}", self._duration_seconds(token)

    # tests -----------------------------------------------------------------
    def test(self, pos: _Pos, children: list[Any]) -> n.Test:
        name, *parts = children
        return n.Test(
            self._string(name),
            tuple(p for p in parts if isinstance(p, n.TestInput)),
            tuple(p for p in parts if isinstance(p, n.TestOverride)),
            tuple(p for p in parts if isinstance(p, n.Expectation)),
            self.span(pos),
        )

    def input_root(self, pos: _Pos, children: list[Any]) -> str:
        return str(children[0])

    def test_input_inline(self, pos: _Pos, children: list[Any]) -> n.TestInput:
        root, value = children
        return n.TestInput(root, value, None, self.span(pos))

    def test_input_file(self, pos: _Pos, children: list[Any]) -> n.TestInput:
        root, path, changes = children  # `from "FILE" { field: value }`: the file, changed
        return n.TestInput(root, changes, self._string(path), self.span(pos))

    def test_with(self, pos: _Pos, children: list[Any]) -> n.TestOverride:
        envelope, name, value = children
        return n.TestOverride(str(envelope), str(name), value, self.span(pos))

    def expect_decision(self, pos: _Pos, children: list[Any]) -> n.Expectation:
        decision, by = children
        at_least, tokens = by if by is not None else (False, [])
        return n.Expectation(
            str(decision),
            tuple(str(t) for t in tokens or ()),
            None,
            self.span(pos),
            tuple(self.token_span(t) for t in tokens or ()),
            at_least=at_least,
            no_rules=by is not None and tokens is None,
        )

    def expect_by(self, pos: _Pos, children: list[Any]) -> tuple[bool, list[Token]]:
        at_least, *tokens = children
        return at_least is not None, tokens

    def expect_by_no_rule(self, pos: _Pos, children: list[Any]) -> tuple[bool, None]:
        return False, None  # `by no rule`: exactly no rule fires

    def expect_silent(self, pos: _Pos, children: list[Any]) -> n.Expectation:
        return n.Expectation(
            None,
            (),
            None,
            self.span(pos),
            tuple(self.token_span(t) for t in children),
            silent=tuple(str(t) for t in children),
        )

    def expect_evidence(self, pos: _Pos, children: list[Any]) -> n.Expectation:
        *names, value = children
        path = ".".join(str(name) for name in names)
        return n.Expectation(None, (), None, self.span(pos), evidence=(path, value))

    def expect_message(self, pos: _Pos, children: list[Any]) -> n.Expectation:
        return n.Expectation(None, (), self._string(children[0]), self.span(pos))

    def invariant(self, pos: _Pos, children: list[Any]) -> n.Invariant:
        name, condition, (relation, decision) = children
        return n.Invariant(self._string(name), condition, relation, decision, self.span(pos))

    def expect_exactly(self, pos: _Pos, children: list[Any]) -> tuple[str, str]:
        return "is", str(children[0])

    def expect_not(self, pos: _Pos, children: list[Any]) -> tuple[str, str]:
        return "not", str(children[0])

    def expect_at_least(self, pos: _Pos, children: list[Any]) -> tuple[str, str]:
        return "at least", str(children[0])

    def expect_at_most(self, pos: _Pos, children: list[Any]) -> tuple[str, str]:
        return "at most", str(children[0])

    # expressions -----------------------------------------------------------
    def or_(self, pos: _Pos, children: list[Any]) -> n.Binary:
        return n.Binary("or", children[0], children[1], self.span(pos))

    def and_(self, pos: _Pos, children: list[Any]) -> n.Binary:
        return n.Binary("and", children[0], children[1], self.span(pos))

    def not_(self, pos: _Pos, children: list[Any]) -> n.Unary:
        return n.Unary("not", children[0], self.span(pos))

    def compare(self, pos: _Pos, children: list[Any]) -> n.Binary:
        left, op, right = children
        return n.Binary(str(op), left, right, self.span(pos))

    def member(self, pos: _Pos, children: list[Any]) -> n.Binary:
        return n.Binary("in", children[0], children[1], self.span(pos))

    def not_member(self, pos: _Pos, children: list[Any]) -> n.Binary:
        return n.Binary("not in", children[0], children[1], self.span(pos))

    def arith(self, pos: _Pos, children: list[Any]) -> n.Binary:
        left, op, right = children
        return n.Binary(str(op), left, right, self.span(pos))

    def negate(self, pos: _Pos, children: list[Any]) -> n.Expr:
        (operand,) = children
        number = isinstance(operand, n.Literal) and isinstance(operand.value, int | float)
        if number and not isinstance(operand.value, bool):
            return n.Literal(-operand.value, operand.is_duration, self.span(pos))
        return n.Unary("-", operand, self.span(pos))

    def default(self, pos: _Pos, children: list[Any]) -> n.Default:
        return n.Default(children[0], children[1], self.span(pos))

    def field(self, pos: _Pos, children: list[Any]) -> n.Field:
        subject, name = children
        return n.Field(subject, str(name), self.span(pos))

    def name(self, pos: _Pos, children: list[Any]) -> n.Name:
        return n.Name(str(children[0]), self.span(pos))

    def call(self, pos: _Pos, children: list[Any]) -> n.Call:
        function, *args = children
        return n.Call(str(function), tuple(a for a in args if a is not None), self.span(pos))

    def quantifier(self, pos: _Pos, children: list[Any]) -> n.Quantifier:
        kind, var, items, body = children
        return n.Quantifier(str(kind), str(var), items, body, self.span(pos))

    def has(self, pos: _Pos, children: list[Any]) -> n.Has:
        return n.Has(children[0], self.span(pos))

    # literals --------------------------------------------------------------
    def number(self, pos: _Pos, children: list[Any]) -> n.Literal:
        return n.Literal(self._number(children[0]), False, self.span(pos))

    def negative_number(self, pos: _Pos, children: list[Any]) -> n.Literal:
        return n.Literal(-self._number(children[0]), False, self.span(pos))

    def negative_duration(self, pos: _Pos, children: list[Any]) -> n.Literal:
        return n.Literal(-self._duration_seconds(children[0]), True, self.span(pos))

    def duration(self, pos: _Pos, children: list[Any]) -> n.Literal:
        return n.Literal(self._duration_seconds(children[0]), True, self.span(pos))

    def string(self, pos: _Pos, children: list[Any]) -> n.Literal:
        return n.Literal(self._string(children[0]), False, self.span(pos))

    def true(self, pos: _Pos, children: list[Any]) -> n.Literal:
        return n.Literal(True, False, self.span(pos))

    def false(self, pos: _Pos, children: list[Any]) -> n.Literal:
        return n.Literal(False, False, self.span(pos))

    def list(self, pos: _Pos, children: list[Any]) -> n.ListExpr:
        return n.ListExpr(tuple(c for c in children if c is not None), self.span(pos))

    def object(self, pos: _Pos, children: _Children) -> n.ObjectConst:
        return n.ObjectConst(tuple(children), self.span(pos))

    def object_field(self, pos: _Pos, children: _Children) -> n.ObjectField:
        name, value = children
        key = self._string(name) if name.type == "STRING" else str(name)  # `"search-api": 5`
        return n.ObjectField(key, value, self.token_span(name))

    # helpers ---------------------------------------------------------------
    def _number(self, token: Token) -> int | float:
        text = str(token)
        try:
            value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            value = math.inf
        if isinstance(value, float) and (math.isinf(value) or abs(value) > 1e300):
            self.diagnostics.append(
                error(
                    "E002",
                    f"number `{text[:20]}` is out of range",
                    self.token_span(token),
                    "numbers must be finite and at most 1e300 in size",
                )
            )
            return 0
        if isinstance(value, int) and value > MAX_INT:
            self.diagnostics.append(
                error(
                    "E002",
                    f"integer `{text[:20]}` is out of range",
                    self.token_span(token),
                    "integers must fit in 64 bits",
                )
            )
            return 0
        return value

    def _duration_seconds(self, token: Token) -> int | float:
        match = _DURATION.fullmatch(str(token))
        assert match is not None  # the grammar's DURATION pattern guarantees it
        amount, unit = match.groups()
        seconds = float(amount) * DURATION_UNITS[unit]
        if seconds > 1e15:
            self.diagnostics.append(
                error("E002", f"duration `{token}` is out of range", self.token_span(token))
            )
            return 0
        return int(seconds) if seconds == int(seconds) else seconds

    def _string(self, token: Token) -> str:
        raw = str(token)[1:-1]
        line, column, _, _ = _token_position(token)
        out: list[str] = []
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch == "\\":
                nxt = raw[i + 1] if i + 1 < len(raw) else ""
                if nxt in _ESCAPES:
                    out.append(_ESCAPES[nxt])
                else:
                    col = column + 1 + i
                    self.diagnostics.append(
                        error(
                            "E002",
                            f"unknown escape `\\{nxt}` in string",
                            Span(self.file, line, col, line, col + 2),
                            'known escapes: \\n \\t \\r \\" \\\\ \\{ \\}',
                        )
                    )
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)

    def _message(self, token: Token, span: Span) -> n.Message:
        """Split a ``because`` string into text and ``{expression}`` parts."""
        raw = str(token)[1:-1]
        parts: list[str | n.Expr] = []
        text: list[str] = []
        i = 0
        line, column, _, _ = _token_position(token)
        base_column = column + 1  # column of raw[0]
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                text.append(_ESCAPES.get(raw[i + 1], raw[i + 1]))
                if raw[i + 1] not in _ESCAPES:
                    self.diagnostics.append(
                        error(
                            "E002",
                            f"unknown escape `\\{raw[i + 1]}` in string",
                            Span(
                                self.file,
                                line,
                                base_column + i,
                                line,
                                base_column + i + 2,
                            ),
                        )
                    )
                i += 2
            elif raw.startswith("{{", i) or raw.startswith("}}", i):
                text.append(ch)
                i += 2
            elif ch == "{":
                end = raw.find("}", i)
                if end == -1:
                    self.diagnostics.append(
                        error(
                            "E003",
                            "unclosed `{` in message",
                            Span(
                                self.file,
                                line,
                                base_column + i,
                                line,
                                base_column + i + 1,
                            ),
                            "write `{{` for a literal brace",
                        )
                    )
                    break
                if text:
                    parts.append("".join(text))
                    text = []
                expr = self._interpolation(raw[i + 1 : end], line, base_column + i + 1)
                if expr is not None:
                    parts.append(expr)
                i = end + 1
            elif ch == "}":
                self.diagnostics.append(
                    error(
                        "E003",
                        "unmatched `}` in message",
                        Span(self.file, line, base_column + i, line, base_column + i + 1),
                        "write `}}` for a literal brace",
                    )
                )
                i += 1
            else:
                text.append(ch)
                i += 1
        if text:
            parts.append("".join(text))
        return n.Message(tuple(parts), span)

    def _field_path(self, source: str) -> n.Expr | None:
        """``source`` read as the parser reads a path like ``action.target``, without
        running it; ``None`` for anything else, which then takes the parser."""
        if _FIELD_PATH.fullmatch(source) is None:
            return None
        names = source.split(".")
        if names[0] in _NOT_A_NAME_AT_START:
            return None
        end = 1 + len(names[0])
        expr: n.Expr = self.name((1, 1, 1, end), [names[0]])
        for name in names[1:]:
            end += 1 + len(name)
            expr = self.field((1, 1, 1, end), [expr, name])
        return expr

    def _interpolation(self, raw: str, line: int, column: int) -> n.Expr | None:
        # unescape \" and \\, remembering where each character sat in the file
        chars: list[str] = []
        columns: list[int] = []
        i = 0
        while i < len(raw):
            step = 2 if raw[i] == "\\" and raw[i + 1 : i + 2] in ('"', "\\") else 1
            chars.append(raw[i + step - 1])
            columns.append(column + i)
            i += step
        columns.append(column + len(raw))  # one past the end, for end columns
        source = "".join(chars)
        if not source.strip():
            self.diagnostics.append(
                error(
                    "E003",
                    "empty `{}` in message",
                    Span(self.file, line, column - 1, line, column + 1),
                    "put an expression inside, or write `{{}}` for literal braces",
                )
            )
            return None
        saved = self.columns, self.line
        self.columns, self.line = columns, line
        try:
            return self._field_path(source) or self.build(source, "expr")
        except UnexpectedInput as exc:
            inner = _syntax_error(exc, source, self.file)
            assert inner.span is not None
            col = columns[min(inner.span.column, len(columns)) - 1]
            self.diagnostics.append(
                error(
                    "E003",
                    f"in message interpolation: {inner.message}",
                    Span(self.file, line, col, line, col + 1),
                    inner.hint,
                )
            )
            return None
        except _TooDeep as exc:
            self.diagnostics.append(exc.diagnostic)
            return None
        finally:
            self.columns, self.line = saved


class _TreeBuilder(Transformer):
    """The builder's methods over a finished parse tree: the way used when this Lark does
    not let nodes be built during the parse."""

    def __init__(self, builder: _AstBuilder):
        super().__init__()
        self.builder = builder

    def __default__(self, data: str, children: list[Any], meta: Any) -> Any:
        return getattr(self.builder, data)(_meta_pos(meta), children)

    def _call_userfunc(self, tree: Tree, new_children: list[Any] | None = None) -> Any:
        children = new_children if new_children is not None else tree.children
        return self.__default__(tree.data, children, tree.meta)


# The interpolations most messages hold, `{action.target}`: names joined by dots. Only
# at the start of an expression does the lexer read a word other than as a name (the
# test suite checks every keyword of the grammar in every place).
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*){0,15}")
_NOT_A_NAME_AT_START = frozenset({"true", "false", "not", "has", "any", "all"})
