"""Entry point of the ``aigre-policy`` command.

Every failure ends as one line on standard error and a documented exit code
(docs/cli.md#exit-codes); ``--debug`` shows the trace of an unexpected one instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console
from rich.markup import escape

from aigre_policy import __version__
from aigre_policy.cli import build, check, ci, diff, eval, fmt, init, inspect, log, prove, replay
from aigre_policy.cli import test as test_command
from aigre_policy.cli.common import EXIT_INTERNAL, EXIT_IO, EXIT_USAGE, UsageError

COMMANDS = (check, eval, build, inspect, log, replay, test_command, fmt, ci, init, prove, diff)
_LONGEST_MESSAGE = 300  # characters of an exception's text shown on the one line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aigre-policy",
        description="Policy-as-code gate for operational actions.",
    )
    parser.add_argument("--version", action="version", version=f"aigre-policy {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an unexpected failure, show the Python trace instead of one line",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    for subparser in commands.choices.values():  # `aigre-policy eval --debug ...` works too
        subparser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="on an unexpected failure, show the Python trace instead of one line",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    errors = Console(stderr=True, soft_wrap=True, highlight=False)
    if sys.stdout is None:  # started with standard output closed: the exit code still speaks
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    try:
        code = args.run(args, Console())
        sys.stdout.flush()  # a full disk shows here, not in the interpreter's exit
        return code
    except UsageError as exc:
        errors.print(f"[red]error:[/red] {escape(_one_line(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if args.debug:
            raise
        _quiet_stdout()
        where = f" ({exc.filename})" if exc.filename else ""
        reason = exc.strerror or _one_line(exc)
        errors.print(f"[red]error:[/red] input/output failed{escape(where)}: {escape(reason)}")
        return EXIT_IO
    except Exception as exc:
        if args.debug:
            raise
        errors.print(
            f"[red]internal error:[/red] {escape(type(exc).__name__)}: {escape(_one_line(exc))} "
            "(run with --debug for the trace)"
        )
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > _LONGEST_MESSAGE:
        text = text[: _LONGEST_MESSAGE - 3] + "..."
    return text


def _quiet_stdout() -> None:
    """Drop what standard output still buffers: after a failed write the interpreter's own
    flush at exit would fail again and print a second report."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a test harness, or closed
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno)
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
