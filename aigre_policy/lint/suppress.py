"""Inline suppressions: ``# aigre: ignore[L201] -- why this rule needs no message``.

A comment after code covers findings on its own line; a comment alone on its
line covers the next line that holds code. It must name the codes, in
brackets, and give a reason after ``--``. A suppression without a reason is
L211 (it still suppresses), an unknown code is L210, and a code that has no
finding on the covered line is L212: a stale suppression hides the next
real problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aigre_policy.comments import Comment, collect_comments
from aigre_policy.diagnostics import Diagnostic, Span
from aigre_policy.lint.codes import CODES, META_CODES
from aigre_policy.lint.context import finding

POLICY_SUFFIX = ".aigre"
_DIRECTIVE = re.compile(r"#\s*aigre\s*:\s*ignore\b(?P<rest>.*)", re.DOTALL)
_FORM = re.compile(r"\[(?P<codes>[^\]]*)\]\s*(?:--(?P<reason>.*))?")
_EXAMPLE = "write `# aigre: ignore[L201] -- the reason`"


@dataclass(frozen=True, slots=True)
class Suppression:
    codes: tuple[str, ...]
    file: str
    line: int  # the line whose findings it covers
    span: Span  # the comment itself


def read_suppressions(
    sources: Mapping[str, str],
) -> tuple[list[Suppression], list[Diagnostic]]:
    """The suppressions of every policy file, and the problems with how they are written."""
    found: list[Suppression] = []
    problems: list[Diagnostic] = []
    for file, text in sources.items():
        if not file.endswith(POLICY_SUFFIX):
            continue
        comments = collect_comments(text)
        alone = {c.line for c in comments if c.standalone}
        lines = text.split("\n")
        for comment in comments:
            directive = _DIRECTIVE.fullmatch(comment.text)
            if directive is None:
                continue
            span = Span(file, comment.line, comment.column, comment.line, comment.end_column)
            form = _FORM.fullmatch(directive.group("rest").strip())
            codes = [c.strip() for c in form.group("codes").split(",")] if form else []
            codes = [c for c in codes if c]
            if not codes:
                problems.append(
                    finding("L211", "a suppression must name the codes it ignores", span, _EXAMPLE)
                )
                continue
            reason = (form.group("reason") or "").strip() if form else ""
            if not reason:
                problems.append(
                    finding(
                        "L211",
                        f"the suppression of {', '.join(codes)} gives no reason",
                        span,
                        _EXAMPLE,
                    )
                )
            known = []
            for code in codes:
                if code not in CODES:
                    problems.append(finding("L210", f"`{code}` is not a lint code", span))
                elif code in META_CODES:
                    problems.append(finding("L210", f"`{code}` cannot be suppressed", span))
                else:
                    known.append(code)
            if known:
                target = _covered_line(comment, lines, alone)
                found.append(Suppression(tuple(known), file, target, span))
    return found, problems


def apply_suppressions(
    findings: Iterable[Diagnostic], suppressions: Iterable[Suppression]
) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """The findings no suppression covers, and an L212 for each code suppressing nothing."""
    kept = list(findings)
    unused: list[Diagnostic] = []
    for suppression in suppressions:
        for code in suppression.codes:
            covered = [
                f
                for f in kept
                if f.code == code
                and f.span is not None
                and f.span.file == suppression.file
                and f.span.line == suppression.line
            ]
            if not covered:
                unused.append(
                    finding(
                        "L212",
                        f"the suppression of {code} suppresses nothing: no {code} finding "
                        f"on line {suppression.line}",
                        suppression.span,
                        "remove it, or move it to the line of the finding",
                    )
                )
            kept = [f for f in kept if not any(f is c for c in covered)]
    return kept, unused


def _covered_line(comment: Comment, lines: list[str], alone: set[int]) -> int:
    if not comment.standalone:
        return comment.line
    for number in range(comment.line + 1, len(lines) + 1):
        if lines[number - 1].strip() and number not in alone:
            return number
    return comment.line
