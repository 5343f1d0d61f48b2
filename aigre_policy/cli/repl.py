"""``aigre-policy repl PACK``: evaluate expressions of the language against one input.

``-e EXPR`` (repeatable) evaluates and exits, for scripts; otherwise each line of
standard input is an expression, with line editing and completion when it is a
terminal. Exit code: 0 when every expression evaluated, 1 when one did not, 2 on
misuse or a pack that does not compile.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console

from aigre_policy.cli.common import EXIT_FAILURES, EXIT_USAGE, parse_overrides, read_eval_input
from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import render
from aigre_policy.repl import ExpressionError, Session, lines

PROMPT = "aigre> "
HELP = (
    "an expression per line, e.g. action.cost.estimated_usd * 2 or "
    "weekday(context.now); :quit (or Ctrl-D) ends"
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "repl",
        help="evaluate expressions against an action",
        description="Evaluate expressions of the policy language against one input, with "
        "the pack's input schema and envelope values: prints each value and its type. "
        "Exit code: 0 every expression evaluated, 1 one did not, 2 misuse or a pack that "
        "does not compile.",
    )
    parser.add_argument("pack", help="the pack directory")
    parser.add_argument(
        "--action",
        help="action file (JSON or YAML; a case file with action/context/usage also works), "
        "or - for stdin",
    )
    parser.add_argument("--context", help="context file (overrides a case file's)")
    parser.add_argument("--usage", help="usage values file (overrides a case file's)")
    parser.add_argument(
        "-e",
        "--expression",
        action="append",
        metavar="EXPR",
        help="evaluate EXPR and exit (repeatable); without it, read expressions from "
        "standard input, one a line",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--set",
        action="append",
        metavar="ENVELOPE.NAME=VALUE",
        help="override an envelope value (repeatable)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    overrides = parse_overrides(args.set)
    errors = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
    report = compile_pack(args.pack, overrides)
    if not report.ok or report.compiled is None:
        for diagnostic in report.diagnostics:
            errors.print(render(diagnostic, report.sources), style="red")
        errors.print(f"error: {args.pack} does not compile; run `aigre-policy check {args.pack}`")
        return EXIT_USAGE
    if args.action == "-" and not args.expression:
        errors.print("error: --action - reads standard input: give the expressions with -e")
        return EXIT_USAGE
    given = read_eval_input(args.action, args.context, args.usage) if args.action else None
    try:
        session = Session(
            report.compiled,
            given.action if given else None,
            given.context if given else None,
            given.usage if given else None,
        )
    except ExpressionError as exc:
        errors.print(f"error: {exc}")
        return EXIT_USAGE
    for problem in session.input_problems():
        errors.print(f"warning: the input breaks the schema: {problem}")
    if args.expression:
        return _each(session, args.expression, args.format)
    if sys.stdin is not None and sys.stdin.isatty():
        return _interactive(session, args.format)
    return _each(session, lines(sys.stdin), args.format)


def _each(session: Session, expressions: Any, output: str) -> int:
    """Evaluate each expression; 1 if any of them failed."""
    failed = False
    for text in expressions:
        failed |= not _show(session, text, output)
    return EXIT_FAILURES if failed else 0


def _show(session: Session, text: str, output: str) -> bool:
    try:
        result = session.evaluate(text)
    except ExpressionError as exc:
        if output == "json":
            print(json.dumps({"expression": text, "error": str(exc)}), flush=True)
        else:
            print(f"error: {exc}", file=sys.stderr, flush=True)
        return False
    if output == "json":
        print(json.dumps({"expression": text, **result.to_dict()}, ensure_ascii=False), flush=True)
    else:
        print(f"{result.text()} : {result.type}", flush=True)
    return True


def _interactive(session: Session, output: str) -> int:
    """A prompt with history and tab completion of names and field paths."""
    try:
        import readline  # line editing; absent on some platforms
    except ImportError:  # pragma: no cover - Windows without pyreadline
        readline = None  # type: ignore[assignment]
    if readline is not None:
        readline.set_completer_delims(" \t\n()[],=!<>+-*/%?:")
        readline.set_completer(_completer(session))
        readline.parse_and_bind("tab: complete")
    print(HELP)
    while True:
        try:
            text = input(PROMPT).strip()
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            continue
        if text in (":q", ":quit", ":exit"):
            return 0
        if text in (":h", ":help"):
            print(HELP)
        elif text and not text.startswith("#"):
            _show(session, text, output)


def _completer(session: Session) -> Any:
    matches: list[str] = []

    def complete(prefix: str, state: int) -> str | None:
        nonlocal matches
        if state == 0:
            matches = session.completions(prefix)
        return matches[state] if state < len(matches) else None

    return complete
