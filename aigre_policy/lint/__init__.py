"""The linter: problems a pack compiles with, found by ``aigre-policy check --strict``.

Each finding is a ``Diagnostic`` with a stable code (``codes.CODES``: L1xx bugs,
L2xx style, L3xx testing, L4xx performance, L5xx safety) and a location. One
module per family of checks; each is a generator of findings over a
``PackView``. Severities come from the code's default, then the pack's
``lint:`` section; inline comments suppress single findings. ``docs/lint.md``
documents every code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from aigre_policy.checked import CompileReport
from aigre_policy.diagnostics import Diagnostic, Severity, sorted_diagnostics
from aigre_policy.exemptions import NOTICES
from aigre_policy.lint import (
    claims,
    conditions,
    coverage,
    exact,
    metadata,
    permits,
    shadowing,
    target,
    unused,
)
from aigre_policy.lint.codes import CATEGORIES, CODES, LintCode, category_of
from aigre_policy.lint.config import LintConfig, read_config
from aigre_policy.lint.context import PackView
from aigre_policy.lint.suppress import apply_suppressions, read_suppressions

__all__ = [
    "CATEGORIES",
    "CHECKS",
    "CODES",
    "LintCode",
    "LintResult",
    "category_of",
    "lint_pack",
    "strict_diagnostics",
    "strict_lint",
]

Check = Callable[[PackView], Iterator[Diagnostic]]

CHECKS: tuple[Check, ...] = (
    conditions.check,
    shadowing.check,
    exact.check,
    permits.check,
    claims.check,
    metadata.check,
    unused.check,
    coverage.check,
    target.check,
)


@dataclass(frozen=True)
class LintResult:
    findings: list[Diagnostic]
    config: LintConfig
    notes: tuple[str, ...] = ()  # what was left undecided, and why (lint.exact)


def lint_pack(
    report: CompileReport, checks: Iterable[Check] = CHECKS, *, exact: bool = True
) -> LintResult:
    """The lint findings of a pack that compiled, at the levels the pack sets.

    ``exact``: also put what the range search leaves open to the SMT solver
    (``lint.exact``, when z3 is installed); ``False`` keeps to the range search.
    """
    if report.compiled is None:
        raise ValueError("only a pack that compiles can be linted")
    compiled = report.compiled
    config = read_config(compiled.root)
    view = PackView(compiled, report.sources.files, exact=exact)
    raw = [d for check in checks for d in check(view)]
    suppressions, problems = read_suppressions(report.sources.files)
    kept, unused_suppressions = apply_suppressions(_levelled(raw, config), suppressions)
    meta = _levelled([*config.problems, *problems, *unused_suppressions], config)
    return LintResult(sorted_diagnostics([*kept, *meta]), config, tuple(view.notes))


def strict_diagnostics(report: CompileReport) -> list[Diagnostic]:
    """What ``check --strict`` reports: compile diagnostics and lint findings, warnings promoted.

    Every warning becomes an error — the compiler's, and the linter's — except
    lint codes the pack sets to ``warning`` itself in ``pack.yaml``. A pack that
    does not compile is not linted.
    """
    return strict_lint(report)[0]


def strict_lint(report: CompileReport) -> tuple[list[Diagnostic], tuple[str, ...]]:
    """``strict_diagnostics`` and the lint's notes on what it left undecided."""
    found = list(report.diagnostics)
    config = None
    notes: tuple[str, ...] = ()
    if report.ok:
        result = lint_pack(report)
        found += result.findings
        config = result.config
        notes = result.notes
    promoted = [
        d
        if d.severity is Severity.ERROR
        or (config is not None and config.sets(d.code))
        or d.code in NOTICES  # a logged `disable` or an exemption's expiry: told, not failed
        else dataclasses.replace(d, severity=Severity.ERROR)
        for d in found
    ]
    return sorted_diagnostics(promoted), notes


def _levelled(findings: Iterable[Diagnostic], config: LintConfig) -> list[Diagnostic]:
    return [d for d in (config.apply(f) for f in findings) if d is not None]
