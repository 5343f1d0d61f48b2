"""Entry point of the ``aigre-policy`` command.

Every failure ends as one line on standard error and a documented exit code
(docs/cli.md#exit-codes); ``--debug`` shows the trace of an unexpected one instead.

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

from aigre_policy.cli.exits import EXIT_INTERNAL, EXIT_IO, EXIT_USAGE, UsageError
from aigre_policy.collector import collector_paused
from aigre_policy.version import __version__

# Every command: (name, module, one-line help for `aigre-policy --help`). Only the module of
# the command being run is imported, so the CLI starts fast whatever the others load. A new
# command is one line here and a module with `add_parser(commands)` and `args.run`.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("check", "aigre_policy.cli.check", "compile packs and report problems"),
    ("eval", "aigre_policy.cli.eval", "evaluate one proposed action"),
    ("build", "aigre_policy.cli.build", "compile a pack to an OPA bundle"),
    ("inspect", "aigre_policy.cli.inspect", "list what an OPA bundle holds"),
    ("log", "aigre_policy.cli.log", "verify or summarise a decision log"),
    ("replay", "aigre_policy.cli.replay", "re-judge logged decisions under a candidate pack"),
    ("test", "aigre_policy.cli.test", "run a pack's bright-line tests"),
    ("fmt", "aigre_policy.cli.fmt", "format .aigre files in the canonical layout"),
    ("ci", "aigre_policy.cli.ci", "compile, lint, format-check and test every pack"),
    ("init", "aigre_policy.cli.init", "create a new pack"),
    (
        "serve",
        "aigre_policy.cli.serve",
        "serve a pack over HTTP (native, OPA Data API, AuthZEN 1.0)",
    ),
    ("mcp-proxy", "aigre_policy.cli.mcp_proxy", "put the gate in front of an MCP server"),
    (
        "mcp-approve",
        "aigre_policy.cli.mcp_approve",
        "approve a tool call the MCP proxy held for approval",
    ),
    ("lsp", "aigre_policy.cli.lsp", "run the language server (for editors)"),
    ("repl", "aigre_policy.cli.repl", "evaluate expressions against an action"),
    (
        "prove",
        "aigre_policy.cli.prove",
        "prove a pack's invariants for every input, or refute them, with an SMT solver",
    ),
    (
        "diff",
        "aigre_policy.cli.diff",
        "compare two versions of a pack for every input, with an SMT solver",
    ),
    ("completion", "aigre_policy.cli.completion", "print a shell completion script"),
)
_PIPE_WIDTH = 4096  # as cli.output.PIPE_WIDTH: output off a terminal never wraps
_LONGEST_MESSAGE = 300  # characters of an exception's text shown on the one line
_DEBUG_HELP = "on an unexpected failure, show the Python trace instead of one line"


def command_module(name: str) -> ModuleType:
    """The module that defines command ``name`` (imported now, not at start-up)."""
    for command, module, _help in COMMANDS:
        if command == name:
            return importlib.import_module(module)
    raise KeyError(name)


def _chosen(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top-level
    options take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


class _Parser(argparse.ArgumentParser):
    """argparse's parser; with ``--format json`` among the words, its usage errors (exit 2)
    are also a JSON document on standard output. It keeps the arguments its own
    ``add_argument`` made (``arguments``) and, at the top, its commands (``commands``):
    the completion script marks which of them take paths."""

    json_errors = False

    def __init__(self, *args: Any, **kwargs: Any):
        self.arguments: list[argparse.Action] = []
        self.commands: argparse._SubParsersAction | None = None
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.arguments.append(action)
        return action

    def error(self, message: str) -> NoReturn:
        if _Parser.json_errors:
            from aigre_policy.cli.output import json_error

            json_error(f"{self.prog}: {message}", EXIT_USAGE)
        super().error(message)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; given ``argv``, only the command it names gets its real arguments
    (the others stay a name and a help line, enough for ``--help`` and for errors)."""
    parser = _Parser(
        prog="aigre-policy",
        description="Policy-as-code gate for operational actions.",
    )
    parser.add_argument("--version", action="version", version=f"aigre-policy {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    _add_color_options(parser, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.commands = commands
    chosen = None if argv is None else _chosen(argv)
    for name, module, summary in COMMANDS:
        if argv is None or name == chosen:
            importlib.import_module(module).add_parser(commands)
        else:
            commands.add_parser(name, help=summary)
    for subparser in commands.choices.values():  # `aigre-policy eval --debug ...` works too
        subparser.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP
        )
        _add_color_options(subparser, argparse.SUPPRESS)
    if not _is_terminal(sys.stdout):  # help in a pipe or a file: one line per option
        for each in (parser, *commands.choices.values()):
            each.formatter_class = _unwrapped
    return parser


def _unwrapped(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=_PIPE_WIDTH, max_help_position=40)


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream is not None and stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _add_color_options(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--color",
        dest="color",
        action="store_const",
        const=True,
        default=default,
        help="colour the output even when it is not a terminal",
    )
    group.add_argument(
        "--no-color",
        dest="color",
        action="store_const",
        const=False,
        default=default,
        help="no colour (also: the NO_COLOR environment variable)",
    )


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    # start-up imports modules and builds classes and parsers, all kept for the run: a
    # collection then frees nothing (a tenth of a cached eval's time went to them)
    with collector_paused():
        _Parser.json_errors = _wants_json(list(words))
        args = build_parser(words).parse_args(words)
        from rich.markup import escape  # after parsing: `--help` needs none of rich

        from aigre_policy.cli.output import choose_color, console

        if argv is None:  # the process is this command: no later collection walks them
            gc.freeze()  # again (a caller's own objects are never frozen by a call)

    choose_color(getattr(args, "color", None))
    if sys.stdout is None:  # started with standard output closed: the exit code still speaks
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    errors = console(stderr=True)
    try:
        code = args.run(args, console())
        sys.stdout.flush()  # a full disk shows here, not in the interpreter's exit
        return code
    except UsageError as exc:
        if _wants_json(args):
            from aigre_policy.cli.output import json_error

            json_error(_one_line(exc), EXIT_USAGE)
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


def _wants_json(args_or_words: object) -> bool:
    from aigre_policy.cli.output import wants_json

    return wants_json(args_or_words)


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
