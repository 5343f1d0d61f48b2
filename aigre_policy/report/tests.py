"""The results of ``aigre-policy test`` as findings: failed tests, gaps, broken invariants."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aigre_policy.diagnostics import Span
from aigre_policy.report import github, sarif
from aigre_policy.report.findings import ERROR, Finding
from aigre_policy.testing.report import PackRun, failure_text
from aigre_policy.testing.runner import ERROR as CASE_ERROR
from aigre_policy.testing.runner import FAILED


def run_findings(run: PackRun) -> list[Finding]:
    """Every problem of one pack's test run, placed at the test, rule or invariant concerned."""
    pack = run.suite.pack
    root = str(pack.root)
    found: list[Finding] = []
    for result in run.suite.results:
        if result.status == FAILED:
            found.append(
                Finding("T001", ERROR, failure_text(result), result.case.location, None, root)
            )
        elif result.status == CASE_ERROR:
            found.append(
                Finding("T002", ERROR, failure_text(result), result.case.location, None, root)
            )
    rules = {rule.id: rule for rule in pack.program.rules}
    for section in run.sections:
        if section.name == "coverage":
            for gap in section.data.get("gaps", []):
                rule = rules.get(gap["rule"])
                found.append(
                    Finding(
                        "T003",
                        ERROR,
                        f"rule `{gap['rule']}`: {gap['gap']}",
                        rule.span if rule is not None else None,
                        "`aigre-policy test --require-bright-lines` prints a checked test skeleton",
                        root,
                    )
                )
        elif section.name == "invariants":
            for item in section.data.get("invariants", []):
                if item.get("status") == "broken":
                    found.append(
                        Finding(
                            "T004",
                            ERROR,
                            f'invariant "{item["name"]}" is broken: expected {item["expect"]}, '
                            f"got {item.get('decision')}",
                            _span(item.get("location")),
                            "`aigre-policy test` prints the counterexample as a test",
                            root,
                        )
                    )
        else:
            for name, problem, _details in section.junit:
                if problem is not None:
                    manifest = Span(str(Path(root) / "pack.yaml"), 1, 1, 1, 1)
                    found.append(Finding("T005", ERROR, f"{name}: {problem}", manifest, None, root))
    return found


def _span(location: dict[str, Any] | None) -> Span | None:
    if not location:
        return None
    return Span(
        location["file"],
        location["line"],
        location["column"],
        location.get("end_line", location["line"]),
        location.get("end_column", location["column"] + 1),
    )


def run_report(fmt: str, runs: Sequence[PackRun]) -> str:
    findings = [f for run in runs for f in run_findings(run)]
    if fmt == "sarif":
        return sarif.dumps(findings)
    if fmt == "github":
        return github.to_github(findings)
    raise ValueError(f"unknown format {fmt}")
