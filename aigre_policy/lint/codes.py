"""The lint codes: a stable number, a category and a default severity for each.

Numbering: L1xx bugs, L2xx style, L3xx testing, L4xx performance (none yet),
L5xx safety. A code is never reused for another meaning. ``docs/lint.md``
documents each one.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigre_policy.diagnostics import Severity

CATEGORIES = ("bugs", "style", "testing", "performance", "safety")


@dataclass(frozen=True, slots=True)
class LintCode:
    code: str
    category: str
    severity: Severity
    summary: str


_ALL = (
    LintCode("L101", "bugs", Severity.ERROR, "a rule's condition never holds"),
    LintCode("L102", "bugs", Severity.ERROR, "a rule's condition always holds"),
    LintCode("L103", "bugs", Severity.WARNING, "a rule is shadowed by a stronger rule"),
    LintCode("L104", "bugs", Severity.ERROR, "a constant outside the range the schema allows"),
    LintCode("L201", "style", Severity.WARNING, "a rule without a `because` message"),
    LintCode("L202", "style", Severity.WARNING, "a rule without a severity"),
    LintCode("L203", "style", Severity.WARNING, "an envelope value no rule reads"),
    LintCode("L204", "style", Severity.WARNING, "a usage no rule reads"),
    LintCode("L210", "style", Severity.ERROR, "an unknown lint code"),
    LintCode("L211", "style", Severity.ERROR, "a suppression without a code or a reason"),
    LintCode("L212", "style", Severity.WARNING, "a suppression that suppresses nothing"),
    LintCode("L301", "testing", Severity.WARNING, "a rule no test exercises"),
    LintCode("L501", "safety", Severity.ERROR, "a permit admits every action of a kind"),
    LintCode("L502", "safety", Severity.ERROR, "a proposer's claim can loosen a rule's verdict"),
)

CODES: dict[str, LintCode] = {c.code: c for c in _ALL}

# Codes about the lint configuration itself: never suppressed by a comment.
META_CODES = ("L210", "L211", "L212")

# Categories of the compiler's own codes, so every diagnostic carries one.
_COMPILER_CATEGORIES = {"W114": "testing", "W302": "style", "W303": "style"}


def category_of(code: str) -> str:
    """The category of any diagnostic code: lint codes by the table, compiler errors are bugs."""
    if code in CODES:
        return CODES[code].category
    return _COMPILER_CATEGORIES.get(code, "bugs")
