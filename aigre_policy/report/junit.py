"""Findings as JUnit XML, for CI systems that show test reports.

Each pack is a ``testsuite``; each check of it (compile, lint, format) a
``testcase`` that fails with one ``failure`` per error. ``aigre-policy test``
keeps its own report (``testing.report.to_junit``); ``ci`` appends these suites
to it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from aigre_policy.report.findings import ERROR, Finding

HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'


def add_suite(
    root: ET.Element, name: str, checks: Sequence[tuple[str, Iterable[Finding]]]
) -> ET.Element:
    """Append a ``testsuite`` named ``name`` with one ``testcase`` per (check, findings)."""
    suite = ET.SubElement(root, "testsuite", name=name)
    failures = 0
    for check, findings in checks:
        errors = [f for f in findings if f.level == ERROR]
        case = ET.SubElement(suite, "testcase", name=check, classname=name)
        if errors:
            failures += 1
            first = errors[0]
            failure = ET.SubElement(case, "failure", message=_line(first), type=first.code)
            failure.text = "\n".join(_line(f) for f in errors)
    suite.set("tests", str(len(checks)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    return suite


def to_junit(
    packs: Sequence[tuple[str, Sequence[tuple[str, Iterable[Finding]]]]], name: str
) -> str:
    root = ET.Element("testsuites", name=name)
    for pack, checks in packs:
        add_suite(root, pack, checks)
    return serialize(root)


def serialize(root: ET.Element) -> str:
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for suite in root.iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return HEADER + ET.tostring(root, encoding="unicode") + "\n"


def _line(finding: Finding) -> str:
    where = f"{finding.span}: " if finding.span is not None else ""
    return f"{where}{finding.level}[{finding.code}]: {finding.message}"
