"""Test results as data: the JSON document and JUnit XML of ``aigre-policy test``.

``PackRun`` holds everything one pack's run produced; ``sections`` carries the
parts other checks add (coverage, invariants, mutants), each with its own
verdict, JSON and JUnit test cases, so the formats need no change to show them.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.testing.runner import ERROR, FAILED, CaseResult, SuiteResult


@dataclass
class SectionResult:
    """What one extra part of a run adds: pass/fail, JSON, and JUnit cases."""

    name: str
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    # (test name, failure message or None, details) for JUnit
    junit: list[tuple[str, str | None, str]] = field(default_factory=list)
    view: Any = None  # what the section's text view reads; not part of the JSON


@dataclass
class PackRun:
    suite: SuiteResult
    sections: list[SectionResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.suite.ok and all(s.ok for s in self.sections)


def case_to_dict(result: CaseResult) -> dict[str, Any]:
    case = result.case
    out: dict[str, Any] = {
        "name": case.name,
        "status": result.status,
        "location": case.location.to_dict(),
        "expected": case.expectation.to_dict(),
        "elapsed_ms": round(result.elapsed_ms, 3),
    }
    if result.verdict is not None:
        out["actual"] = {
            "decision": result.verdict.decision,
            "fail_closed": result.verdict.fail_closed,
            "fired": result.verdict.rule_ids,
            "warnings": [w["id"] for w in result.verdict.warnings],
        }
    if result.mismatches:
        out["mismatches"] = [m.to_dict() for m in result.mismatches]
        out["evidence"] = (
            [*result.verdict.fired, *result.verdict.warnings] if result.verdict else []
        )
    if result.error:
        out["error"] = result.error
    return out


def run_to_dict(run: PackRun) -> dict[str, Any]:
    suite = suite_summary(run.suite)
    pack = run.suite.pack
    return {
        "pack": {"name": pack.name, "version": pack.version, "root": str(pack.root)},
        "ok": run.ok,
        "summary": suite,
        "tests": [case_to_dict(r) for r in run.suite.results],
        **{s.name: {"ok": s.ok, **s.data} for s in run.sections},
    }


def suite_summary(suite: SuiteResult) -> dict[str, Any]:
    return {
        "tests": len(suite.results),
        "passed": len(suite.passed),
        "failed": len(suite.failed),
        "errors": len(suite.errors),
        "stopped_early": suite.stopped_early,
        "elapsed_ms": round(suite.elapsed_ms, 3),
    }


def to_json(runs: list[PackRun]) -> str:
    document = {"ok": all(r.ok for r in runs), "packs": [run_to_dict(r) for r in runs]}
    return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"


def failure_text(result: CaseResult) -> str:
    """Plain text of why a case failed: each mismatch, then the evidence."""
    lines = [f"{result.case.location}: {result.case.name}"]
    if result.error:
        lines.append(f"error: {result.error}")
    for m in result.mismatches:
        lines.append(f"{m.what}: expected {_plain(m.expected)}, got {_plain(m.actual)}")
        if m.detail:
            lines.append(f"  {m.detail}")
    if result.verdict is not None:
        for record in [*result.verdict.fired, *result.verdict.warnings]:
            lines.append(f"fired {record['id']} ({record['verdict']}): {record['message']}")
            for c in record.get("comparisons", []):
                lines.append(
                    f"  {c['expression']}: {_plain(c['left'])} {c['op']} {_plain(c['right'])}"
                    f" -> {str(c['result']).lower()}"
                )
    return "\n".join(lines)


def _plain(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def to_junit(runs: list[PackRun]) -> str:
    """JUnit XML: one ``testsuite`` per pack, one ``testcase`` per test and section check."""
    root = ET.Element("testsuites", name="aigre-policy test")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for run in runs:
        pack = run.suite.pack
        suite = ET.SubElement(root, "testsuite", name=pack.name)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        for result in run.suite.results:
            case = ET.SubElement(
                suite,
                "testcase",
                name=result.case.name,
                classname=pack.name,
                file=result.case.location.file,
                line=str(result.case.location.line),
                time=f"{result.elapsed_ms / 1000:.6f}",
            )
            counts["tests"] += 1
            if result.status == FAILED:
                counts["failures"] += 1
                first = result.mismatches[0]
                message = f"{first.what}: expected {_plain(first.expected)}"
                failure = ET.SubElement(case, "failure", message=message, type=first.what)
                failure.text = failure_text(result)
            elif result.status == ERROR:
                counts["errors"] += 1
                error = ET.SubElement(case, "error", message=result.error or "", type="error")
                error.text = failure_text(result)
        for section in run.sections:
            for name, problem, details in section.junit:
                case = ET.SubElement(
                    suite, "testcase", name=name, classname=f"{pack.name}.{section.name}"
                )
                counts["tests"] += 1
                if problem is not None:
                    counts["failures"] += 1
                    failure = ET.SubElement(case, "failure", message=problem, type=section.name)
                    failure.text = details
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{run.suite.elapsed_ms / 1000:.6f}")
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
