"""What each finding code means: the rule metadata SARIF carries in ``tool.driver.rules``.

Read from the registry of every code (``aigre_policy.codes``); an unregistered code
raises ``UnregisteredCode``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aigre_policy.codes import lookup


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: str
    name: str  # PascalCase, as SARIF viewers show it
    summary: str
    category: str
    level: str  # the default level: error | warning
    help: str


def rule_info(code: str) -> RuleInfo:
    """Everything known about a registered finding code."""
    known = lookup(code)
    return RuleInfo(
        code,
        _pascal(known.summary),
        known.summary,
        known.group,
        str(known.severity),
        f"{code}: {known.summary}. See {known.doc}.",
    )


def _pascal(text: str) -> str:
    return "".join(word.capitalize() for word in re.findall(r"[A-Za-z0-9]+", text))
