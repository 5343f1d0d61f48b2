"""What each finding code means: the rule metadata SARIF carries in ``tool.driver.rules``.

Compiler codes are documented in docs/diagnostics.md, lint codes in docs/lint.md
(``lint.CODES`` holds their summaries), the test and format codes in docs/ci.md.
A test keeps this table and docs/diagnostics.md in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aigre_policy.lint import CODES as LINT_CODES
from aigre_policy.lint import category_of

COMPILER = {
    "E001": "syntax error",
    "E002": "bad literal",
    "E003": "bad `because` message",
    "E004": "expressions nest too deeply",
    "E101": "unknown name",
    "E102": "unknown field",
    "E103": "unknown envelope value",
    "E104": "unknown function",
    "E105": "rule declared twice",
    "E106": "declared twice",
    "E107": "reserved or taken name",
    "E108": "unknown rule in a test",
    "E109": "bad rule metadata",
    "E110": "verdict count",
    "E111": "approver groups",
    "E112": "unknown usage window",
    "E113": "bad test input",
    "W114": "test expects nothing",
    "E201": "type mismatch",
    "E202": "value outside the enum",
    "E203": "condition is not a boolean",
    "E204": "bad arguments",
    "E205": "not an object",
    "E206": "`??` or `has` misplaced",
    "E207": "unsupported schema construct",
    "E301": "optional field read without a default or guard",
    "W302": "default never used",
    "W303": "`has` is always true",
    "E500": "file or pack not found",
    "E501": "not valid YAML or JSON",
    "E502": "`pack.yaml` breaks the pack schema",
    "E503": "bad input schema",
    "E504": "bad envelope override",
    "E505": "no policies",
    "E506": "unknown sensitive path",
}

# Codes for what is not a compiler or lint diagnostic (docs/ci.md#finding-codes).
CHECKS = {
    "T001": ("testing", "a bright-line test fails"),
    "T002": ("testing", "a test cannot run"),
    "T003": ("testing", "a bright-line gap in the tests"),
    "T004": ("testing", "an invariant is broken"),
    "T005": ("testing", "a test-run check fails"),
    "F001": ("style", "a policy file is not in the canonical layout"),
    "F002": ("style", "a policy file cannot be formatted"),
    "F003": ("style", "the canonical layout would change what a file says (a formatter fault)"),
}

DOCS = {"E": "docs/diagnostics.md", "W": "docs/diagnostics.md", "L": "docs/lint.md"}


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: str
    name: str  # PascalCase, as SARIF viewers show it
    summary: str
    category: str
    level: str  # the default level: error | warning
    help: str


def rule_info(code: str) -> RuleInfo:
    """Everything known about a finding code; unknown codes get a plain description."""
    if code in LINT_CODES:
        lint = LINT_CODES[code]
        summary, category, level = lint.summary, lint.category, str(lint.severity)
    elif code in CHECKS:
        category, summary = CHECKS[code]
        level = "error"
    else:
        summary = COMPILER.get(code, f"compiler diagnostic {code}")
        category = category_of(code)
        level = "warning" if code.startswith("W") else "error"
    doc = DOCS.get(code[:1], "docs/ci.md")
    if code in COMPILER:
        anchor = _anchor(code, summary)
    else:
        anchor = "every-code" if code in LINT_CODES else "finding-codes"
    return RuleInfo(
        code,
        _pascal(summary),
        summary,
        category,
        level,
        f"{code}: {summary}. See {doc}#{anchor}.",
    )


def _pascal(text: str) -> str:
    return "".join(word.capitalize() for word in re.findall(r"[A-Za-z0-9]+", text))


def _anchor(code: str, summary: str) -> str:
    """The GitHub anchor of a ``## CODE — summary`` heading."""
    heading = f"{code} — {summary}".lower()
    return re.sub(r"[^a-z0-9 _-]", "", heading).replace(" ", "-")
