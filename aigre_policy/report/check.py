"""The report of ``aigre-policy check`` in the CI formats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aigre_policy.codes import lookup
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.report import github, junit, sarif
from aigre_policy.report.findings import Finding, from_diagnostics


def split(diagnostics: Sequence[Diagnostic], pack: str) -> tuple[list[Finding], list[Finding]]:
    """Compile findings and lint findings (the registry's category ``lint``)."""
    found = from_diagnostics(diagnostics, pack)
    is_lint = [lookup(f.code).category == "lint" for f in found]
    return (
        [f for f, lint in zip(found, is_lint, strict=True) if not lint],
        [f for f, lint in zip(found, is_lint, strict=True) if lint],
    )


def check_report(fmt: str, reports: Sequence[tuple[Path, Any, Sequence[Diagnostic]]]) -> str:
    """``reports``: (pack path, compile report, diagnostics shown) for each pack."""
    per_pack = [(str(path), *split(diagnostics, str(path))) for path, _, diagnostics in reports]
    if fmt == "junit":
        return junit.to_junit(
            [(pack, [("compile", comp), ("lint", lint)]) for pack, comp, lint in per_pack],
            "aigre-policy check",
        )
    findings = [f for _, comp, lint in per_pack for f in (*comp, *lint)]
    if fmt == "sarif":
        return sarif.dumps(findings)
    if fmt == "github":
        return github.to_github(findings)
    raise ValueError(f"unknown format {fmt}")
