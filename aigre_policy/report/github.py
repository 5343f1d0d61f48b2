"""Findings as GitHub Actions workflow commands: annotations on the pull request's lines.

``::error file=F,line=L,col=C,endLine=L2,endColumn=C2,title=T::message``. GitHub
reads ``%``, CR and LF as escapes in the message, and ``:`` and ``,`` too in
property values, so each is percent-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from aigre_policy.report.findings import ERROR, Finding
from aigre_policy.report.rules import rule_info
from aigre_policy.report.sarif import relative_uri


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(finding: Finding, root: Path | None = None) -> str:
    base = (root or Path.cwd()).resolve()
    kind = "error" if finding.level == ERROR else "warning"
    properties: list[tuple[str, str]] = []
    span = finding.span
    if span is not None and span.file and not span.file.startswith("<"):
        properties += [
            ("file", relative_uri(span.file, base)),
            ("line", str(span.line)),
            ("col", str(span.column)),
            ("endLine", str(span.end_line)),
            ("endColumn", str(span.end_column)),
        ]
    properties.append(("title", f"{finding.code} {rule_info(finding.code).summary}"))
    message = finding.message + (f"\nhint: {finding.hint}" if finding.hint else "")
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::{kind} {joined}::{escape_data(message)}"


def to_github(findings: Iterable[Finding], root: Path | None = None) -> str:
    return "".join(command(f, root) + "\n" for f in findings)
