"""``aigre-policy replay``: re-judge a decision log under a candidate pack.

Exit codes: 0 done (and nothing tripped ``--fail-on``), 1 ``--fail-on`` tripped
(``looser``: some decision became looser; ``any``: some decision changed), 2
misuse, a log that cannot be read or a candidate that does not compile.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from aigre_policy.cli import output
from aigre_policy.cli.common import EXIT_FAILURES, UsageError, parse_overrides
from aigre_policy.diagnostics import CompileError
from aigre_policy.gate.replay import ReplayReport, log_size, replay_log


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "replay",
        help="re-judge logged decisions under a candidate pack",
        description="Re-evaluate each logged decision's input under CANDIDATE_PACK and report "
        "how many decisions change, looser or stricter, by which rules, with examples.",
    )
    parser.add_argument("candidate", metavar="CANDIDATE_PACK", help="the pack to replay under")
    parser.add_argument("--log", required=True, metavar="FILE", help="the decision log")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--fail-on",
        choices=("looser", "any"),
        help="exit 1 if any decision becomes looser (or changes at all)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="worker processes (default: CPUs, at most 4; 1 evaluates in-process)",
    )
    parser.add_argument(
        "--examples", type=int, default=5, help="decision ids shown per change (default 5)"
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="ENVELOPE.NAME=VALUE",
        help="override an envelope value of the candidate (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.examples < 0:
        raise UsageError("--examples must be 0 or more")
    overrides = parse_overrides(args.set)
    try:
        total = log_size(args.log)
    except OSError as exc:
        raise UsageError(f"cannot read {args.log}: {exc}") from None
    show_progress = not args.no_progress and args.format == "text"
    try:
        if show_progress:
            report = _with_progress(args, overrides, total)
        else:
            report = _replay(args, overrides, None)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except CompileError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        detail = f": {first.message}" if first else ""
        raise UsageError(
            f"{args.candidate} does not compile ({len(exc.diagnostics)} problems{detail}); "
            f"run `aigre-policy check {args.candidate}`"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {args.log}: {exc}") from None
    if not report.decisions:
        raise UsageError(
            f"{args.log} holds no decision entries: not a decision log, or a corrupt one "
            f"(run `aigre-policy log verify {args.log}`)"
        )
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        _print(report, console)
    others = _other_packs(report)
    if others:
        output.console(stderr=True).print(
            f"[yellow]warning:[/yellow] the log's decisions were made by "
            f"{escape(', '.join(others))}, not by {escape(report.candidate['name'])}: "
            "the changes compare two different packs",
            highlight=False,
        )
    if args.fail_on == "looser" and report.looser:
        return EXIT_FAILURES
    if args.fail_on == "any" and report.changed:
        return EXIT_FAILURES
    return 0


def _other_packs(report: ReplayReport) -> list[str]:
    """The packs (by name) that made the logged decisions, when none is the candidate."""
    names = sorted({key.split(" ", 1)[0] for key in report.baseline_packs})
    return [] if not names or report.candidate["name"] in names else names


def _replay(
    args: argparse.Namespace,
    overrides: dict[str, dict[str, Any]],
    progress: Callable[[int], None] | None,
) -> ReplayReport:
    return replay_log(
        args.candidate,
        args.log,
        envelopes=overrides or None,
        jobs=args.jobs,
        examples=args.examples,
        progress=progress,
    )


def _with_progress(
    args: argparse.Namespace, overrides: dict[str, dict[str, Any]], total: int
) -> ReplayReport:
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        TaskProgressColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=output.console(stderr=True), transient=True) as bar:
        task = bar.add_task("replay", total=total)
        return _replay(args, overrides, lambda read: bar.advance(task, read))


def _print(report: ReplayReport, console: Console) -> None:
    candidate = report.candidate
    console.print(
        f"replayed {report.replayed} of {report.decisions} decisions under "
        f"{candidate['name']} {candidate['version']} {candidate['digest'][:19]}… "
        f"in {report.elapsed_seconds:.2f} s ({report.rate:,.0f} decisions/s)",
        highlight=False,
    )
    console.print(
        f"changed {report.changed}: [red]{report.looser} looser[/red], "
        f"[yellow]{report.stricter} stricter[/yellow]; unchanged {report.unchanged} "
        f"({report.rules_changed} with other rules firing)",
        highlight=False,
    )
    if report.transitions:
        table = Table(title="changes", title_justify="left")
        for column in ("from", "to", "direction", "decisions"):
            table.add_column(column, justify="right" if column == "decisions" else "left")
        rows = report.to_dict()["transitions"]
        for row in rows:
            table.add_row(row["from"], row["to"], row["direction"], str(row["count"]))
        console.print(table)
        # whole decision ids, one transition a line: they are looked up, so never cut
        for row in rows:
            if row["examples"]:
                console.print(
                    f"  {row['from']} -> {row['to']}: {escape(', '.join(row['examples']))}",
                    highlight=False,
                    soft_wrap=True,
                )
    if report.rules:
        table = Table(title="rules behind the changes", title_justify="left")
        for column in ("rule", "looser", "stricter"):
            table.add_column(column, justify="left" if column == "rule" else "right")
        ranked = sorted(report.rules.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        for rule, counts in ranked:
            table.add_row(
                escape(rule), str(counts.get("looser", 0)), str(counts.get("stricter", 0))
            )
        console.print(table)
    if report.candidate_fail_closed:
        console.print(
            f"[yellow]{report.candidate_fail_closed} inputs failed closed under the candidate"
            "[/yellow] (its input schema or usage declarations reject them)",
            highlight=False,
        )
    if report.redacted:
        console.print(
            f"[yellow]not replayed: {report.redacted} decisions with masked or dropped input"
            f"[/yellow] (e.g. {escape(', '.join(report.examples.get('redacted', [])))})",
            highlight=False,
        )
    if report.unreadable:
        console.print(
            f"[yellow]not replayed: {report.unreadable} decision entries without a usable "
            f"input[/yellow] (e.g. {escape(', '.join(report.examples.get('unreadable', [])))})",
            highlight=False,
        )
