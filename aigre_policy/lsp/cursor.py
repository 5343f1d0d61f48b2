"""The text around a position in a policy file: words, dotted paths, strings, comments.

Read from the text itself rather than the syntax tree, so it answers in the middle of
an edit, when the file does not parse. Lines and columns here start at 0 and count
code points (the server converts from the client's UTF-16 units).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
_ID_CHAR = re.compile(r"[A-Za-z0-9_-]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Word:
    """A run of characters on one line: ``text`` from column ``start`` to ``end`` (exclusive)."""

    text: str
    line: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PathAt:
    """The dotted path a position is on, up to and including the segment under it."""

    segments: tuple[str, ...]
    word: Word  # the segment under the position
    called: bool  # a single name followed by `(`: a function call


def line_at(text: str, line: int) -> str:
    lines = text.split("\n")
    return lines[line].rstrip("\r") if 0 <= line < len(lines) else ""


def _run(line_text: str, column: int, char: re.Pattern[str], line: int) -> Word | None:
    column = min(max(column, 0), len(line_text))  # a client may point past the line's end
    start = column
    while start > 0 and char.match(line_text[start - 1]):
        start -= 1
    end = column
    while end < len(line_text) and char.match(line_text[end]):
        end += 1
    if start == end:
        return None
    return Word(line_text[start:end], line, start, end)


def rule_id_at(text: str, line: int, column: int) -> Word | None:
    """The word under the position read as a rule id (letters, digits, ``-`` and ``_``)."""
    line_text = line_at(text, line)
    if in_comment(line_text, column):
        return None
    return _run(line_text, column, _ID_CHAR, line)


def path_at(text: str, line: int, column: int) -> PathAt | None:
    """``action.actor.kind`` with the position on ``actor`` gives ``("action", "actor")``."""
    line_text = line_at(text, line)
    if in_comment(line_text, column) or in_plain_string(line_text, column):
        return None
    word = _run(line_text, column, _NAME_CHAR, line)
    if word is None or not _NAME.fullmatch(word.text):
        return None
    segments = [word.text]
    start = word.start
    while start >= 2 and line_text[start - 1] == ".":
        before = _run(line_text, start - 1, _NAME_CHAR, line)
        if before is None or not _NAME.fullmatch(before.text):
            break
        segments.insert(0, before.text)
        start = before.start
    called = len(segments) == 1 and line_text[word.end :].lstrip().startswith("(")
    return PathAt(tuple(segments), word, called)


def in_comment(line_text: str, column: int) -> bool:
    """Whether the column sits after a ``#`` that starts a comment (not one inside a string)."""
    quoted = False
    escaped = False
    for index, char in enumerate(line_text[:column]):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return index < column
    return False


def string_at(line_text: str, column: int) -> tuple[int, int] | None:
    """The columns of the string literal the column sits in (inside its quotes), if any."""
    quoted_from: int | None = None
    escaped = False
    for index, char in enumerate(line_text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted_from is not None:
            escaped = True
        elif char == '"':
            if quoted_from is None:
                quoted_from = index
            else:
                if quoted_from < column <= index:
                    return quoted_from + 1, index
                quoted_from = None
        elif char == "#" and quoted_from is None:
            break
    if quoted_from is not None and column > quoted_from:  # a string still being typed
        return quoted_from + 1, len(line_text)
    return None


def in_plain_string(line_text: str, column: int) -> bool:
    """Inside a string but outside any ``{...}`` interpolation of a message."""
    found = string_at(line_text, column)
    if found is None:
        return False
    start, _ = found
    inside = line_text[start:column]
    opened = inside.rfind("{")
    return opened < 0 or inside.rfind("}") > opened
