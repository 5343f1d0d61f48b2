"""Entry point of the ``aigre-policy`` command."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from aigre_policy import __version__
from aigre_policy.cli import build, check, ci, eval, fmt, init, inspect, log, replay
from aigre_policy.cli import test as test_command
from aigre_policy.cli.common import EXIT_USAGE, UsageError

COMMANDS = (check, eval, build, inspect, log, replay, test_command, fmt, ci, init)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aigre-policy",
        description="Policy-as-code gate for operational actions.",
    )
    parser.add_argument("--version", action="version", version=f"aigre-policy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    errors = Console(stderr=True)
    try:
        return args.run(args, console)
    except UsageError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
