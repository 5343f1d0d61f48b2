"""Comments of a policy file, with their positions.

The parser drops comments (the grammar ``%ignore``s them), so tools that need
them — lint suppressions, a formatter — lex the text again with a basic Lark
lexer built from the same grammar, keeping the tokens the parser ignores.
Lexing the same terminals means a ``#`` inside a string is never a comment.

A file with a character no terminal matches still yields its comments: the
lexer resumes after the bad character.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cache

from lark import Lark
from lark.exceptions import UnexpectedCharacters

from aigre_policy.grammar import grammar_path

COMMENT_TERMINAL = "COMMENT"


@dataclass(frozen=True, slots=True)
class Comment:
    """One ``#`` comment; ``line`` and ``column`` start at 1, ``end_column`` is exclusive.

    ``text`` is the whole comment, ``#`` included, without the line break.
    ``standalone`` is true when nothing but whitespace precedes it on its line.
    """

    line: int
    column: int
    end_column: int
    text: str
    standalone: bool

    @property
    def body(self) -> str:
        """The text after ``#``, stripped."""
        return self.text[1:].strip()


@cache
def _lexer() -> Lark:
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="basic")


def collect_comments(text: str) -> list[Comment]:
    """Every comment of ``text``, in order."""
    line_starts = [0, *(i + 1 for i, ch in enumerate(text) if ch == "\n")]
    comments: list[Comment] = []
    offset = 0
    while offset <= len(text):
        try:
            for token in _lexer().lex(text[offset:], dont_ignore=True):
                if token.type == COMMENT_TERMINAL:
                    assert token.start_pos is not None  # the lexer positions every token it yields
                    start = offset + token.start_pos
                    comments.append(_comment(text, line_starts, start, str(token)))
            break
        except UnexpectedCharacters as exc:
            assert exc.pos_in_stream is not None  # the lexer reports where it stopped
            offset += exc.pos_in_stream + 1  # skip the character no terminal matches
    return comments


def _comment(text: str, line_starts: list[int], start: int, value: str) -> Comment:
    line_index = bisect.bisect_right(line_starts, start) - 1
    line_start = line_starts[line_index]
    column = start - line_start + 1
    standalone = not text[line_start:start].strip()
    return Comment(line_index + 1, column, column + len(value), value, standalone)
