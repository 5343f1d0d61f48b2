"""``aigre-policy eval``: judge one proposed action with a pack."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from aigre_policy.cli.common import (
    DECISION_EXIT,
    EXIT_FAIL_CLOSED,
    EXIT_USAGE,
    UsageError,
    parse_overrides,
    read_eval_input,
)
from aigre_policy.cli.view import show_verdict
from aigre_policy.diagnostics import CompileError
from aigre_policy.pack import load_pack
from aigre_policy.rego.attach import render_modules, rego_program
from aigre_policy.rego.engine import engine_names


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="evaluate one proposed action",
        description="Evaluate a proposed action and print the verdict with its evidence. "
        "Exit code: 0 allow, 3 escalate, 4 require_approval, 5 deny, 6 failed closed "
        "(invalid input or engine fault), 2 misuse or a pack that does not compile.",
    )
    parser.add_argument("pack", help="the pack directory")
    parser.add_argument(
        "--action",
        help="action file (JSON or YAML; a case file with "
        "action/context/usage also works), or - for stdin",
    )
    parser.add_argument("--context", help="context file (overrides a case file's)")
    parser.add_argument("--usage", help="usage values file (overrides a case file's)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--set",
        action="append",
        metavar="ENVELOPE.NAME=VALUE",
        help="override an envelope value (repeatable)",
    )
    parser.add_argument(
        "--emit",
        choices=("python", "rego"),
        help="print the generated evaluator (Python, or the Rego modules) instead of evaluating",
    )
    parser.add_argument(
        "--engine",
        choices=engine_names(),
        default="native",
        help="native: generated Python; rego: the pack compiled to Rego, run with regopy",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    overrides = parse_overrides(args.set)
    try:
        pack = load_pack(args.pack, overrides, engine=args.engine)
    except CompileError as exc:
        errors = Console(stderr=True, soft_wrap=True)  # stdout stays for verdicts and --emit
        errors.print(exc.report(), style="red", markup=False, highlight=False)
        errors.print(
            f"[red]error:[/red] {args.pack} does not compile; run `aigre-policy check {args.pack}`",
            highlight=False,
        )
        return EXIT_USAGE
    if args.emit == "python":
        sys.stdout.write(pack.python_source)
        return 0
    if args.emit == "rego":
        sys.stdout.write(render_modules(rego_program(pack)))
        return 0
    if not args.action:
        raise UsageError("eval needs --action FILE (or --emit python|rego)")
    given = read_eval_input(args.action, args.context, args.usage)
    verdict = pack.evaluate(given.action, given.context, given.usage)
    if args.format == "json":
        sys.stdout.write(verdict.to_json(indent=2) + "\n")
    else:
        show_verdict(console, verdict, given.source)
    if verdict.fail_closed:
        return EXIT_FAIL_CLOSED
    return DECISION_EXIT[verdict.decision]
