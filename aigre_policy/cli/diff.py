"""``aigre-policy diff OLD NEW``: two versions of a pack compared for every input.

OLD and NEW are pack directories, or ``PACK@REV``: the pack directory as it was at a
git revision. Exit codes: 0 done (equivalent, or changes that ``--fail-on`` does not
name); 1 ``--fail-on`` tripped (``looser``: some input gets a looser decision;
``any``: some decision changes); 3 the solver could not finish (timeout, or a
construct it cannot state); 2 misuse, a pack that does not compile, or z3 missing;
70 a witness that does not reproduce natively. z3 is imported only when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from aigre_policy.cli.common import EXIT_FAILURES, EXIT_USAGE, UsageError
from aigre_policy.cli.output import report_file
from aigre_policy.cli.prove import EXIT_UNKNOWN, add_solver_arguments, bounds_lines, solver_or_exit
from aigre_policy.diagnostics import CompileError


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "diff",
        help="compare two versions of a pack for every input, with an SMT solver",
        description="Prove two versions of a pack equivalent, or list each change class "
        "(old decision -> new decision) with a minimal witness input and the rules that made "
        "the difference. OLD and NEW are pack directories or PACK@REV (the pack at a git "
        "revision). Exit code: 0 done, 1 --fail-on tripped, 3 the solver could not finish, "
        "2 misuse or a pack that does not compile, 70 a witness that does not reproduce.",
    )
    parser.add_argument("old", help="the old pack: a directory, or PACK@REV")
    parser.add_argument("new", help="the new pack: a directory, or PACK@REV")
    add_solver_arguments(parser)
    parser.add_argument("-f", "--format", choices=("text", "json", "markdown"), default="text")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    parser.add_argument(
        "--fail-on",
        choices=("looser", "any"),
        help="exit 1 when some input gets a looser decision (looser) or any other one (any)",
    )
    parser.add_argument(
        "--log",
        metavar="FILE",
        help="a decision log: also count how many logged decisions NEW would change (replay)",
    )
    parser.set_defaults(run=run)


@contextlib.contextmanager
def pack_at(spec: str) -> Iterator[Path]:
    """``spec`` as a pack directory: itself, or ``PACK@REV`` checked out of git to a temp dir."""
    path = Path(spec)
    if path.is_dir() or "@" not in spec:
        if not path.is_dir():
            raise UsageError(f"no pack at {spec}")
        yield path
        return
    where, _, revision = spec.rpartition("@")
    folder = Path(where).resolve()
    probe = folder
    while not probe.is_dir():
        probe = probe.parent
    top = _git(probe, "rev-parse", "--show-toplevel").decode().strip()
    relative = folder.relative_to(top).as_posix()
    archive = _git(Path(top), "archive", "--format=tar", revision, "--", relative)
    with tempfile.TemporaryDirectory(prefix="aigre-diff-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp) / relative


def _git(where: Path, *arguments: str) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(where), *arguments], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"git failed: {exc}") from None
    if done.returncode != 0:
        raise UsageError(f"git {arguments[0]}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def run(args: argparse.Namespace, console: Console) -> int:
    if args.list_bound < 0 or args.timeout <= 0:
        raise UsageError("--list-bound must be 0 or more and --timeout more than 0")
    if not solver_or_exit(console):
        return EXIT_USAGE
    from aigre_policy.pack import load_pack
    from aigre_policy.solver.diff import diff_packs

    with pack_at(args.old) as old_root, pack_at(args.new) as new_root:
        try:
            old, new = load_pack(old_root), load_pack(new_root)
        except CompileError as exc:
            Console(stderr=True, soft_wrap=True).print(exc.report(), markup=False)
            return EXIT_USAGE
        report = diff_packs(
            old.checked,
            old,
            new.checked,
            new,
            list_bound=args.list_bound,
            timeout_s=args.timeout,
        )
        if args.log:
            report.log = _replayed(new_root, args.log)
    with report_file(args.output) as out:
        if args.format == "json":
            out.write(json.dumps(report.to_dict(), indent=2) + "\n")
        elif args.format == "markdown":
            out.write(markdown(report))
        else:
            show(Console(file=out if args.output else None, soft_wrap=True), report)
    if report.status == "unknown":
        return EXIT_UNKNOWN
    if args.fail_on == "any" and report.changes:
        return EXIT_FAILURES
    if args.fail_on == "looser" and report.looser:
        return EXIT_FAILURES
    return 0


def _replayed(new_root: Path, log: str) -> dict[str, Any]:
    from aigre_policy.gate.replay import replay_log

    try:
        replayed = replay_log(new_root, log)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    data = replayed.to_dict()
    keys = ("decisions", "replayed", "changed", "looser", "stricter", "transitions")
    return {k: data[k] for k in keys}


def _label(pack: dict[str, str]) -> str:
    return f"{pack['name']} {pack['version']} ({pack['digest'][:19]})"


def show(console: Console, report: Any) -> None:
    console.print(f"{_label(report.old)} -> {_label(report.new)}", markup=False)
    if report.status == "equivalent":
        console.print(
            "[green]equivalent[/green]: every input the schema admits gets the same decision",
            highlight=False,
        )
    for change in report.changes:
        direction = "[red]looser[/red]" if change.looser else "[yellow]stricter[/yellow]"
        console.print(f"  {change.old} -> {change.new}  {direction}", highlight=False)
        for label, rules in (("old only", change.only_old), ("new only", change.only_new)):
            if rules:
                console.print(f"    fired {label}: {', '.join(rules)}", markup=False)
        console.print("    witness:", markup=False)
        text = yaml.safe_dump(change.witness, sort_keys=False, width=100, allow_unicode=True)
        console.print("      " + text.rstrip().replace("\n", "\n      "), markup=False)
    if report.status == "unknown":
        console.print(f"  [yellow]unknown[/yellow]: {escape(report.reason)}", highlight=False)
    if report.bounds is not None:
        for line in bounds_lines(report.bounds):
            console.print(f"  [dim]{escape(line)}[/dim]", highlight=False)
    if report.log is not None:
        log = report.log
        console.print(
            f"log: {log['changed']} of {log['replayed']} replayed decisions would change "
            f"({log['looser']} looser, {log['stricter']} stricter)",
            highlight=False,
        )
    count = len(report.changes)
    console.print(
        f"{count} change class{'es' if count != 1 else ''} in {report.elapsed_s:.2f} s",
        highlight=False,
    )


def markdown(report: Any) -> str:
    """A pull-request comment: the verdict, a table of change classes, each witness folded."""
    lines = [f"### `aigre-policy diff`: {_label(report.old)} → {_label(report.new)}", ""]
    if report.status == "equivalent":
        lines.append("**Equivalent**: every input the schema admits gets the same decision.")
    elif report.status == "unknown":
        lines.append(f"**Unknown**: {report.reason}")
    if report.changes:
        lines += ["", "| old | new | direction | fired only before | fired only after |"]
        lines.append("|---|---|---|---|---|")
        for c in report.changes:
            lines.append(
                f"| `{c.old}` | `{c.new}` | {'looser' if c.looser else 'stricter'} | "
                f"{', '.join(f'`{r}`' for r in c.only_old) or '-'} | "
                f"{', '.join(f'`{r}`' for r in c.only_new) or '-'} |"
            )
        for c in report.changes:
            witness = yaml.safe_dump(c.witness, sort_keys=False, width=100, allow_unicode=True)
            lines += [
                "",
                f"<details><summary>witness: {c.old} → {c.new}</summary>",
                "",
                "```yaml",
                witness.rstrip(),
                "```",
                "</details>",
            ]
    if report.log is not None:
        log = report.log
        lines += [
            "",
            f"Replayed log: {log['changed']} of {log['replayed']} decisions would change "
            f"({log['looser']} looser, {log['stricter']} stricter).",
        ]
    if report.bounds is not None:
        lines += ["", *(f"<sub>{line}</sub><br>" for line in bounds_lines(report.bounds))]
    return "\n".join(lines) + "\n"
