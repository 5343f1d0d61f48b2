"""L201, L202: rules that leave out what a reader of the verdict needs.

Without ``because`` a fired rule reports only its title (or ``rule ID fired``);
without ``severity`` it reports ``medium`` whether or not that was meant.
"""

from __future__ import annotations

from collections.abc import Iterator

from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lint.context import PackView, finding


def check(view: PackView) -> Iterator[Diagnostic]:
    for rule in view.rules:
        decl = view.rule_decls[rule.id]
        if not decl.because:
            yield finding(
                "L201",
                f"rule `{rule.id}` has no `because` message",
                rule.span,
                'say why it fired, with the values that matter: `because "{action.kind} on '
                '{action.target} ..."`',
            )
        if not any(meta.key == "severity" for meta in decl.meta):
            yield finding(
                "L202",
                f"rule `{rule.id}` has no severity; its verdicts say `medium`",
                rule.span,
                "add `severity: low`, `medium`, `high` or `critical`",
            )
