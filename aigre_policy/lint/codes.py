"""The lint codes: a stable number, a category and a default severity for each.

The codes themselves are registered with every other family in ``aigre_policy.codes``.

Numbering: L1xx bugs, L2xx style, L3xx testing, L4xx performance (none yet),
L5xx safety. A code is never reused for another meaning. ``docs/lint.md``
documents each one.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigre_policy.codes import GROUPS, REGISTRY, Severity, lookup

CATEGORIES = GROUPS


@dataclass(frozen=True, slots=True)
class LintCode:
    code: str
    category: str
    severity: Severity
    summary: str


# The lint family of the registry (aigre_policy/codes.py), as the linter reads it.
CODES: dict[str, LintCode] = {
    c.code: LintCode(c.code, c.group, c.severity, c.summary)
    for c in REGISTRY.values()
    if c.code.startswith("L")
}

# Codes about the lint configuration itself: never suppressed by a comment.
META_CODES = ("L210", "L211", "L212")


def category_of(code: str) -> str:
    """The group of any registered code (bugs, style, testing, performance, safety)."""
    return lookup(code).group
