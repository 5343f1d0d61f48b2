"""``aigre-policy ci``: the one command a pipeline runs over a repository's packs.

For every pack: compile, ``check --strict`` (lint clean at the levels the pack
sets), ``fmt --check``, and ``test --require-bright-lines``; a summary table at
the end. Each step is the function the matching command uses.

Exit codes: 0 every pack passed every check; 1 some check failed; 2 misuse
(no pack found, a report file that cannot be written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from aigre_policy.checked import CompileReport
from aigre_policy.cli import output
from aigre_policy.cli import test as test_command
from aigre_policy.cli.check import add_expiry_argument
from aigre_policy.cli.common import EXIT_FAILURES, find_packs
from aigre_policy.cli.output import report_file
from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import Diagnostic, Severity, SourceText, Span, render
from aigre_policy.exemptions import WARN_DAYS, pack_expiry_warnings
from aigre_policy.fmt import format_file
from aigre_policy.fmt.files import pack_sources
from aigre_policy.lint import strict_lint
from aigre_policy.pack import load_pack
from aigre_policy.report.check import split
from aigre_policy.report.ci import FAIL, PASS, PackResult, ci_report
from aigre_policy.report.findings import ERROR, Finding, from_diagnostics
from aigre_policy.report.tests import run_findings
from aigre_policy.testing.cases import load_cases


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "ci",
        help="compile, lint, format-check and test every pack",
        description="Run every check a pack must pass in CI: compile, check --strict, "
        "fmt --check, test --require-bright-lines. Exit 0 only when every pack passes.",
    )
    parser.add_argument("packs", nargs="+", help="pack directories, or directories of packs")
    parser.add_argument(
        "--format",
        choices=("text", "json", "sarif", "github", "junit"),
        default="text",
        help="the report of every finding (text prints them; the summary table is always shown)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    add_expiry_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    packs = find_packs(args.packs)
    results = [check_pack(path, args.exemption_warning_days) for path in packs]
    table_console = console if args.format == "text" else output.console(stderr=True)
    if args.format == "text":
        with report_file(args.output) as out:
            target = console if not args.output else output.console(file=out)
            for result in results:
                show_findings(target, result)
    else:
        with report_file(args.output) as out:
            out.write(ci_report(args.format, results))
    table_console.print(summary_table(results))
    passed = sum(r.ok for r in results)
    table_console.print(
        f"{passed} of {len(results)} pack{'s' if len(results) != 1 else ''} passed",
        style="green" if passed == len(results) else "red",
        highlight=False,
    )
    return 0 if passed == len(results) else EXIT_FAILURES


def check_pack(path: Path, warn_days: int = WARN_DAYS) -> PackResult:
    """Every check on one pack, each with the function its own command uses."""
    result = PackResult(str(path))
    report = compile_pack(path)
    strict, result.lint_notes = strict_lint(report)
    diagnostics = [*strict, *pack_expiry_warnings(report, warn_days)]
    compile_findings, lint_findings = split(diagnostics, str(path))
    result.record("compile", compile_findings, ok=report.ok)
    if report.ok:
        # strict promotes compiler warnings too: the lint check fails on them as well
        promoted = [f for f in compile_findings if f.level == ERROR and report.ok]
        result.record(
            "lint",
            lint_findings,
            ok=not promoted and not any(f.level == ERROR for f in lint_findings),
        )
    result.record("format", format_findings(path))
    if report.ok:
        _tests(result, report)
    return result


def format_findings(pack: Path) -> list[Finding]:
    """``fmt --check`` on the pack's policy files."""
    found: list[Finding] = []
    for file in pack_sources(pack):
        formatted = format_file(file)
        if not formatted.ok:
            found += [
                Finding("F002", ERROR, f"cannot format: {d.message}", d.span, d.hint, str(pack))
                for d in formatted.diagnostics
            ]
        elif formatted.changed:
            line = _first_changed_line(formatted.original, formatted.formatted or "")
            found.append(
                Finding(
                    "F001",
                    ERROR,
                    f"{file} is not in the canonical layout",
                    Span(str(file), line, 1, line, 2),
                    f"run `aigre-policy fmt {file}`",
                    str(pack),
                )
            )
    return found


def _first_changed_line(before: str, after: str) -> int:
    for number, (old, new) in enumerate(zip(before.split("\n"), after.split("\n"), strict=False)):
        if old != new:
            return number + 1
    return min(before.count("\n"), after.count("\n")) + 1


def _tests(result: PackResult, report: CompileReport) -> None:
    """``test --require-bright-lines``, with the test command's own defaults (the pack
    compiled, so loading it cannot fail)."""
    pack = load_pack(report.compiled.root if report.compiled else result.pack)
    cases, diagnostics = load_cases(pack)
    problems = [f for f in from_diagnostics(diagnostics, result.pack) if f.level == ERROR]
    if problems:
        cannot_load = [Finding("T002", ERROR, f.message, f.span, f.hint, f.pack) for f in problems]
        result.record("tests", cannot_load)
        return
    args = _test_arguments(result.pack)
    run = test_command.run_pack(pack, cases, args)
    result.run = run
    result.record("tests", run_findings(run), ok=run.ok)
    coverage = next((s for s in run.sections if s.name == "coverage"), None)
    if coverage is not None and coverage.view is not None:
        rules = coverage.view.rules
        result.coverage = f"{sum(r.complete for r in rules)}/{len(rules)} rules"


def _test_arguments(pack: str) -> argparse.Namespace:
    """What ``aigre-policy test PACK --require-bright-lines`` would run with."""
    parser = argparse.ArgumentParser()
    test_command.add_parser(parser.add_subparsers())
    return parser.parse_args(["test", pack, "--require-bright-lines"])


# ------------------------------------------------------------------ text view


def show_findings(console: Console, result: PackResult) -> None:
    sources = _sources(result.all_findings)
    for finding in result.all_findings:
        if finding.code in ("T001", "T002") and result.run is not None:
            text = f"{finding.level}[{finding.code}]: {finding.message}"
        else:
            severity = Severity.ERROR if finding.level == ERROR else Severity.WARNING
            diagnostic = Diagnostic(
                finding.code, severity, finding.message, finding.span, finding.hint
            )
            text = render(diagnostic, sources)
        style = "red" if finding.level == ERROR else "yellow"
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)
        console.print()
    for note in result.lint_notes:  # what the linter left undecided, as check --strict says
        console.print(f"note: {note}", style="dim", markup=False, highlight=False, soft_wrap=True)


def _sources(findings: list[Finding]) -> SourceText:
    files: dict[str, str] = {}
    for finding in findings:
        span = finding.span
        if span is not None and span.file not in files:
            try:
                files[span.file] = Path(span.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
    return SourceText(files)


def summary_table(results: list[PackResult]) -> Table:
    table = Table(title="aigre-policy ci", title_justify="left", box=None, pad_edge=False)
    for column in ("pack", "compile", "lint", "format", "tests", "coverage"):
        table.add_column(column, no_wrap=column == "pack")
    for result in results:
        cells = [Text(result.pack, style="" if result.ok else "red")]
        for check in ("compile", "lint", "format", "tests"):
            status = result.status[check]
            errors = sum(f.level == ERROR for f in result.findings[check])
            label = status if status != FAIL or not errors else f"{status} ({errors})"
            style = {PASS: "green", FAIL: "red"}.get(status, "dim")
            cells.append(Text(label, style=style))
        cells.append(Text(result.coverage))
        table.add_row(*cells)
    return table
