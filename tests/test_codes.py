"""The registry of diagnostic codes: every code raised is registered and documented.

A code is raised where its literal is written (``error("E201", ...)``,
``Finding("T001", ...)``, ``TORN = "V007"``); the scan reads every string literal
shaped like a code in aigre_policy/. Anchors are checked against the headings of
the page each code names, as GitHub renders them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aigre_policy.codes import (
    FAMILIES,
    REGISTRY,
    RETIRED,
    Severity,
    UnregisteredCode,
    heading_anchor,
)
from aigre_policy.diagnostics import Diagnostic, error
from aigre_policy.gate.log_problems import LogProblem
from aigre_policy.report.findings import ERROR, Finding
from aigre_policy.report.rules import rule_info

ROOT = Path(__file__).resolve().parent.parent
CODE_LITERAL = re.compile(r"""["']([A-Z][0-9]{3})["']""")
COMPILER_CATEGORIES = {
    "syntax", "names", "type", "optional", "pack", "target", "rego", "test"
}  # fmt: skip


def raised_codes() -> dict[str, set[str]]:
    """Each code literal in the product's source, with the files that hold it."""
    found: dict[str, set[str]] = {}
    for source in (ROOT / "aigre_policy").rglob("*.py"):
        if source == ROOT / "aigre_policy" / "codes.py":
            continue
        for code in CODE_LITERAL.findall(source.read_text("utf-8")):
            found.setdefault(code, set()).add(str(source.relative_to(ROOT)))
    return found


def anchors_of(page: Path) -> set[str]:
    """The fragments of a Markdown page's headings (fenced code is not a heading)."""
    text = re.sub(r"^```.*?^```", "", page.read_text("utf-8"), flags=re.MULTILINE | re.DOTALL)
    return {heading_anchor(h) for h in re.findall(r"^#{1,6} (.+?)\s*$", text, re.MULTILINE)}


def test_every_code_raised_is_registered():
    raised = raised_codes()
    unregistered = {code: files for code, files in raised.items() if code not in REGISTRY}
    assert unregistered == {}
    assert len(raised) > 80  # the scan sees the codes (a broken pattern would pass vacuously)


def test_every_registered_code_is_raised_somewhere():
    assert set(REGISTRY) - set(raised_codes()) == RETIRED


def test_a_retired_code_is_registered_documented_and_never_raised():
    assert set(REGISTRY) >= RETIRED
    assert RETIRED & set(raised_codes()) == set()
    text = (ROOT / "docs" / "diagnostics.md").read_text("utf-8")
    for code in RETIRED:
        section = text.split(f"## {code} — ", 1)[1].split("\n## ", 1)[0]
        assert "Retired" in section, code


def test_every_anchor_exists():
    pages: dict[str, set[str]] = {}
    missing = []
    for code in REGISTRY.values():
        page, fragment = code.doc.split("#")
        if page not in pages:
            pages[page] = anchors_of(ROOT / page)
        if fragment not in pages[page]:
            missing.append((code.code, code.doc))
    assert missing == []


def test_diagnostics_md_lists_every_code_with_its_summary():
    text = (ROOT / "docs" / "diagnostics.md").read_text("utf-8")
    rows = {
        m[0]: m[1:]
        for m in re.findall(
            r"^\| ([A-Z]\d{3}) \| (\w+) \| ([\w-]+) \| (.+?) \| \[\1\]\((\S+)\) \|$",
            text,
            re.MULTILINE,
        )
    }
    expected = {}
    for c in REGISTRY.values():
        page, fragment = c.doc.split("#")
        link = f"#{fragment}" if page == "docs/diagnostics.md" else f"{page[5:]}#{fragment}"
        expected[c.code] = (str(c.severity), c.category, c.summary, link)
    assert rows == expected


def test_compiler_headings_carry_the_registered_summary():
    text = (ROOT / "docs" / "diagnostics.md").read_text("utf-8")
    headings = dict(re.findall(r"^## ([EW]\d{3}) — (.+)$", text, re.MULTILINE))
    compiler = {c.code: c.summary for c in REGISTRY.values() if c.code[0] in "EW"}
    assert headings == compiler


def test_no_two_families_share_a_prefix():
    prefixes: dict[str, set[str]] = {}
    for code in REGISTRY.values():
        assert re.fullmatch(r"[A-Z]\d{3}", code.code)
        family = "compiler" if code.category in COMPILER_CATEGORIES else code.category
        prefixes.setdefault(family, set()).add(code.code[0])
    assert prefixes == {
        "compiler": {"E", "W"},
        "lint": {"L"},
        "log": {"V"},
        "test-run": {"T"},
        "format": {"F"},
    }
    assert set(FAMILIES) == {p for ps in prefixes.values() for p in ps}


def test_severity_follows_the_compiler_prefix():
    for code in REGISTRY.values():
        if code.code[0] in "EW":
            assert (code.severity is Severity.WARNING) == (code.code[0] == "W"), code.code


def test_an_unregistered_code_cannot_be_raised():
    with pytest.raises(UnregisteredCode):
        error("E999", "no such code")
    with pytest.raises(UnregisteredCode):
        Diagnostic("X001", Severity.ERROR, "no such family")
    with pytest.raises(UnregisteredCode):
        Finding("T999", ERROR, "no such finding")
    with pytest.raises(UnregisteredCode):
        rule_info("E999")


def test_log_problems_have_their_own_prefix():
    """Log-verify codes were L001-L016, the lint prefix; they are V001-V016 now."""
    assert str(LogProblem("log.jsonl", 3, "V003", "seq jumps")).startswith("log.jsonl:3: V003")
    for old in ("L001", "L016"):
        with pytest.raises(UnregisteredCode):
            LogProblem("log.jsonl", 1, old, "the old code")
    with pytest.raises(UnregisteredCode):  # a lint code is no log problem
        LogProblem("log.jsonl", 1, "L101", "a lint code")
