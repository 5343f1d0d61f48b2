"""Findings: what ``check``, ``test``, ``fmt`` and ``ci`` report, in one shape for every format.

A ``Finding`` is a problem with a stable code, a level and, where there is one,
a place in a file. Compiler and lint diagnostics become findings as they are;
failed tests, bright-line gaps, broken invariants and unformatted files get
codes of their own (``T``, ``F``; registered in ``aigre_policy.codes``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aigre_policy.codes import lookup
from aigre_policy.diagnostics import Diagnostic, Severity, Span

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    level: str  # error | warning
    message: str
    span: Span | None = None
    hint: str | None = None
    pack: str | None = None  # the pack directory it belongs to

    def __post_init__(self) -> None:
        lookup(self.code)  # an unregistered code is a fault of the product: fail loudly

    @property
    def category(self) -> str:
        return lookup(self.code).group

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "level": self.level,
            "category": self.category,
            "message": self.message,
            "location": None if self.span is None else self.span.to_dict(),
            "hint": self.hint,
            "pack": self.pack,
        }


def from_diagnostics(diagnostics: Iterable[Diagnostic], pack: str | None = None) -> list[Finding]:
    return [
        Finding(
            d.code,
            ERROR if d.severity is Severity.ERROR else WARNING,
            d.message,
            d.span,
            d.hint,
            pack,
        )
        for d in diagnostics
    ]


def failed(findings: Iterable[Finding]) -> bool:
    return any(f.level == ERROR for f in findings)
