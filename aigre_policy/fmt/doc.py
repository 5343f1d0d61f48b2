"""Layout documents and the printer that fits them into a line width.

A document describes text and the places it may break; the printer picks the
breaks (Wadler's "prettier printer", in the strict form Prettier uses). Besides
text, ``Line`` and ``Group`` it has what a formatter that keeps comments needs
and the small Wadler-Lindig libraries lack: ``Align`` (continue under a column),
``Fill`` (pack items on a line), ``Comment`` (a line comment ends its line, and
the groups around it break), and ``BlankLine`` (kept where the author had one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH = 100


@dataclass(frozen=True, slots=True)
class Line:
    """A space (``flat``) when its group fits on the line, else a line break."""

    flat: str = " "


@dataclass(frozen=True, slots=True)
class HardLine:
    """Always a line break; the groups around it break too."""


@dataclass(frozen=True, slots=True)
class BlankLine:
    """One empty line, unless one is already there or the line above opens a bracket."""


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``#`` comment: on its own line (``standalone``) or at the end of the line so far."""

    text: str
    standalone: bool
    blank_before: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """Printed on one line if it fits, else with every ``Line`` of its own broken."""

    content: Doc
    breaks: bool = field(default=False)

    @staticmethod
    def of(content: Doc) -> Group:
        return Group(content, has_hard_break(content))


@dataclass(frozen=True, slots=True)
class Nest:
    """Lines broken inside start ``indent`` columns further in."""

    indent: int
    content: Doc


@dataclass(frozen=True, slots=True)
class Align:
    """Lines broken inside start at the column where the content starts."""

    content: Doc


@dataclass(frozen=True, slots=True)
class Fill:
    """``content, separator, content, ...``: each separator breaks only when the next item
    would not fit on the line."""

    parts: tuple[Doc, ...]


Doc = str | tuple | Line | HardLine | BlankLine | Comment | Group | Nest | Align | Fill

LINE = Line(" ")
SOFTLINE = Line("")
HARDLINE = HardLine()
BLANK = BlankLine()


def has_hard_break(doc: Doc) -> bool:
    """True when the document holds a forced break: its groups cannot be flat."""
    match doc:
        case str() | Line():
            return False
        case tuple():
            return any(has_hard_break(d) for d in doc)
        case Group(breaks=breaks):
            return breaks
        case Nest(content=c) | Align(content=c):
            return has_hard_break(c)
        case Fill(parts=parts):
            return any(has_hard_break(p) for p in parts)
    return True  # HardLine, BlankLine, Comment


_BREAK, _FLAT = True, False
_OPENERS = ("{", "(", "[")


class _Printer:
    def __init__(self, width: int):
        self.width = width
        self.lines: list[str] = []
        self.current: list[str] = []
        self.column = 0
        self.pending = False  # a comment ended the line: the next text starts a new one

    # output ------------------------------------------------------------
    def newline(self, indent: int) -> None:
        self.lines.append("".join(self.current).rstrip())
        self.current = [" " * indent]
        self.column = indent
        self.pending = False

    def write(self, text: str, indent: int) -> None:
        if self.pending:
            self.newline(indent)
        self.current.append(text)
        self.column += len(text)

    def has_content(self) -> bool:
        return bool("".join(self.current).strip())

    def blank_line(self, indent: int) -> None:
        if self.has_content():
            self.newline(indent)
        if not self.lines or not self.lines[-1] or self.lines[-1].endswith(_OPENERS):
            return
        self.lines.append("")
        self.pending = False

    def text(self) -> str:
        lines = [*self.lines, "".join(self.current).rstrip()]
        while lines and not lines[-1]:
            lines.pop()
        while lines and not lines[0]:
            lines.pop(0)
        return "\n".join(lines) + "\n" if lines else ""

    # layout ------------------------------------------------------------
    def run(self, doc: Doc) -> str:
        stack: list[tuple[int, bool, Doc]] = [(0, _BREAK, doc)]
        while stack:
            indent, mode, item = stack.pop()
            match item:
                case str():
                    if item:
                        self.write(item, indent)
                case tuple():
                    stack.extend((indent, mode, d) for d in reversed(item))
                case Line(flat=flat):
                    if mode is _BREAK or self.pending:
                        self.newline(indent)
                    else:
                        self.write(flat, indent)
                case HardLine():
                    self.newline(indent)
                case BlankLine():
                    self.blank_line(indent)
                case Comment():
                    self.comment(item, indent)
                case Nest(indent=extra, content=content):
                    stack.append((indent + extra, mode, content))
                case Align(content=content):
                    column = indent if self.pending or not self.has_content() else self.column
                    stack.append((column, mode, content))
                case Group(content=content, breaks=breaks):
                    fits_flat = mode is _FLAT or (
                        not breaks and self.fits([(indent, _FLAT, content)], stack)
                    )
                    stack.append((indent, _FLAT if fits_flat else _BREAK, content))
                case Fill(parts=parts):
                    self.fill(indent, mode, parts, stack)
        return self.text()

    def comment(self, item: Comment, indent: int) -> None:
        if item.standalone or self.pending:  # a second comment cannot share the line
            if item.blank_before:
                self.blank_line(indent)
            elif self.has_content():
                self.newline(indent)
            self.write(item.text, indent)
        else:
            self.current.append("  " + item.text)
            self.column += 2 + len(item.text)
        self.pending = True

    def fill(self, indent: int, mode: bool, parts: tuple[Doc, ...], stack: list) -> None:
        if not parts:
            return
        if mode is _FLAT:
            stack.extend((indent, _FLAT, d) for d in reversed(parts))
            return
        content = parts[0]
        content_fits = self.fits([(indent, _FLAT, content)], [])
        content_mode = _FLAT if content_fits and not has_hard_break(content) else _BREAK
        if len(parts) == 1:
            stack.append((indent, content_mode, content))
            return
        separator, rest = parts[1], parts[2:]
        pair = (content, separator, rest[0]) if rest else (content, separator)
        pair_fits = self.fits([(indent, _FLAT, pair)], [])  # measured up to a comment
        stack.append((indent, mode, Fill(rest)))
        stack.append((indent, _FLAT if pair_fits else _BREAK, separator))
        stack.append((indent, content_mode, content))

    def fits(self, todo: list[tuple[int, bool, Doc]], rest: list[tuple[int, bool, Doc]]) -> bool:
        """Whether ``todo`` fits on the current line, up to the next break that follows it."""
        room = self.width - (0 if self.pending else self.column)
        todo = list(reversed(todo))
        rest_index = len(rest)
        while room >= 0:
            if not todo:
                if rest_index == 0:
                    return True
                rest_index -= 1
                todo.append(rest[rest_index])
                continue
            indent, mode, item = todo.pop()
            match item:
                case str():
                    room -= len(item)
                case tuple():
                    todo.extend((indent, mode, d) for d in reversed(item))
                case Line(flat=flat):
                    if mode is _BREAK:
                        return True
                    room -= len(flat)
                case HardLine() | BlankLine() | Comment():
                    return True
                case Nest(content=content) | Align(content=content):
                    todo.append((indent, mode, content))
                case Group(content=content, breaks=breaks):
                    todo.append((indent, _BREAK if breaks else mode, content))
                case Fill(parts=parts):
                    todo.extend((indent, mode, d) for d in reversed(parts))
        return False


def render(doc: Doc, width: int = WIDTH) -> str:
    """The text of ``doc`` laid out in ``width`` columns, ending with one newline."""
    return _Printer(width).run(doc)
