"""``aigre-policy log``: verify a decision log, sign its checkpoints, summarise it.

``log verify FILE [--key PUB] [--ledger URL]`` exits 0 when the log is intact, 1
when a line was edited, removed, inserted or reordered (or is not a canonical
entry) or a checkpoint does not hold, 3 when the only problem is a torn last line
left by a crash (the next writer repairs it), 2 on misuse (no log, a bad key).
``log keygen NAME`` writes an Ed25519 key pair (``NAME``, ``NAME.pub``);
``log checkpoint FILE --key PRIV`` signs a checkpoint of the log's head now.
``log stats FILE`` prints decisions by verdict, the automated resolution rate,
approval waits and spend per action kind.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aigre_policy.cli.common import EXIT_FAILURES, UsageError
from aigre_policy.gate.checkpoint import KeyFileError, generate_key_pair, load_public_key
from aigre_policy.gate.errors import GateError
from aigre_policy.gate.ledger import LedgerError, SqliteLedger, open_ledger
from aigre_policy.gate.log import DecisionLog, LogError
from aigre_policy.gate.stats import LogStats, log_stats
from aigre_policy.gate.verify import VerifyReport, verify_log

EXIT_TORN = 3  # verify: intact but for a torn last line (a crash mid-write)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "log",
        help="verify or summarise a decision log",
        description="Work with the gate's tamper-evident decision log.",
    )
    actions = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="check the hash chain of a log and its rotated files",
        description="Check every line: its canonical bytes, its hash, its link to the line "
        "before, its seq; and the signed checkpoints in FILE.checkpoints. "
        "Exit 0 intact, 1 tampered or malformed, 3 only a torn last line (crash), 2 misuse.",
    )
    verify.add_argument("file", help="the log file (rotated FILE.1, FILE.2, ... are included)")
    verify.add_argument("--format", choices=("text", "json"), default="text")
    verify.add_argument(
        "--anchor",
        metavar="HASH",
        help="a last hash recorded earlier: fail if it is no longer in the log (tail removed)",
    )
    verify.add_argument(
        "--key",
        metavar="PUB",
        help="the Ed25519 public key (PEM) checkpoints are signed with: every checkpoint "
        "must hold under it and one must cover the log",
    )
    verify.add_argument(
        "--ledger",
        metavar="URL",
        help="compare with the checkpoints kept in this ledger (sqlite:///path or a path)",
    )
    verify.set_defaults(run=run_verify)
    keygen = actions.add_parser(
        "keygen",
        help="write an Ed25519 key pair for signing log checkpoints",
        description="Write NAME (the private key, PEM, mode 0600) and NAME.pub (the public "
        "key). Give the private key to the gate (signing_key), the public key to verifiers.",
    )
    keygen.add_argument("name", help="the private key's file; the public key goes to NAME.pub")
    keygen.set_defaults(run=run_keygen)
    sign = actions.add_parser(
        "checkpoint",
        help="sign a checkpoint of a log's last entry now",
        description="Sign a checkpoint of the log's last entry with the private key, into "
        "FILE.checkpoints (and the ledger with --ledger): after a writer stopped without "
        "one, or to adopt a log written before checkpoints (verify it first).",
    )
    sign.add_argument("file", help="the log file")
    sign.add_argument("--key", metavar="PRIV", required=True, help="the Ed25519 private key")
    sign.add_argument("--ledger", metavar="URL", help="also keep the checkpoint in this ledger")
    sign.set_defaults(run=run_checkpoint)
    stats = actions.add_parser(
        "stats",
        help="decisions by verdict, automation rate, approval waits, spend per kind",
        description="Summarise a log: decisions by verdict, the share resolved without a "
        "person, approvals waiting and how long they waited, spend per action kind.",
    )
    stats.add_argument("file", help="the log file (rotated FILE.1, FILE.2, ... are included)")
    stats.add_argument("--format", choices=("text", "json"), default="text")
    stats.add_argument(
        "--as-of",
        metavar="TIME",
        help="age waiting approvals up to this RFC 3339 time (default: the last entry's time)",
    )
    stats.set_defaults(run=run_stats)


def _open_ledger(url: str | None) -> Any:
    """An existing ledger to read or keep checkpoints in (a SQLite file or a PostgreSQL
    database); a one-line usage error otherwise."""
    if url is None:
        return None
    try:
        store = open_ledger(url)
    except GateError as exc:
        raise UsageError(f"--ledger {url}: {exc}") from None
    if not (hasattr(store, "checkpoints") and hasattr(store, "add_checkpoint")):
        raise UsageError(f"--ledger {url}: not a ledger that keeps checkpoints")
    path = store.path if isinstance(store, SqliteLedger) else ":memory:"
    if path != ":memory:" and not Path(path).is_file():
        raise UsageError(f"--ledger {url}: no ledger at {path}")
    return store


def run_verify(args: argparse.Namespace, console: Console) -> int:
    try:
        key = load_public_key(args.key) if args.key else None
    except KeyFileError as exc:
        raise UsageError(f"--key: {exc}") from None
    ledger = _open_ledger(args.ledger)
    try:
        report = verify_log(args.file, anchor=args.anchor, key=key, ledger=ledger)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except LedgerError as exc:
        raise UsageError(f"--ledger {args.ledger}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from None
    finally:
        if ledger is not None:
            ledger.close()
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        _print_verify(report, console)
    if report.ok:
        return 0
    return EXIT_TORN if report.only_torn else EXIT_FAILURES


def _print_verify(report: VerifyReport, console: Console) -> None:
    for problem in report.problems:
        console.print(
            f"[red]{problem.code}[/red] {escape(str(problem.file))}:{problem.line}: "
            f"{escape(problem.message)}",
            highlight=False,
        )
    for recovery in report.recoveries:
        console.print(
            f"[yellow]recovered[/yellow] {escape(str(recovery.file))}:{recovery.line}: "
            f"{escape(recovery.message)}",
            highlight=False,
        )
    files = f"{len(report.files)} file{'s' if len(report.files) != 1 else ''}"
    if report.ok:
        console.print(
            f"[green]intact[/green]: {report.entries} entries in {files}, "
            f"last seq {report.last_seq}, last hash {report.last_hash}",
            highlight=False,
        )
        if report.checkpoints:
            signed = "signed checkpoints" if report.signed else "checkpoints (unsigned check)"
            tail = report.last_seq - report.covered
            console.print(
                f"{report.checkpoints} {signed} hold, the newest covering {report.covered} "
                f"entries; {tail} after it rest on the chain alone",
                highlight=False,
            )
    elif report.only_torn:
        console.print(
            f"[yellow]torn[/yellow]: {report.entries} entries intact in {files}; the last line "
            "was cut mid-write (the next writer truncates it and logs a recovery entry)",
            highlight=False,
        )
    else:
        console.print(
            f"[red]broken[/red]: {len(report.problems)} problem"
            f"{'s' if len(report.problems) != 1 else ''} in {report.entries} entries ({files})",
            highlight=False,
        )


def run_keygen(args: argparse.Namespace, console: Console) -> int:
    public = f"{args.name}.pub"
    try:
        key_id = generate_key_pair(args.name, public)
    except KeyFileError as exc:
        raise UsageError(str(exc)) from None
    console.print(
        f"wrote {escape(args.name)} (private, keep it from the log's writers) and "
        f"{escape(public)}; key {key_id}",
        highlight=False,
    )
    return 0


def run_checkpoint(args: argparse.Namespace, console: Console) -> int:
    if not Path(args.file).is_file():
        raise UsageError(f"no log at {args.file}")
    ledger = _open_ledger(args.ledger)
    try:
        with DecisionLog(args.file, signing_key=args.key, checkpoint_store=ledger) as log:
            checkpoint = log.checkpoint()
            fault = log.last_checkpoint_fault
    except LogError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if ledger is not None:
            ledger.close()
    if fault is not None:
        raise UsageError(fault)
    if checkpoint is None:
        console.print("a checkpoint already covers the last entry", highlight=False)
        return 0
    console.print(
        f"signed: {checkpoint.entries} entries, head {checkpoint.head}, at {checkpoint.time}",
        highlight=False,
    )
    return 0


def run_stats(args: argparse.Namespace, console: Console) -> int:
    as_of = None
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--as-of {args.as_of!r}: expected an RFC 3339 time") from None
        if as_of.tzinfo is None:
            raise UsageError(f"--as-of {args.as_of!r}: give a time zone, e.g. Z")
    try:
        stats = log_stats(args.file, as_of=as_of)
    except (LogError, ValueError) as exc:
        raise UsageError(f"{exc} (run `aigre-policy log verify {args.file}`)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from None
    if args.format == "json":
        sys.stdout.write(json.dumps(stats.to_dict(), indent=2) + "\n")
    else:
        _print_stats(stats, console)
    return 0


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _print_stats(stats: LogStats, console: Console) -> None:
    console.print(
        f"{stats.entries} entries, {stats.decisions} decisions"
        + (f", {stats.shadow} shadow" if stats.shadow else "")
        + (f", {stats.recoveries} crash recoveries" if stats.recoveries else "")
        + (f" (as of {stats.as_of})" if stats.as_of else ""),
        highlight=False,
    )
    verdicts = Table(title="decisions by verdict", title_justify="left")
    verdicts.add_column("verdict")
    verdicts.add_column("decisions", justify="right")
    verdicts.add_column("share", justify="right")
    for decision, count in stats.by_verdict.items():
        share = f"{count / stats.decisions:.1%}" if stats.decisions else "-"
        verdicts.add_row(decision, str(count), share)
    console.print(verdicts)
    rate = "-" if stats.automated_rate is None else f"{stats.automated_rate:.1%}"
    settled = stats.escalations_settled_by
    console.print(
        f"automated resolution: {rate} ({stats.automated} of {stats.decisions}: allow/deny by "
        f"the pack, escalations settled by llm {settled['llm']} / automation "
        f"{settled['automation']}; by a person {settled['human']}, unsettled "
        f"{settled['unsettled']}; failed closed {stats.fail_closed})",
        highlight=False,
    )
    console.print(
        f"approvals: {stats.approvals_waiting} waiting (oldest {_seconds(stats.waiting.longest)},"
        f" median {_seconds(stats.waiting.median)}); {stats.waited.count} resolved after "
        f"median {_seconds(stats.waited.median)}, p95 {_seconds(stats.waited.p95)}, longest "
        f"{_seconds(stats.waited.longest)}",
        highlight=False,
    )
    for waiting in stats.oldest_waiting:
        console.print(
            f"  waiting {_seconds(waiting['waiting_seconds'])}: {escape(waiting['decision_id'])} "
            f"(since {waiting['since']})",
            highlight=False,
        )
    if stats.spend:
        spend = Table(title="spend per action kind (USD)", title_justify="left")
        for column in ("kind", "allowed", "estimated", "recurring/month", "outcomes", "actual"):
            spend.add_column(column, justify="left" if column == "kind" else "right")
        for kind, row in sorted(stats.spend.items()):
            spend.add_row(
                escape(kind),
                str(row.allowed),
                f"{row.estimated_usd:,.2f}",
                f"{row.recurring_monthly_usd:,.2f}",
                str(row.outcomes),
                f"{row.actual_usd:,.2f}",
            )
        console.print(spend)
