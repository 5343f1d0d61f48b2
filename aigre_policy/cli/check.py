"""``aigre-policy check``: compile packs and report every diagnostic.

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from aigre_policy.cli import output
from aigre_policy.cli.common import (
    EXIT_FAILURES,
    add_cache_argument,
    compile_cache,
    find_packs,
    parse_overrides,
)
from aigre_policy.cli.output import report_file
from aigre_policy.codes import lookup
from aigre_policy.diagnostics import Severity, has_errors, render
from aigre_policy.exemptions import WARN_DAYS, pack_expiry_warnings
from aigre_policy.report import FORMATS
from aigre_policy.report.check import check_report


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check",
        help="compile packs and report problems",
        description="Compile each pack and print every diagnostic: "
        "file:line:col, the line, a caret and a hint. Exit 1 on errors.",
    )
    parser.add_argument("packs", nargs="+", help="pack directories, or directories of packs")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    parser.add_argument(
        "--set",
        action="append",
        metavar="ENVELOPE.NAME=VALUE",
        help="override an envelope value (repeatable)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also lint the pack (docs/lint.md); every warning counts as an error, except "
        "lint codes the pack sets to `warning` in pack.yaml",
    )
    add_expiry_argument(parser)
    add_cache_argument(parser)
    parser.set_defaults(run=run)


def add_expiry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exemption-warning-days",
        type=int,
        default=WARN_DAYS,
        metavar="N",
        help=f"warn of exemptions that expire within N days (default {WARN_DAYS}); "
        "expired ones are always reported",
    )


def run(args: argparse.Namespace, console: Console) -> int:
    overrides = parse_overrides(args.set)
    reports = []
    lint_notes: dict[str, tuple[str, ...]] = {}  # what the linter left undecided, by pack
    failed = False
    cache = compile_cache(args)
    if cache is None:
        from aigre_policy.compiler import compile_pack  # a cached pack is read, not compiled
    for path in find_packs(args.packs):
        if cache is None:
            report = compile_pack(path, overrides)
        else:  # the linter reads the evaluator; the summary only the checked pack
            report = cache.compile(path, overrides, evaluator=args.strict)
        notes: tuple[str, ...] = ()
        if args.strict:  # the linter (and the models it reads) loads only for --strict
            from aigre_policy.lint import strict_lint

            diagnostics, notes = strict_lint(report)
        else:
            diagnostics = report.diagnostics
        diagnostics = [*diagnostics, *pack_expiry_warnings(report, args.exemption_warning_days)]
        failed |= not report.ok or has_errors(diagnostics)
        reports.append((path, report, diagnostics))
        lint_notes[str(path)] = notes
    if args.format in ("sarif", "github", "junit"):
        with report_file(args.output) as out:
            out.write(check_report(args.format, reports))
        return EXIT_FAILURES if failed else 0
    if args.format == "json":
        with report_file(args.output) as out:
            out.write(
                json.dumps(
                    [
                        {
                            "pack": str(path),
                            "ok": report.ok and not has_errors(diagnostics),
                            "diagnostics": [
                                {**d.to_dict(), "category": lookup(d.code).group}
                                for d in diagnostics
                            ],
                            **(
                                {"lint_notes": list(lint_notes[str(path)])}
                                if lint_notes[str(path)]
                                else {}
                            ),
                        }
                        for path, report, diagnostics in reports
                    ],
                    indent=2,
                )
                + "\n"
            )
        return EXIT_FAILURES if failed else 0
    with report_file(args.output) as out:
        if args.output:
            console = output.console(file=out)
        show_text(console, reports, lint_notes)
    return EXIT_FAILURES if failed else 0


def show_text(
    console: Console, reports: list, lint_notes: dict[str, tuple[str, ...]] | None = None
) -> None:
    for path, report, diagnostics in reports:
        for diagnostic in diagnostics:
            style = "red" if diagnostic.severity is Severity.ERROR else "yellow"
            console.print(
                render(diagnostic, report.sources),
                style=style,
                highlight=False,
                markup=False,
                soft_wrap=True,  # carets must stay under their column in piped CI logs
            )
            console.print()
        for note in (lint_notes or {}).get(str(path), ()):  # what the linter left undecided
            console.print(f"note: {note}", style="dim", highlight=False, markup=False)
        errors = sum(d.severity is Severity.ERROR for d in diagnostics)
        warnings = len(diagnostics) - errors
        if report.ok and report.checked is not None and not errors:
            checked = report.checked
            declared = checked.declared
            counts = (
                f"{len(checked.program.rules)} rules, {len(checked.envelopes)} envelopes, "
                f"{declared.get('Usage', 0)} usages, {declared.get('Test', 0)} tests, "
                f"{declared.get('Invariant', 0)} invariants"
            )
            note = f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
            console.print(
                f"[green]ok[/green] {path}: {checked.manifest.name} "
                f"{checked.manifest.version}: {counts}{note}",
                highlight=False,
            )
        else:
            console.print(
                f"[red]failed[/red] {path}: {errors} error{'s' if errors != 1 else ''}"
                f", {warnings} warning{'s' if warnings != 1 else ''}",
                highlight=False,
            )
