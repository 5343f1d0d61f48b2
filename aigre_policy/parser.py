"""Stage 1, parse: source text to AST, with syntax errors as diagnostics.

This is the only module that knows Lark's parse tree. It returns a ``Module``
(or ``None`` when the file does not parse) and the diagnostics it found; it
never raises for bad input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

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
    try:
        tree = lark_parser().parse(text, start="start")
    except UnexpectedInput as exc:
        return ParseResult(None, [_syntax_error(exc, text, file)])
    builder = _AstBuilder(file, diagnostics)
    too_deep = _nesting_error(tree, builder)
    if too_deep is not None:
        return ParseResult(None, [too_deep])
    module = builder.transform(tree)
    return ParseResult(module, diagnostics)


def parse_expression(text: str, file: str = "<expr>") -> tuple[n.Expr | None, list[Diagnostic]]:
    """Parse a lone expression, for tests and tools."""
    diagnostics: list[Diagnostic] = []
    try:
        tree = lark_parser().parse(text, start="expr")
    except UnexpectedInput as exc:
        return None, [_syntax_error(exc, text, file)]
    builder = _AstBuilder(file, diagnostics)
    too_deep = _nesting_error(tree, builder)
    if too_deep is not None:
        return None, [too_deep]
    return builder.transform(tree), diagnostics


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
        builder.span(first.meta),
        "split the condition into several rules, or test membership with "
        "`x in [...]` instead of chaining `or`",
    )


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


def _syntax_error(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    line = getattr(exc, "line", 1) or 1
    column = getattr(exc, "column", 1) or 1
    hint = None
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        message = f"unexpected character `{char}`"
        rest = text[exc.pos_in_stream : exc.pos_in_stream + 2]
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
        if token.type == "EQUAL" and "COMPARE" in exc.expected:
            hint = "compare with `==`; `=` only names a usage or an override"
        elif token.value in ("&&", "||"):
            hint = "write `and` / `or`"
        elif "WHEN" in exc.expected and token.type != "WHEN":
            hint = "a verdict is written `deny when <condition>`"
        elif token.type == "NAME" and "RBRACE" in exc.expected:
            hint = "check the line before: a field or clause may be incomplete"
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


# ------------------------------------------------------------------ tree to AST


@v_args(meta=True)
class _AstBuilder(Transformer):
    """Turns Lark's tree into ``nodes``; bad literals become diagnostics, not exceptions."""

    def __init__(
        self,
        file: str,
        diagnostics: list[Diagnostic],
        columns: list[int] | None = None,
        line: int = 0,
    ):
        """``columns``/``line``: an interpolation, where column ``c`` of its (unescaped)
        text sits at column ``columns[c - 1]`` of ``line`` in the file."""
        super().__init__()
        self.file = file
        self.diagnostics = diagnostics
        self.columns = columns or []
        self.line = line

    # spans -----------------------------------------------------------------
    def _column(self, column: int) -> int:
        return self.columns[min(column, len(self.columns)) - 1]

    def span(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.file, 1, 1, 1, 1)
        if self.line:
            start, end = self._column(meta.column), self._column(meta.end_column)
            return Span(self.file, self.line, start, self.line, end)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def token_span(self, token: Token) -> Span:
        if self.line:
            start, end = self._column(token.column), self._column(token.end_column)
            return Span(self.file, self.line, start, self.line, end)
        return Span(self.file, token.line, token.column, token.end_line, token.end_column)

    # module ----------------------------------------------------------------
    def start(self, meta: Any, children: list[Any]) -> n.Module:
        return n.Module(self.file, tuple(children), self.span(meta))

    def envelope(self, meta: Any, children: list[Any]) -> n.Envelope:
        name, *fields = children
        return n.Envelope(str(name), tuple(fields), self.span(meta))

    def envelope_field(self, meta: Any, children: list[Any]) -> n.EnvelopeField:
        name, value = children
        return n.EnvelopeField(str(name), value, self.span(meta))

    # rules -----------------------------------------------------------------
    def rule(self, meta: Any, children: list[Any]) -> n.Rule:
        rule_id, *parts = children
        return n.Rule(
            id=str(rule_id),
            meta=tuple(p for p in parts if isinstance(p, n.Meta)),
            verdicts=tuple(p for p in parts if isinstance(p, n.VerdictClause)),
            because=tuple(p for p in parts if isinstance(p, n.Message)),
            span=self.span(meta),
            id_span=self.token_span(rule_id),
        )

    def meta(self, meta: Any, children: list[Any]) -> n.Meta:
        key, (value, is_word) = children
        return n.Meta(str(key), value, is_word, self.span(meta))

    def meta_string(self, meta: Any, children: list[Any]) -> tuple[str, bool]:
        return self._string(children[0]), False

    def meta_word(self, meta: Any, children: list[Any]) -> tuple[str, bool]:
        return str(children[0]), True

    def meta_list(self, meta: Any, children: list[Any]) -> tuple[tuple[str, ...], bool]:
        return tuple(self._string(t) for t in children if t is not None), False

    def group_list(self, meta: Any, children: list[Any]) -> tuple[str, ...]:
        return tuple(self._string(t) for t in children if t is not None)

    def verdict(self, meta: Any, children: list[Any]) -> n.VerdictClause:
        keyword, *rest = children
        condition = rest[-1]
        groups = rest[0] if len(rest) == 2 and rest[0] is not None else ()
        return n.VerdictClause(str(keyword), groups, condition, self.span(meta))

    def because(self, meta: Any, children: list[Any]) -> n.Message:
        return self._message(children[0], self.span(meta))

    # usage -----------------------------------------------------------------
    def usage(self, meta: Any, children: list[Any]) -> n.Usage:
        name, aggregate, argument, (window, seconds), filter_ = children
        return n.Usage(
            str(name), str(aggregate), argument, window, seconds, filter_, self.span(meta)
        )

    def calendar_window(self, meta: Any, children: list[Any]) -> tuple[str, None]:
        return str(children[0]), None

    def sliding_window(self, meta: Any, children: list[Any]) -> tuple[str, float]:
        token = children[0]
        return f"last {token}", self._duration_seconds(token)

    # tests -----------------------------------------------------------------
    def test(self, meta: Any, children: list[Any]) -> n.Test:
        name, *parts = children
        return n.Test(
            self._string(name),
            tuple(p for p in parts if isinstance(p, n.TestInput)),
            tuple(p for p in parts if isinstance(p, n.TestOverride)),
            tuple(p for p in parts if isinstance(p, n.Expectation)),
            self.span(meta),
        )

    def input_root(self, meta: Any, children: list[Any]) -> str:
        return str(children[0])

    def test_input_inline(self, meta: Any, children: list[Any]) -> n.TestInput:
        root, value = children
        return n.TestInput(root, value, None, self.span(meta))

    def test_input_file(self, meta: Any, children: list[Any]) -> n.TestInput:
        root, path = children
        return n.TestInput(root, None, self._string(path), self.span(meta))

    def test_with(self, meta: Any, children: list[Any]) -> n.TestOverride:
        envelope, name, value = children
        return n.TestOverride(str(envelope), str(name), value, self.span(meta))

    def expect_decision(self, meta: Any, children: list[Any]) -> n.Expectation:
        decision, by = children
        at_least, tokens = by if by is not None else (False, [])
        return n.Expectation(
            str(decision),
            tuple(str(t) for t in tokens),
            None,
            self.span(meta),
            tuple(self.token_span(t) for t in tokens),
            at_least=at_least,
        )

    def expect_by(self, meta: Any, children: list[Any]) -> tuple[bool, list[Token]]:
        at_least, *tokens = children
        return at_least is not None, tokens

    def expect_silent(self, meta: Any, children: list[Any]) -> n.Expectation:
        return n.Expectation(
            None,
            (),
            None,
            self.span(meta),
            tuple(self.token_span(t) for t in children),
            silent=tuple(str(t) for t in children),
        )

    def expect_evidence(self, meta: Any, children: list[Any]) -> n.Expectation:
        *names, value = children
        path = ".".join(str(name) for name in names)
        return n.Expectation(None, (), None, self.span(meta), evidence=(path, value))

    def expect_message(self, meta: Any, children: list[Any]) -> n.Expectation:
        return n.Expectation(None, (), self._string(children[0]), self.span(meta))

    def invariant(self, meta: Any, children: list[Any]) -> n.Invariant:
        name, condition, (relation, decision) = children
        return n.Invariant(self._string(name), condition, relation, decision, self.span(meta))

    def expect_exactly(self, meta: Any, children: list[Any]) -> tuple[str, str]:
        return "is", str(children[0])

    def expect_not(self, meta: Any, children: list[Any]) -> tuple[str, str]:
        return "not", str(children[0])

    def expect_at_least(self, meta: Any, children: list[Any]) -> tuple[str, str]:
        return "at least", str(children[0])

    def expect_at_most(self, meta: Any, children: list[Any]) -> tuple[str, str]:
        return "at most", str(children[0])

    # expressions -----------------------------------------------------------
    def or_(self, meta: Any, children: list[Any]) -> n.Binary:
        return n.Binary("or", children[0], children[1], self.span(meta))

    def and_(self, meta: Any, children: list[Any]) -> n.Binary:
        return n.Binary("and", children[0], children[1], self.span(meta))

    def not_(self, meta: Any, children: list[Any]) -> n.Unary:
        return n.Unary("not", children[0], self.span(meta))

    def compare(self, meta: Any, children: list[Any]) -> n.Binary:
        left, op, right = children
        return n.Binary(str(op), left, right, self.span(meta))

    def member(self, meta: Any, children: list[Any]) -> n.Binary:
        return n.Binary("in", children[0], children[1], self.span(meta))

    def not_member(self, meta: Any, children: list[Any]) -> n.Binary:
        return n.Binary("not in", children[0], children[1], self.span(meta))

    def arith(self, meta: Any, children: list[Any]) -> n.Binary:
        left, op, right = children
        return n.Binary(str(op), left, right, self.span(meta))

    def negate(self, meta: Any, children: list[Any]) -> n.Expr:
        (operand,) = children
        number = isinstance(operand, n.Literal) and isinstance(operand.value, int | float)
        if number and not isinstance(operand.value, bool):
            return n.Literal(-operand.value, operand.is_duration, self.span(meta))
        return n.Unary("-", operand, self.span(meta))

    def default(self, meta: Any, children: list[Any]) -> n.Default:
        return n.Default(children[0], children[1], self.span(meta))

    def field(self, meta: Any, children: list[Any]) -> n.Field:
        subject, name = children
        return n.Field(subject, str(name), self.span(meta))

    def name(self, meta: Any, children: list[Any]) -> n.Name:
        return n.Name(str(children[0]), self.span(meta))

    def call(self, meta: Any, children: list[Any]) -> n.Call:
        function, *args = children
        return n.Call(str(function), tuple(a for a in args if a is not None), self.span(meta))

    def quantifier(self, meta: Any, children: list[Any]) -> n.Quantifier:
        kind, var, items, body = children
        return n.Quantifier(str(kind), str(var), items, body, self.span(meta))

    def has(self, meta: Any, children: list[Any]) -> n.Has:
        return n.Has(children[0], self.span(meta))

    # literals --------------------------------------------------------------
    def number(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(self._number(children[0]), False, self.span(meta))

    def negative_number(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(-self._number(children[0]), False, self.span(meta))

    def negative_duration(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(-self._duration_seconds(children[0]), True, self.span(meta))

    def duration(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(self._duration_seconds(children[0]), True, self.span(meta))

    def string(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(self._string(children[0]), False, self.span(meta))

    def true(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(True, False, self.span(meta))

    def false(self, meta: Any, children: list[Any]) -> n.Literal:
        return n.Literal(False, False, self.span(meta))

    def list(self, meta: Any, children: list[Any]) -> n.ListExpr:
        return n.ListExpr(tuple(c for c in children if c is not None), self.span(meta))

    def object(self, meta: Any, children: list[Any]) -> n.ObjectConst:
        return n.ObjectConst(tuple(children), self.span(meta))

    def object_field(self, meta: Any, children: list[Any]) -> n.ObjectField:
        name, value = children
        return n.ObjectField(str(name), value, self.token_span(name))

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
        out: list[str] = []
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch == "\\":
                nxt = raw[i + 1] if i + 1 < len(raw) else ""
                if nxt in _ESCAPES:
                    out.append(_ESCAPES[nxt])
                else:
                    col = token.column + 1 + i
                    self.diagnostics.append(
                        error(
                            "E002",
                            f"unknown escape `\\{nxt}` in string",
                            Span(self.file, token.line, col, token.line, col + 2),
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
        base_column = token.column + 1  # column of raw[0]
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
                                token.line,
                                base_column + i,
                                token.line,
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
                                token.line,
                                base_column + i,
                                token.line,
                                base_column + i + 1,
                            ),
                            "write `{{` for a literal brace",
                        )
                    )
                    break
                if text:
                    parts.append("".join(text))
                    text = []
                expr = self._interpolation(raw[i + 1 : end], token.line, base_column + i + 1)
                if expr is not None:
                    parts.append(expr)
                i = end + 1
            elif ch == "}":
                self.diagnostics.append(
                    error(
                        "E003",
                        "unmatched `}` in message",
                        Span(
                            self.file, token.line, base_column + i, token.line, base_column + i + 1
                        ),
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
        try:
            tree = lark_parser().parse(source, start="expr")
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
        sub = _AstBuilder(self.file, self.diagnostics, columns=columns, line=line)
        too_deep = _nesting_error(tree, sub)
        if too_deep is not None:
            self.diagnostics.append(too_deep)
            return None
        return sub.transform(tree)
