"""The formatter: one canonical layout for ``.aigre`` files, comments kept.

``format_source`` parses the text (a file that does not parse is returned with
its diagnostics and no formatted text), lays it out (``layout``, ``doc``) and
then proves the result: it must parse to the same AST with the same comments
in the same order, or the file is left as it is. Formatting is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aigre_policy import nodes as n
from aigre_policy.comments import collect_comments
from aigre_policy.diagnostics import Diagnostic, error, has_errors
from aigre_policy.fmt.cst import parse_source
from aigre_policy.fmt.doc import WIDTH, render
from aigre_policy.fmt.layout import Layout
from aigre_policy.parser import parse_module

__all__ = ["FormatResult", "format_file", "format_source"]


@dataclass(frozen=True)
class FormatResult:
    """One file: its text, the canonical text (``None`` when it cannot be formatted), and why."""

    file: str
    original: str
    formatted: str | None
    diagnostics: tuple[Diagnostic, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.formatted is not None

    @property
    def changed(self) -> bool:
        return self.formatted is not None and self.formatted != self.original


def format_source(text: str, file: str = "<text>", width: int = WIDTH) -> FormatResult:
    """The canonical layout of ``text``; never raises for bad input."""
    try:
        parsed = parse_module(text, file)
    except RecursionError:
        return FormatResult(file, text, None, (_too_deep(file),))
    if parsed.module is None or has_errors(parsed.diagnostics):
        return FormatResult(file, text, None, tuple(parsed.diagnostics))
    try:
        source = parse_source(text)
        formatted = render(Layout(source).module(source.tree), width)
    except RecursionError:
        return FormatResult(file, text, None, (_too_deep(file),))
    problem = _meaning_changed(text, formatted, file, parsed.module)
    if problem is not None:
        return FormatResult(file, text, None, (problem,))
    return FormatResult(file, text, formatted)


def format_file(path: str | Path, width: int = WIDTH) -> FormatResult:
    """Read and format one file (nothing is written)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return FormatResult(name, "", None, (error("E500", f"cannot read {name}: {exc}"),))
    return format_source(text, name, width)


def _meaning_changed(
    original: str, formatted: str, file: str, module: n.Module
) -> Diagnostic | None:
    """The formatted text must say exactly what the original said, comments included."""
    reparsed = parse_module(formatted, file)
    same_comments = [c.text for c in collect_comments(original)] == [
        c.text for c in collect_comments(formatted)
    ]
    if reparsed.module == module and same_comments and not has_errors(reparsed.diagnostics):
        return None
    return error(
        "F003",
        f"{file} was left as it is: its canonical layout would not read the same",
        hint="this is a formatter fault; please report it with the file",
    )


def _too_deep(file: str) -> Diagnostic:
    return error(
        "E004",
        f"{file}: expressions nest too deeply",
        hint="split the condition into several rules",
    )
