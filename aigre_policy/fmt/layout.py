"""The canonical layout of a policy file: concrete tree to layout document.

The rules, in short (docs/fmt.md has them in full):

- two-space indentation; one declaration per block, a blank line between them;
- one block item per line (envelope values, rule clauses, test lines), blank
  lines between items kept where the author put one (at most one);
- a verdict's condition stays on its line when it fits, else moves to the next
  line and breaks before each ``and``/``or`` that does not fit; parentheses and
  ``any``/``all`` bodies continue under their first column;
- a comparison, membership test or call is never split: the evidence quotes a
  comparison's text, so it keeps one canonical spelling;
- lists and objects of constants stay on one line when they fit, else hold as
  many items per line as fit; ``{ a: 1 }`` has spaces inside, ``[1, 2]`` not;
- commas between envelope values and trailing commas go; tokens keep their
  spelling (``15m``, ``1e3``, escapes), except ``at  least`` which reads ``at least``;
- every comment stays where it was: alone on its line before the same token, or
  at the end of the line of the token it followed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lark import Token, Tree

from aigre_policy.fmt.cst import Placed, Source, start_of
from aigre_policy.fmt.doc import (
    BLANK,
    HARDLINE,
    LINE,
    SOFTLINE,
    Align,
    Comment,
    Doc,
    Fill,
    Group,
    Nest,
)

INDENT = 2
_CHAIN = {"or_", "and_"}
_NO_SPACE_BEFORE = {",", ".", "(", ")", "]", ":"}
_NO_SPACE_AFTER = {".", "(", "["}


def _parts(tree: Tree) -> list[Any]:
    """The children of ``tree``. Any: which child is a token and which a subtree is fixed
    by the grammar (positionally), which lark's ``Tree | Token`` children cannot express."""
    return [c for c in tree.children if c is not None]


class Layout:
    """Builds the document of one file; every token goes through ``token`` so no
    comment is lost."""

    def __init__(self, source: Source):
        self.source = source

    # tokens and their comments ----------------------------------------------
    def _comments(self, placed: Iterable[Placed], standalone: bool) -> tuple[Doc, ...]:
        return tuple(Comment(p.comment.text, standalone, p.blank_before) for p in placed)

    def leading(self, token: Token, item_start: bool = False) -> Doc:
        before = self._comments(self.source.before.get(start_of(token), ()), True)
        blank = (BLANK,) if item_start and start_of(token) in self.source.blank else ()
        return (*before, *blank)

    def trailing(self, token: Token) -> Doc:
        return self._comments(self.source.after.get(start_of(token), ()), False)

    def token(self, token: Token, text: str | None = None, item_start: bool = False) -> Doc:
        spelled = str(token) if text is None else text
        return (self.leading(token, item_start), spelled, self.trailing(token))

    def drop(self, token: Token) -> Doc:
        """A token the layout leaves out (a comma); its comments stay."""
        return (self.leading(token), self.trailing(token))

    # file and blocks --------------------------------------------------------
    def module(self, tree: Tree) -> Doc:
        parts: list[Doc] = []
        for index, declaration in enumerate(_parts(tree)):
            if index:
                parts += [HARDLINE, BLANK]
            parts.append(self.declaration(declaration))
        parts.append(self._comments(self.source.end, True))
        return tuple(parts)

    def declaration(self, tree: Tree) -> Doc:
        keyword, name, *rest = _parts(tree)
        if tree.data == "usage":
            return self.words(_parts(tree), item_start=True)
        open_, *inner, close = rest
        head = self.words([keyword, name, open_], item_start=True)
        if tree.data == "invariant":
            return self.block(head, self.invariant_items(inner), close)
        item = {"envelope": self.envelope_field, "rule": self.rule_part, "test": self.test_part}
        entries: list[Doc] = []
        for child in inner:
            if isinstance(child, Token):  # an optional comma between envelope values
                entries[-1] = (entries[-1], self.drop(child))
            else:
                entries.append(item[tree.data](child))
        return self.block(head, entries, close)

    def block(self, head: Doc, entries: list[Doc], close: Token) -> Doc:
        """``head {``, one entry a line, ``}``."""
        closing = self.leading(close)
        if not entries and not closing:
            return (head, self.token(close))
        lines = tuple((HARDLINE, entry) for entry in entries)
        return (head, Nest(INDENT, (*lines, closing)), HARDLINE, str(close), self.trailing(close))

    def envelope_field(self, tree: Tree) -> Doc:
        name, colon, value = _parts(tree)
        return (self.token(name, item_start=True), self.token(colon), " ", self.constant(value))

    # rules ------------------------------------------------------------------
    def rule_part(self, tree: Tree) -> Doc:
        if tree.data == "meta":
            key, colon, value = _parts(tree)
            return (self.token(key, item_start=True), self.token(colon), " ", self.meta(value))
        if tree.data == "because":
            keyword, message = _parts(tree)
            return (self.token(keyword, item_start=True), " ", self.token(message))
        return self.verdict(tree)

    def meta(self, tree: Tree) -> Doc:
        if tree.data == "meta_list":
            return self.bracketed(_parts(tree), spaced=False)
        (token,) = _parts(tree)
        return self.token(token)

    def verdict(self, tree: Tree) -> Doc:
        *head, when, condition = _parts(tree)
        words: list[Doc] = []
        for index, part in enumerate(head):
            if index:
                words.append(" ")
            if isinstance(part, Token):
                words.append(self.token(part, item_start=index == 0))
            else:
                words.append(self.bracketed(_parts(part), spaced=False))
        return (
            *words,
            " ",
            self.token(when),
            Group.of(Nest(INDENT, (LINE, self.expr(condition)))),
        )

    # usage, tests, invariants -----------------------------------------------
    def invariant_items(self, inner: list[Any]) -> list[Doc]:
        if len(inner) == 1:
            return [self.words(_parts(inner[0]), item_start=True)]
        when, condition, expect = inner
        return [
            (self.token(when, item_start=True), " ", Align(self.expr(condition))),
            self.words(_parts(expect), item_start=True),
        ]

    def test_part(self, tree: Tree) -> Doc:
        if tree.data == "test_input_inline":
            root, value = _parts(tree)
            return (self.words([root], item_start=True), " ", self.constant(value))
        return self.words(_parts(tree), item_start=True)

    # words: a line of tokens with canonical spacing --------------------------
    def words(
        self, nodes: list[Tree | Token], item_start: bool = False, constants: bool = True
    ) -> Doc:
        """Tokens on one line with canonical spacing; ``constants``: lists and objects in
        them are values that may break, not parts of a condition."""
        out: list[Doc] = []
        previous: str | None = None
        for node in _flatten_words(nodes):
            if isinstance(node, Tree):
                first = "x"
                constant = constants and _is_constant(node)
                doc = self.constant(node) if constant else self.expr(node, flat=True)
            else:
                first = str(node)
                text = {"AT_LEAST": "at least", "NO_RULE": "no rule"}.get(node.type)
                doc = self.token(node, text, item_start=item_start and previous is None)
            if previous not in (None, *_NO_SPACE_AFTER) and first not in _NO_SPACE_BEFORE:
                out.append(" ")
            out.append(doc)
            previous = "x" if isinstance(node, Tree) else str(node)
        return tuple(out)

    # constants: envelope values, test inputs ---------------------------------
    def constant(self, tree: Tree) -> Doc:
        if tree.data == "object":
            return self.bracketed(_parts(tree), spaced=True)
        if tree.data == "list":
            return self.bracketed(_parts(tree), spaced=False)
        return tuple(
            self.token(t) if isinstance(t, Token) else self.constant(t) for t in _parts(tree)
        )

    def object_field(self, tree: Tree) -> Doc:
        name, colon, value = _parts(tree)
        return (self.token(name), self.token(colon), " ", self.constant(value))

    def bracketed(self, children: list[Any], spaced: bool) -> Doc:
        """``[a, b]`` or ``{ a: 1, b: 2 }``: on one line if it fits, else filled."""
        open_, *inner, close = children
        items: list[tuple[Doc, list[Token]]] = []  # each item and the commas after it
        for child in inner:
            if isinstance(child, Token) and child.type == "COMMA":
                items[-1][1].append(child)
            elif isinstance(child, Token):
                items.append((self.token(child), []))
            elif child.data == "object_field":
                items.append((self.object_field(child), []))
            else:
                items.append((self.constant(child), []))
        if not items:
            return (self.token(open_), self.leading(close), str(close), self.trailing(close))
        parts: list[Doc] = []
        for index, (item, commas) in enumerate(items):
            last = index == len(items) - 1
            doc: list[Doc] = [item]
            for comma in commas:
                doc.append(self.drop(comma) if last else self.token(comma))
            if index:
                parts.append(LINE)
            parts.append(tuple(doc))
        edge = LINE if spaced else SOFTLINE
        # the comments before the opening and after the closing bracket do not break it
        inside = (
            str(open_),
            self.trailing(open_),
            Nest(INDENT, (edge, Fill(tuple(parts)), self.leading(close))),
            edge,
            str(close),
        )
        return (self.leading(open_), Group.of(inside), self.trailing(close))

    # expressions ------------------------------------------------------------
    def expr(self, tree: Tree | Token, flat: bool = False) -> Doc:
        if isinstance(tree, Token):
            return self.token(tree)
        kind = tree.data
        parts = _parts(tree)
        if kind in _CHAIN:
            operands = _chain(tree)
            first, rest = operands[0], operands[1:]
            docs: list[Doc] = [self.expr(first, flat)]
            for op, operand in rest:
                docs += [LINE, self.token(op), " ", self.expr(operand, flat)]
            return tuple(docs) if flat else Group.of(tuple(docs))
        if kind == "not_":
            keyword, operand = parts
            return (self.token(keyword), " ", self.expr(operand, flat))
        if kind == "atom":  # ( expr )
            open_, inner, close = parts
            return (self.token(open_), Align(self.expr(inner, flat)), self.token(close))
        if kind == "quantifier" and not flat:
            word, open_, var, in_, items, colon, body, close = parts
            return Group.of(
                (
                    self.token(word),
                    self.token(open_),
                    Align(
                        (
                            self.token(var),
                            " ",
                            self.token(in_),
                            " ",
                            self.expr(items, flat=True),
                            self.token(colon),
                            LINE,
                            self.expr(body),
                        )
                    ),
                    self.token(close),
                )
            )
        if kind == "negate":
            minus, operand = parts
            return (self.token(minus), self.expr(operand, flat=True))
        if kind in ("list", "object"):
            return self.flat_sequence(parts)
        if kind == "call":
            return self.flat_sequence(parts)
        # comparisons, arithmetic, fields, literals: never split
        return self.words(parts, constants=False)

    def flat_sequence(self, parts: list[Tree | Token]) -> Doc:
        """``f(a, b)`` or ``[a, b]`` in a condition: one line, always."""
        out: list[Doc] = []
        previous = ""
        for index, part in enumerate(parts):
            closing = isinstance(part, Token) and part.type in ("RPAR", "RSQB")
            if isinstance(part, Token) and part.type == "COMMA":
                following = parts[index + 1] if index + 1 < len(parts) else None
                trailing = isinstance(following, Token) and following.type in ("RPAR", "RSQB")
                out.append(self.drop(part) if trailing else self.token(part))
                previous = ","
                continue
            if previous == ",":
                out.append(" ")
            out.append(self.token(part) if isinstance(part, Token) else self.expr(part, True))
            previous = "" if not closing else ")"
        return tuple(out)


def _chain(tree: Tree) -> list:
    """``a and b and c`` as ``[a, (and, b), (and, c)]``; the grammar nests them to the left."""
    left, op, right = _parts(tree)
    head = _chain(left) if isinstance(left, Tree) and left.data == tree.data else [left]
    return [*head, (op, right)]


_CONSTANT_KINDS = {"object", "list", "negative_number", "negative_duration"}


def _is_constant(tree: Tree) -> bool:
    return tree.data in _CONSTANT_KINDS


def _flatten_words(nodes: list[Tree | Token]) -> list[Tree | Token]:
    """Inline the small wrapper trees of statements (``input_root``, ``expect_by``, windows)."""
    out: list[Tree | Token] = []
    for node in nodes:
        if isinstance(node, Tree) and node.data in (
            "input_root",
            "expect_by",
            "calendar_window",
            "sliding_window",
        ):
            out.extend(_flatten_words(_parts(node)))
        else:
            out.append(node)
    return out
