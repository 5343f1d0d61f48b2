"""``aigre-policy prove``: each invariant of a pack proved for every input, or refuted.

Exit codes: 0 every invariant proved; 1 one is refuted (its counterexample is printed
as a test to paste); 3 none refuted but one is unknown (the solver timed out, or a
construct it cannot state decided it); 2 misuse, a pack that does not compile, or z3
missing; 70 a witness the solver gave does not reproduce natively (a fault of the
product). z3 is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from aigre_policy.cli.common import EXIT_USAGE, UsageError, find_packs, parse_overrides
from aigre_policy.cli.output import report_file
from aigre_policy.diagnostics import CompileError

EXIT_PROVED = 0
EXIT_REFUTED = 1
EXIT_UNKNOWN = 3


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "prove",
        help="prove a pack's invariants for every input, or refute them, with an SMT solver",
        description="Prove each invariant of a pack for every input its schema admits (lists "
        "up to a stated length), or refute it with a counterexample printed as a test to paste. "
        "Exit code: 0 all proved, 1 one refuted, 3 one unknown (timeout or a construct the "
        "solver cannot state), 2 misuse or a pack that does not compile, 70 a witness that "
        "does not reproduce natively.",
    )
    parser.add_argument("packs", nargs="+", help="pack directories, or directories of packs")
    add_solver_arguments(parser)
    parser.add_argument(
        "--symbolic-envelopes",
        action="store_true",
        help="treat envelope values (numbers, strings, booleans) as free: prove the invariants "
        "whatever a deployment sets them to",
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="ENVELOPE.NAME=VALUE",
        help="override an envelope value (repeatable)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    parser.set_defaults(run=run)


def add_solver_arguments(parser: argparse.ArgumentParser) -> None:
    from aigre_policy.solver import DEFAULT_LIST_BOUND, DEFAULT_TIMEOUT_S

    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"time the solver may take per question (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--list-bound",
        type=int,
        default=DEFAULT_LIST_BOUND,
        metavar="N",
        help="items per input list the proof covers, when the schema's maxItems is larger "
        f"or absent (default {DEFAULT_LIST_BOUND}); the result states it",
    )


def solver_or_exit(console: Console) -> bool:
    """Whether z3 can be imported; one line naming the extra when it cannot."""
    from aigre_policy.solver import SolverMissing, require_z3

    try:
        require_z3()
    except SolverMissing as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] {escape(str(exc))}", highlight=False
        )
        return False
    return True


def run(args: argparse.Namespace, console: Console) -> int:
    if args.list_bound < 0 or args.timeout <= 0:
        raise UsageError("--list-bound must be 0 or more and --timeout more than 0")
    if not solver_or_exit(console):
        return EXIT_USAGE
    from aigre_policy.pack import load_pack
    from aigre_policy.solver.prove import prove_pack

    overrides = parse_overrides(args.set)
    reports = []
    for path in find_packs(args.packs):
        try:
            pack = load_pack(path, overrides)
        except CompileError as exc:
            Console(stderr=True, soft_wrap=True).print(exc.report(), markup=False)
            return EXIT_USAGE
        reports.append(
            prove_pack(
                pack.checked,
                pack,
                list_bound=args.list_bound,
                timeout_s=args.timeout,
                symbolic_envelopes=args.symbolic_envelopes,
            )
        )
    with report_file(args.output) as out:
        if args.format == "json":
            out.write(json.dumps({"packs": [r.to_dict() for r in reports]}, indent=2) + "\n")
        else:
            target = (
                Console(file=out, soft_wrap=True, highlight=False)
                if args.output
                else Console(soft_wrap=True)
            )
            for report in reports:
                show(target, report)
    statuses = {r.status for report in reports for r in report.results}
    if any(report.problem for report in reports):
        statuses.add("unknown")
    if "refuted" in statuses:
        return EXIT_REFUTED
    return EXIT_UNKNOWN if "unknown" in statuses else EXIT_PROVED


MARKS = {"proved": "[green]proved[/green]", "refuted": "[red]REFUTED[/red]"}


def show(console: Console, report: Any) -> None:
    from aigre_policy.testing.invariants import InvariantResult
    from aigre_policy.testing.proof import counterexample_yaml

    console.print(
        f"[bold]{escape(report.pack)}[/bold]  {len(report.results)} invariants", highlight=False
    )
    if report.problem:
        console.print(f"  [yellow]not encodable[/yellow]: {escape(report.problem)}")
    for r in report.results:
        mark = MARKS.get(r.status, "[yellow]unknown[/yellow]")
        console.print(
            f"  {mark} {escape(r.invariant.name)}  [dim]{escape(str(r.invariant.span))}  "
            f"{r.elapsed_s:.2f} s[/dim]",
            highlight=False,
        )
        if r.status == "refuted":
            why = ", ".join(r.fired) or "no rule fired"
            if r.failed_closed:
                why = f"failed closed: {r.failed_closed}"
            console.print(f"    expected {r.expectation}, got {r.decision} ({why})", markup=False)
        elif r.reason:
            console.print(f"    {r.reason}", markup=False)
    if report.bounds is not None:
        for line in bounds_lines(report.bounds):
            console.print(f"  [dim]{escape(line)}[/dim]", highlight=False)
    proved = sum(r.status == "proved" for r in report.results)
    console.print(
        f"proved {proved} of {len(report.results)} invariants in {report.elapsed_s:.2f} s",
        highlight=False,
    )
    for r in report.results:
        if r.counterexample is None:
            continue
        result = InvariantResult(r.invariant, "broken", 0, 0, r.counterexample, r.decision, r.fired)
        console.print(
            "\n# counterexample found by the solver: paste into tests/regressions.yaml of the pack",
            markup=False,
        )
        console.print(counterexample_yaml(result), markup=False, highlight=False)


def bounds_lines(bounds: Any) -> list[str]:
    lines = []
    if bounds.bounded_lists:
        by_size: dict[int, list[str]] = {}
        for path, size in sorted(bounds.bounded_lists.items()):
            by_size.setdefault(size, []).append(path)
        for size, paths in sorted(by_size.items()):
            lines.append(f"lists hold at most {size} items in the proof: {', '.join(paths)}")
    lines.append("timestamps are whole seconds from 0001 to 9999 UTC; numbers are finite doubles")
    if bounds.rounded:
        ops = " ".join(bounds.rounded)
        lines.append(f"number arithmetic ({ops}) is held within one rounding of a double")
    for opaque in bounds.opaque:
        lines.append(f"not encodable, held free: {opaque.construct} at {opaque.span}")
    return lines
