"""``aigre-policy test``: run packs' bright-line tests, with coverage and gap skeletons.

Exit codes: 0 every test (and every requested check) passed; 1 a test failed,
or a check such as ``--require-bright-lines`` did; 2 a pack does not compile,
a test file is malformed, or the command is misused.

Other checks plug in as a ``Section`` appended to ``SECTIONS``: it adds its
flags, runs once per pack after the tests, and returns a ``SectionResult``
(pass/fail, JSON, JUnit cases) plus what it prints in the text format.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aigre_policy.cli import output
from aigre_policy.cli.common import (
    EXIT_FAILURES,
    EXIT_USAGE,
    UsageError,
    add_cache_argument,
    compile_cache,
    find_packs,
)
from aigre_policy.cli.keys import add_verification_arguments, verification_from
from aigre_policy.cli.view import STYLES
from aigre_policy.diagnostics import CompileError, Diagnostic, Severity, SourceText, render
from aigre_policy.pack import Pack, load_pack
from aigre_policy.rego.bundle import BundleError
from aigre_policy.rego.bundle_pack import BundlePack, source_data
from aigre_policy.report import FORMATS
from aigre_policy.report.tests import run_report
from aigre_policy.testing.cases import TestCase, load_cases
from aigre_policy.testing.coverage import Coverage, compute_coverage
from aigre_policy.testing.proof import (
    invariant_arguments,
    invariant_run,
    invariant_show,
    mutation_arguments,
    mutation_run,
    mutation_show,
)
from aigre_policy.testing.report import PackRun, SectionResult, to_json, to_junit
from aigre_policy.testing.runner import (
    ERROR,
    FAILED,
    CaseResult,
    Filter,
    PackEvaluator,
    SuiteResult,
    pack_evaluator,
    run_suite,
)
from aigre_policy.testing.skeletons import suggest

ENGINES = ("native", "rego", "regorus")  # engines a pack's tests can run on without a server


@dataclass(frozen=True)
class Context:
    """What a section gets for one pack: the pack, its cases, the suite and the evaluator."""

    args: argparse.Namespace
    pack: Pack
    cases: list[TestCase]
    suite: SuiteResult
    evaluate: PackEvaluator


@dataclass(frozen=True)
class Section:
    """An extra part of ``aigre-policy test``."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    # None when the section's flags are off
    run: Callable[[Context], SectionResult | None]
    show: Callable[[Console, SectionResult, argparse.Namespace], None]


# ------------------------------------------------------------------ coverage section


def _coverage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="print bright-line coverage: rules fired/silent, and/or operands seen true and "
        "false, envelope limits with a test on them and one just past",
    )
    parser.add_argument(
        "--require-bright-lines",
        action="store_true",
        help="fail (exit 1) when a rule never fires or never stays silent, or a limit lacks a "
        "test on it or just past it; print a checked test skeleton for each gap",
    )


def _coverage_run(ctx: Context) -> SectionResult | None:
    if not (ctx.args.coverage or ctx.args.require_bright_lines):
        return None
    passed = [r.case for r in ctx.suite.results if r.passed]
    coverage = compute_coverage(ctx.pack, passed, ctx.evaluate.pack_for)
    data: dict[str, Any] = coverage.to_dict()
    junit: list[tuple[str, str | None, str]] = []
    ok = True
    if ctx.args.require_bright_lines:
        suggestions = suggest(ctx.pack, coverage, passed, ctx.evaluate.pack_for)
        data["gaps"] = [s.to_dict() for s in suggestions]
        ok = not suggestions
        for s in suggestions:
            details = yaml.safe_dump([s.test], sort_keys=False, width=100) if s.test else ""
            junit.append((f"bright line: {s.rule.id} {s.gap}", f"{s.rule.id} {s.gap}", details))
        if not suggestions:
            junit.append(("bright lines", None, ""))
    return SectionResult("coverage", ok, data, junit, view=coverage)


def _coverage_show(console: Console, result: SectionResult, args: argparse.Namespace) -> None:
    coverage: Coverage = result.view
    if args.coverage:
        show_coverage(console, coverage)
    if args.require_bright_lines:
        show_gaps(console, result)


def show_coverage(console: Console, coverage: Coverage) -> None:
    table = Table(title="bright-line coverage", title_justify="left", box=None, pad_edge=False)
    table.add_column("rule", no_wrap=True, min_width=max(len(r.rule.id) for r in coverage.rules))
    for column in ("fired", "silent", "operands t/f", "limits on/past"):
        table.add_column(column, justify="right")
    for entry in coverage.rules:
        ops = [o for o in coverage.operands if o.rule is entry.rule]
        lims = [lim for lim in coverage.limits if lim.rule is entry.rule]
        both_ways = sum(o.complete for o in ops)
        limits_done = sum(lim.complete for lim in lims)
        style = "" if entry.complete and limits_done == len(lims) else "red"
        table.add_row(
            Text(entry.rule.id, style=style),
            _count(len(entry.fired)),
            _count(len(entry.silent)),
            f"{both_ways}/{len(ops)}" if ops else "-",
            f"{limits_done}/{len(lims)}" if lims else "-",
        )
    console.print(table)
    if coverage.limits:
        limits = Table(title="envelope limits", title_justify="left", box=None, pad_edge=False)
        for column in ("rule", "comparison", "on", "past"):
            limits.add_column(column, justify="right" if column in ("on", "past") else "left")
        for lim in coverage.limits:
            limits.add_row(
                Text(lim.rule.id, style="" if lim.complete else "red"),
                Text(lim.text),
                _count(len(lim.on_limit)),
                _count(len(lim.just_past)),
            )
        console.print(limits)
    rules_done = sum(r.complete for r in coverage.rules)
    ops_done = sum(o.complete for o in coverage.operands)
    lims_done = sum(lim.complete for lim in coverage.limits)
    console.print(
        f"rules with both sides {rules_done}/{len(coverage.rules)}, operands seen true and "
        f"false {ops_done}/{len(coverage.operands)}, limits on and just past "
        f"{lims_done}/{len(coverage.limits)} ({coverage.traced} tests traced)",
        highlight=False,
    )


def _count(n: int) -> Text:
    return Text(str(n), style="" if n else "red")


def show_gaps(console: Console, result: SectionResult) -> None:
    gaps = result.data.get("gaps", [])
    if not gaps:
        console.print(
            "[green]bright lines complete[/green]: every rule fires and stays silent, "
            "every limit has a test on it and one just past it",
            highlight=False,
        )
        return
    console.print(f"[red]{len(gaps)} bright-line gap{'s' if len(gaps) != 1 else ''}[/red]")
    found = [g["test"] for g in gaps if g["test"] is not None]
    for gap in gaps:
        mark = "" if gap["test"] is not None else "  (no input found; write this test by hand)"
        console.print(
            f"  {gap['rule']}: {gap['gap']}{mark}", highlight=False, markup=False, soft_wrap=True
        )
    if found:
        console.print(
            "\n# checked skeletons: paste into tests/bright-lines.yaml of the pack "
            "(or append the entries to its `tests:` list)",
            highlight=False,
            markup=False,
        )
        text = yaml.safe_dump({"tests": found}, sort_keys=False, width=100, allow_unicode=True)
        console.print(text, highlight=False, markup=False, soft_wrap=True)


COVERAGE = Section("coverage", _coverage_arguments, _coverage_run, _coverage_show)
INVARIANTS = Section("invariants", invariant_arguments, invariant_run, invariant_show)
MUTATION = Section("mutation", mutation_arguments, mutation_run, mutation_show)
SECTIONS: list[Section] = [COVERAGE, INVARIANTS, MUTATION]


# ------------------------------------------------------------------ command


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "test",
        help="run a pack's bright-line tests",
        description="Run the tests of each pack: `test` blocks in policies/*.aigre and "
        "tests/*.yaml. Exit code: 0 all pass, 1 failures (or a failed check such as "
        "--require-bright-lines), 2 a pack that does not compile, a malformed test file, "
        "or misuse.",
    )
    parser.add_argument(
        "packs",
        nargs="+",
        help="pack directories, or directories of packs; or one built bundle (.tar.gz) with "
        "--tests naming the pack directory whose tests it must pass",
    )
    parser.add_argument(
        "--tests",
        metavar="DIR",
        help="with a bundle: the pack directory whose tests to run against the bundle",
    )
    parser.add_argument(
        "-k",
        dest="keywords",
        action="append",
        metavar="TEXT",
        help="run only tests whose name contains TEXT (case-insensitive; repeat for any of)",
    )
    parser.add_argument(
        "-x", "--fail-fast", action="store_true", help="stop at the first failing test"
    )
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the tests, time each rule's condition over the tests' inputs, "
        "costliest first (text output)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="run again each time a file of the pack changes (pack.yaml, policies/, tests/, "
        "fixtures/); Ctrl-C stops",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="evaluate the tests with the generated Python (native, the default) or with the "
        "pack compiled to Rego and run in process by regopy (rego, the default for a bundle)",
    )
    for section in SECTIONS:
        section.add_arguments(parser)
    add_verification_arguments(parser)
    add_cache_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    if any(Path(p).is_file() for p in args.packs):
        return run_bundle(args, console)
    if args.tests or args.verification_key or args.signing_alg or args.scope:
        given = "--tests" if args.tests else "--verification-key, --signing-alg and --scope"
        raise UsageError(f"{given} apply to a bundle, not a pack directory")
    if args.engine not in (None, "native") and args.mutate:
        _stderr(console).print(
            "[red]error:[/red] --mutate plants its faults in the native evaluator; "
            "run it with --engine native",
            highlight=False,
        )
        return EXIT_USAGE
    packs = find_packs(args.packs)
    if args.watch:
        return _watch(args, console, packs)
    return _run_packs(args, console, packs)


def _show_profile(out: Console, pack: Any, cases: list[TestCase]) -> None:
    from aigre_policy.cli.view import show_profile
    from aigre_policy.profile import rule_times

    show_profile(out, rule_times(pack, [(c.action, c.context, c.usage) for c in cases]))


def _watch(args: argparse.Namespace, console: Console, packs: list[Path]) -> int:
    if args.format != "text" or args.output:
        raise UsageError("--watch prints the text report: drop --format and -o")
    from aigre_policy.testing.watch import watch

    notes = _stderr(console)

    def once() -> int:
        try:
            return _run_packs(args, console, packs)
        except UsageError as exc:  # e.g. -k matches nothing yet: keep watching
            notes.print(f"[red]error:[/red] {exc}", highlight=False)
            return EXIT_USAGE

    return watch(packs, once, lambda note: notes.print(f"[dim]{note}[/dim]", highlight=False))


def _run_packs(args: argparse.Namespace, console: Console, packs: list[Path]) -> int:
    with _output(args, console) as out:
        runs: list[PackRun] = []
        for path in packs:
            try:
                pack = load_pack(path, engine=args.engine, cache=compile_cache(args))
            except CompileError as exc:
                _stderr(console).print(exc.report(), style="red", markup=False, highlight=False)
                _stderr(console).print(
                    f"[red]error:[/red] {path} does not compile; run `aigre-policy check {path}`",
                    highlight=False,
                )
                return EXIT_USAGE
            cases, diagnostics = load_cases(pack)
            errors = [d for d in diagnostics if d.severity is Severity.ERROR]
            if errors:
                sources = _sources(diagnostics)
                for diagnostic in diagnostics:
                    _stderr(console).print(
                        render(diagnostic, sources),
                        style="red",
                        markup=False,
                        highlight=False,
                        soft_wrap=True,
                    )
                _stderr(console).print(
                    f"[red]error:[/red] the tests of {path} do not load "
                    f"({len(errors)} error{'s' if len(errors) != 1 else ''})",
                    highlight=False,
                )
                return EXIT_USAGE
            pack_run = run_pack(pack, cases, args)
            suite = pack_run.suite
            runs.append(pack_run)
            if args.format == "text":
                show_suite(out, suite, args.verbose)
                for section, result in _shown(pack_run):
                    section.show(out, result, args)
                if args.profile:
                    _show_profile(out, pack, [r.case for r in suite.results])
            if args.fail_fast and not suite.ok:
                break
        if args.format == "json":
            out.file.write(to_json(runs))
        elif args.format == "junit":
            out.file.write(to_junit(runs))
        elif args.format in ("sarif", "github"):
            out.file.write(run_report(args.format, runs))
    if args.keywords and not any(r.suite.results for r in runs):
        # nothing selected is not a pass: a typo in -k must not turn CI green
        raise UsageError(f"no test matches -k {' -k '.join(args.keywords)}")
    return 0 if all(r.ok for r in runs) else EXIT_FAILURES


class _BundleEvaluator(PackEvaluator):
    """A case's envelope overrides on a bundle: the source compiled with them gives the
    data, which the bundle's modules then run on."""

    def __init__(self, bundle: BundlePack, source: Path):
        super().__init__(bundle)  # type: ignore[arg-type]  # evaluates as a Pack does
        self._bundle = bundle
        self._source = source

    def pack_for(self, overrides: Any) -> Any:
        if not overrides:
            return self._bundle
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in self._packs:
            data = source_data(self._source, overrides)
            self._packs[key] = self._bundle.with_data(data)  # type: ignore[assignment]
        return self._packs[key]


def run_bundle(args: argparse.Namespace, console: Console) -> int:
    """``test BUNDLE --tests DIR``: the tests of the pack at DIR, judged by the bundle."""
    if len(args.packs) != 1 or not args.tests:
        raise UsageError("a bundle holds no tests: run `test BUNDLE --tests PACK_DIR`")
    if not Path(args.tests).is_dir():
        raise UsageError(f"--tests {args.tests}: not a pack directory")
    needs_source = [
        flag
        for flag, on in (
            ("--coverage", args.coverage),
            ("--require-bright-lines", args.require_bright_lines),
            ("--mutate", args.mutate),
            (f"--format {args.format}", args.format in ("sarif", "github")),
        )
        if on
    ]
    if needs_source:
        raise UsageError(f"{needs_source[0]} needs the pack directory, not a bundle")
    key = verification_from(args)
    try:
        bundle = load_pack(
            args.packs[0], engine=args.engine, verification_key=key, scope=args.scope
        )
        source = load_pack(args.tests)
    except BundleError as exc:
        raise UsageError(str(exc)) from None
    except CompileError as exc:
        _stderr(console).print(exc.report(), style="red", markup=False, highlight=False)
        _stderr(console).print(f"[red]error:[/red] {args.tests} does not compile", highlight=False)
        return EXIT_USAGE
    cases, diagnostics = load_cases(source)
    if any(d.severity is Severity.ERROR for d in diagnostics):
        raise UsageError(
            f"the tests of {args.tests} do not load; run `aigre-policy test {args.tests}`"
        )
    if source.digest != bundle.digest:
        _stderr(console).print(
            f"warning: {args.packs[0]} was built from another version of {args.tests} "
            f"({bundle.digest[:19]}, the directory is {source.digest[:19]})",
            highlight=False,
        )
    evaluate = _BundleEvaluator(bundle, Path(args.tests))
    with _output(args, console) as out:
        pack_run = run_pack(bundle, cases, args, sections=(), evaluate=evaluate)
        if args.format == "text":
            show_suite(out, pack_run.suite, args.verbose)
        elif args.format == "json":
            out.file.write(to_json([pack_run]))
        else:
            out.file.write(to_junit([pack_run]))
    return 0 if pack_run.ok else EXIT_FAILURES


def run_pack(
    pack: Any,
    cases: list[TestCase],
    args: argparse.Namespace,
    sections: Sequence[Section] | None = None,
    evaluate: PackEvaluator | None = None,
) -> PackRun:
    """Run the tests ``args`` select (``-k``, ``-x``), then every section its flags enable."""
    chosen = [case for case in cases if Filter(tuple(args.keywords or ()))(case)]
    evaluate = evaluate or pack_evaluator(pack)
    suite = run_suite(pack, chosen, evaluate=evaluate, fail_fast=args.fail_fast)
    pack_run = PackRun(suite)
    context = Context(args, pack, chosen, suite, evaluate)
    for section in SECTIONS if sections is None else sections:
        result = section.run(context)
        if result is not None:
            pack_run.sections.append(result)
    return pack_run


def _shown(pack_run: PackRun) -> list[tuple[Section, SectionResult]]:
    by_name = {s.name: s for s in SECTIONS}
    return [(by_name[r.name], r) for r in pack_run.sections if r.name in by_name]


@contextlib.contextmanager
def _output(args: argparse.Namespace, console: Console) -> Iterator[Console]:
    if not args.output:
        yield console
        return
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(Path(args.output).open("w", encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        yield output.console(file=handle)


def _stderr(console: Console) -> Console:
    return output.console(stderr=True) if console.file is sys.stdout else console


def _sources(diagnostics: Iterable[Diagnostic]) -> SourceText:
    files: dict[str, str] = {}
    for d in diagnostics:
        if d.span is not None and d.span.file not in files:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                files[d.span.file] = Path(d.span.file).read_text(encoding="utf-8")
    return SourceText(files)


# ------------------------------------------------------------------ text view


def show_suite(console: Console, suite: SuiteResult, verbose: bool = False) -> None:
    pack = suite.pack
    console.print(
        f"[bold]{pack.name}[/bold] {pack.version}  {pack.root}  {len(suite.results)} tests",
        highlight=False,
    )
    for result in suite.results:
        if result.status in (FAILED, ERROR):
            show_failure(console, result, pack.root)
        elif verbose:
            console.print(f"  [green]pass[/green] {result.case.name}", highlight=False)
    counts = [f"[green]{len(suite.passed)} passed[/green]"]
    if suite.failed:
        counts.append(f"[red]{len(suite.failed)} failed[/red]")
    if suite.errors:
        counts.append(f"[red]{len(suite.errors)} errors[/red]")
    stopped = " (stopped at the first failure)" if suite.stopped_early else ""
    console.print(", ".join(counts) + f" in {suite.elapsed_ms:.0f} ms{stopped}", highlight=False)


def show_failure(console: Console, result: CaseResult, root: Any = None) -> None:
    """A failed case; ``root``, the pack directory as given, leads the evidence's rule
    locations (relative to the pack) so they read from the current directory like the rest."""
    case = result.case
    label = "FAIL" if result.status == FAILED else "ERROR"
    console.print(
        Text.assemble(
            (f"  {label} ", "bold red"), (case.name, "bold"), "  ", (str(case.location), "dim")
        )
    )
    if result.error:
        console.print(f"    {result.error}", style="red", markup=False, highlight=False)
    for m in result.mismatches:
        console.print(Text.assemble(("    " + m.what, "bold")))
        console.print(Text.assemble(("      - expected ", "green"), _value(m.expected)))
        console.print(Text.assemble(("      + actual   ", "red"), _value(m.actual)))
        if m.detail:
            console.print(f"      {m.detail}", markup=False, highlight=False)
    verdict = result.verdict
    if verdict is not None and (verdict.fired or verdict.warnings):
        console.print("    evidence:", style="dim")
        for record in [*verdict.fired, *verdict.warnings]:
            loc = record["location"]
            file = loc["file"] if root is None else os.path.join(str(root), loc["file"])
            console.print(
                Text.assemble(
                    "      ",
                    (f"{record['verdict']} ", STYLES.get(record["verdict"], "")),
                    (record["id"], "bold"),
                    (f"  {file}:{loc['line']}:{loc['column']}", "dim"),
                )
            )
            console.print(f"        {record['message']}", markup=False, highlight=False)
            for c in record.get("comparisons", []):
                console.print(
                    f"        {c['expression']}: {_value(c['left'])} {c['op']} "
                    f"{_value(c['right'])} -> {str(c['result']).lower()}",
                    markup=False,
                    highlight=False,
                )


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 160 else text[:157] + "..."
