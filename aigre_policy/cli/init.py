"""``aigre-policy init NAME``: scaffold a pack that passes ``aigre-policy ci`` at once."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from aigre_policy.cli.common import UsageError
from aigre_policy.scaffold import FILES, ScaffoldError, scaffold


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "init",
        help="create a new pack",
        description="Create a pack: pack.yaml, policies/NAME.aigre with one rule and its "
        "tests on both sides of the line, and a README. Refuses a directory that is not empty.",
    )
    parser.add_argument("name", help="the pack's name, also its directory (e.g. deploy-guard)")
    parser.add_argument(
        "--dir", default=".", metavar="PARENT", help="create it in PARENT (default: here)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    try:
        root = scaffold(args.name, Path(args.dir))
    except ScaffoldError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"cannot create the pack: {exc.strerror or exc}") from exc
    console.print(f"created {root}", highlight=False, markup=False)
    for target in FILES:
        console.print(f"  {root / target.format(name=args.name)}", highlight=False, markup=False)
    console.print(f"next: aigre-policy ci {root}", highlight=False, markup=False)
    return 0
