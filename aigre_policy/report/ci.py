"""What ``aigre-policy ci`` found for each pack, and that result in every report format."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.report import github, junit, sarif
from aigre_policy.report.findings import Finding, failed
from aigre_policy.testing.report import PackRun, run_to_dict
from aigre_policy.testing.report import to_junit as tests_junit

PASS, FAIL, SKIPPED = "pass", "FAIL", "skipped"
CHECKS = ("compile", "lint", "format", "tests")


@dataclass
class PackResult:
    """One pack through every check; a check that could not run is ``skipped``."""

    pack: str
    findings: dict[str, list[Finding]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    status: dict[str, str] = field(default_factory=lambda: dict.fromkeys(CHECKS, SKIPPED))
    run: PackRun | None = None
    coverage: str = "-"  # rules tested on both sides of their line, "done/all"
    lint_notes: tuple[str, ...] = ()  # what the linter left undecided, as check --strict says

    def record(self, check: str, findings: list[Finding], ok: bool | None = None) -> None:
        self.findings[check] = findings
        self.status[check] = PASS if (not failed(findings) if ok is None else ok) else FAIL

    @property
    def ok(self) -> bool:
        return all(status == PASS for status in self.status.values())

    @property
    def all_findings(self) -> list[Finding]:
        return [f for check in CHECKS for f in self.findings[check]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "ok": self.ok,
            "checks": dict(self.status),
            "coverage": self.coverage,
            "findings": [f.to_dict() for f in self.all_findings],
            "tests": run_to_dict(self.run) if self.run is not None else None,
            **({"lint_notes": list(self.lint_notes)} if self.lint_notes else {}),
        }


def ci_report(fmt: str, results: Sequence[PackResult]) -> str:
    if fmt == "json":
        document = {"ok": all(r.ok for r in results), "packs": [r.to_dict() for r in results]}
        return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "junit":
        runs = [r.run for r in results if r.run is not None]
        root = ET.fromstring(tests_junit(runs)) if runs else ET.Element("testsuites")
        root.set("name", "aigre-policy ci")
        for result in results:
            checks = [(check, result.findings[check]) for check in CHECKS[:3]]
            junit.add_suite(root, f"{result.pack} checks", checks)
        return junit.serialize(root)
    findings = [f for r in results for f in r.all_findings]
    if fmt == "sarif":
        return sarif.dumps(findings)
    if fmt == "github":
        return github.to_github(findings)
    raise ValueError(f"unknown format {fmt}")
