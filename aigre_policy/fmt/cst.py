"""The concrete syntax tree of a policy file, with its comments attached to tokens.

The AST (``nodes``) keeps meaning, not spelling: it drops parentheses, reads
``15m`` as 900 seconds and unescapes strings. A formatter must give back the
author's tokens exactly, so it parses with the same grammar keeping every
token, and reads the comments the grammar ignores with ``comments``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cache

from lark import Lark, Token, Tree

from aigre_policy.comments import Comment, collect_comments
from aigre_policy.grammar import grammar_path


@cache
def _parser() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,
        maybe_placeholders=True,
        start="start",
    )


@dataclass(frozen=True, slots=True)
class Placed:
    """A comment and whether a blank line separates it from what comes before."""

    comment: Comment
    blank_before: bool


@dataclass(frozen=True)
class Source:
    """A parsed file: the tree and, per token (by offset), the comments around it.

    A comment alone on its line belongs before the next token; one that ends a
    line with code on it belongs after the token it follows.
    """

    tree: Tree
    before: dict[int, list[Placed]]
    after: dict[int, list[Placed]]
    end: list[Placed]  # comments after the last token
    blank: frozenset[int]  # offsets of tokens a blank line precedes


def start_of(token: Token) -> int:
    assert token.start_pos is not None  # the parser positions every token it keeps
    return token.start_pos


def end_of(token: Token) -> int:
    assert token.end_pos is not None  # the parser positions every token it keeps
    return token.end_pos


def parse_source(text: str) -> Source:
    """The concrete tree of ``text``, which must already be known to parse."""
    tree = _parser().parse(text)
    tokens = sorted((t for t in tree.scan_values(lambda v: isinstance(v, Token))), key=start_of)
    line_starts = [0, *(i + 1 for i, ch in enumerate(text) if ch == "\n")]
    comments = [(line_starts[c.line - 1] + c.column - 1, c) for c in collect_comments(text)]
    # Everything that occupies text, in order, to tell where blank lines are.
    things: list[tuple[int, int, object]] = [(start_of(t), end_of(t), t) for t in tokens]
    things += [(start, start + len(c.text), c) for start, c in comments]
    things.sort(key=lambda item: item[0])
    blank_at: set[int] = set()
    previous_end = 0
    for start, stop, _ in things:
        if previous_end and text.count("\n", previous_end, start) >= 2:
            blank_at.add(start)
        previous_end = stop
    starts = [start_of(t) for t in tokens]
    before: dict[int, list[Placed]] = {}
    after: dict[int, list[Placed]] = {}
    end: list[Placed] = []
    for start, comment in comments:
        placed = Placed(comment, start in blank_at)
        if comment.standalone:
            index = bisect.bisect_right(starts, start)
            if index < len(tokens):
                before.setdefault(start_of(tokens[index]), []).append(placed)
            else:
                end.append(placed)
        else:
            index = bisect.bisect_right(starts, start) - 1
            after.setdefault(start_of(tokens[index]), []).append(placed)
    return Source(tree, before, after, end, frozenset(blank_at))
