"""Diagnostics: errors and warnings as data, with a source span and a hint.

Every stage returns diagnostics instead of raising, so one run reports all the
problems of a pack. Codes are stable, registered in ``aigre_policy.codes`` and
documented in ``docs/diagnostics.md``; a diagnostic with an unregistered code
cannot be built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.codes import Severity as Severity  # re-exported: every diagnostic has one
from aigre_policy.codes import lookup


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns start at 1, ``end_*`` is exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }


NO_SPAN = Span("<none>", 1, 1, 1, 1)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a pack."""

    code: str
    severity: Severity
    message: str
    span: Span | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        lookup(self.code)  # an unregistered code is a fault of the product: fail loudly

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return ("", 0, 0, self.code)
        return (self.span.file, self.span.line, self.span.column, self.code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "location": None if self.span is None else self.span.to_dict(),
            "hint": self.hint,
        }


def error(code: str, message: str, span: Span | None = None, hint: str | None = None) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, message, span, hint)


def warning(
    code: str, message: str, span: Span | None = None, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, message, span, hint)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by location, duplicates removed (two stages may see the same fault)."""
    unique = dict.fromkeys(diagnostics)
    return sorted(unique, key=Diagnostic.sort_key)


@dataclass(frozen=True)
class SourceText:
    """The text of the files a pack was compiled from, to quote lines in reports."""

    files: Mapping[str, str] = field(default_factory=dict)
    # file -> (its text, that text's lines): split once, not once per diagnostic quoted
    _split: dict[str, tuple[str, list[str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def line(self, file: str, number: int) -> str | None:
        text = self.files.get(file)
        if text is None:
            return None
        cached = self._split.get(file)
        if cached is None or cached[0] is not text:
            cached = self._split[file] = (text, text.split("\n"))  # U+2028 is not a break
        lines = cached[1]
        if 1 <= number <= len(lines):
            return lines[number - 1]
        return None


def render(diagnostic: Diagnostic, sources: SourceText | None = None) -> str:
    """The text form: ``file:line:col: error[E301]: message``, the line, a caret, the hint."""
    where = f"{diagnostic.span}: " if diagnostic.span else ""
    out = [f"{where}{diagnostic.severity}[{diagnostic.code}]: {diagnostic.message}"]
    span = diagnostic.span
    source_line = sources.line(span.file, span.line) if (sources and span) else None
    if span is not None and source_line is not None:
        gutter = str(span.line)
        pad = " " * len(gutter)
        width = (
            max(1, span.end_column - span.column)
            if span.end_line == span.line
            else max(1, len(source_line) - span.column + 1)
        )
        prefix = "".join(ch if ch == "\t" else " " for ch in source_line[: span.column - 1])
        out.append(f"{pad} |")
        out.append(f"{gutter} | {source_line}")
        out.append(f"{pad} | {prefix}{'^' * width}")
    if diagnostic.hint:
        out.append(f"  = hint: {diagnostic.hint}")
    return "\n".join(out)


class CompileError(Exception):
    """Raised at the API edge when a pack has errors; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic], sources: SourceText | None = None):
        self.diagnostics = diagnostics
        self.sources = sources or SourceText()
        errors = [d for d in diagnostics if d.severity is Severity.ERROR]
        first = render(errors[0], self.sources) if errors else "compile failed"
        more = f"\n(and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(first + more)

    def report(self) -> str:
        return "\n\n".join(render(d, self.sources) for d in self.diagnostics)
