"""``aigre-policy fmt``: rewrite policy files in their canonical layout, or check they are.

Exit codes: 0 every file is (now) formatted; 1 with ``--check`` or ``--diff``,
some file would change; 2 a file does not parse or cannot be read (it is left
untouched), or misuse.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from aigre_policy.cli import output
from aigre_policy.cli.common import EXIT_FAILURES, EXIT_USAGE, UsageError
from aigre_policy.diagnostics import SourceText, render
from aigre_policy.fmt import FormatResult, format_file
from aigre_policy.fmt.files import NoSources, find_sources, unified_diff, write_atomically


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fmt",
        help="format .aigre files in the canonical layout",
        description="Format policy files in place, keeping every comment. Exit code: 0 all "
        "formatted, 1 with --check/--diff some file would change, 2 a file that does not "
        "parse (left untouched) or misuse.",
    )
    parser.add_argument("paths", nargs="+", help=".aigre files, or directories searched for them")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; list the files that would change"
    )
    parser.add_argument(
        "--diff", action="store_true", help="write nothing; print what would change as a diff"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    try:
        files = find_sources(args.paths)
    except NoSources as exc:
        raise UsageError(str(exc)) from exc
    results = [format_file(path) for path in files]
    errors = output.console(stderr=True)
    dry_run = args.check or args.diff
    for result in results:
        if not result.ok:
            _show_failure(errors, result)
        elif result.changed and args.diff:
            sys.stdout.write(unified_diff(result))
        elif result.changed and args.check:
            console.print(f"would reformat {result.file}", highlight=False, markup=False)
        elif result.changed:
            assert result.formatted is not None
            try:
                write_atomically(Path(result.file), result.formatted)
            except OSError as exc:
                raise UsageError(f"cannot write {result.file}: {exc.strerror or exc}") from exc
            console.print(f"reformatted {result.file}", highlight=False, markup=False)
    failed = [r for r in results if not r.ok]
    changed = [r for r in results if r.changed]
    verb = "would be reformatted" if dry_run else "reformatted"
    summary = f"{_files(len(changed))} {verb}, {_files(len(results) - len(changed) - len(failed))}"
    summary += " already formatted" if dry_run else " left unchanged"
    if failed:
        summary += f", {_files(len(failed))} could not be formatted"
    errors.print(summary, markup=False)
    if failed:
        return EXIT_USAGE
    return EXIT_FAILURES if dry_run and changed else 0


def _show_failure(errors: Console, result: FormatResult) -> None:
    sources = SourceText({result.file: result.original})
    for diagnostic in result.diagnostics:
        errors.print(render(diagnostic, sources), style="red", markup=False)
    errors.print(f"error: cannot format {result.file}; it was left untouched", markup=False)


def _files(count: int) -> str:
    return f"{count} file{'s' if count != 1 else ''}"
