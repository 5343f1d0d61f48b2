"""Findings as a SARIF 2.1.0 log, for GitHub code scanning and other SARIF viewers.

Locations are relative to the directory the command ran in (``%SRCROOT%``), so
a viewer that knows the repository checkout places them on the right line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aigre_policy import __version__
from aigre_policy.report.findings import Finding
from aigre_policy.report.rules import rule_info

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
ROOT = "%SRCROOT%"
INFORMATION_URI = "https://pypi.org/project/aigre-policy/"


def to_sarif(findings: Iterable[Finding], root: Path | None = None) -> dict[str, Any]:
    """The SARIF log: one run, one rule per code used, one result per finding."""
    base = (root or Path.cwd()).resolve()
    findings = list(findings)
    codes = sorted({f.code for f in findings})
    index = {code: i for i, code in enumerate(codes)}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "aigre-policy",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(code) for code in codes],
                    }
                },
                "originalUriBaseIds": {ROOT: {"uri": base.as_uri() + "/"}},
                "results": [_result(f, index[f.code], base) for f in findings],
            }
        ],
    }


def dumps(findings: Iterable[Finding], root: Path | None = None) -> str:
    return json.dumps(to_sarif(findings, root), indent=2, ensure_ascii=False) + "\n"


def _rule(code: str) -> dict[str, Any]:
    info = rule_info(code)
    return {
        "id": info.id,
        "name": info.name,
        "shortDescription": {"text": info.summary},
        "fullDescription": {"text": f"{info.summary}; category {info.category}"},
        "help": {"text": info.help},
        "defaultConfiguration": {"level": info.level},
        "properties": {"category": info.category, "tags": ["aigre-policy", info.category]},
    }


def _result(finding: Finding, rule_index: int, base: Path) -> dict[str, Any]:
    message = finding.message + (f"\nhint: {finding.hint}" if finding.hint else "")
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": finding.level,
        "message": {"text": message},
    }
    span = finding.span
    if span is not None and span.file and not span.file.startswith("<"):
        result["locations"] = [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": relative_uri(span.file, base), "uriBaseId": ROOT},
                    "region": {
                        "startLine": span.line,
                        "startColumn": span.column,
                        "endLine": span.end_line,
                        "endColumn": max(span.end_column, span.column + 1)
                        if span.end_line == span.line
                        else span.end_column,
                    },
                }
            }
        ]
    return result


def relative_uri(file: str, base: Path) -> str:
    """``file`` relative to ``base``, with forward slashes (absolute when outside it)."""
    path = Path(file)
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        relative = Path(os.path.relpath(absolute.resolve(), base))
    except ValueError:  # another drive
        return absolute.as_uri()
    if relative.parts and relative.parts[0] == "..":
        return absolute.resolve().as_uri()
    return relative.as_posix()
