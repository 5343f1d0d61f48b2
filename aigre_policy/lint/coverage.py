"""L301: a rule no test exercises.

The pack's tests — ``test`` blocks and ``tests/*.yaml`` tables — are run with
the test runner (``aigre_policy.testing``). A rule is exercised when it fires
(or warns) in at least one test whose input is valid; a rule that never fires
in any test could be deleted, or broken, and every test would still pass.
Tests that cannot be built are the runner's to report, not the linter's.
"""

from __future__ import annotations

from collections.abc import Iterator

from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lint.context import PackView, finding
from aigre_policy.testing.runner import fired_ids


def exercised(view: PackView) -> set[str]:
    """Ids of the rules that fire in some test of the pack."""
    return {
        rule_id
        for result in view.suite.results
        if result.verdict is not None and not result.verdict.fail_closed
        for rule_id in fired_ids(result.verdict)
    }


def check(view: PackView) -> Iterator[Diagnostic]:
    fired = exercised(view)
    for rule in view.rules:
        if rule.id not in fired:
            yield finding(
                "L301",
                f"no test exercises rule `{rule.id}`: it fires in none of the pack's tests",
                rule.span,
                f"add a test where it fires: `expect {_decision(rule.verdict)} by {rule.id}`",
            )


def _decision(verdict: str) -> str:
    return {"warn": "allow", "permit": "allow"}.get(verdict, verdict)
