"""``aigre-policy completion SHELL``: a tab-completion script for bash, zsh or tcsh.

The script is generated from the command's own parser by shtab, so it offers exactly the
commands, options and choices the installed version has; pack directories, bundles and
input files complete as paths.

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

SHELLS = ("bash", "zsh", "tcsh")
# what completes as a directory: a pack (a bundle is a file: `eval`, `test` and `inspect`
# take either, so their packs complete as any path)
_DIRECTORIES = {"candidate", "old", "new", "tests", "dir"}
_PACK_DIRECTORIES = {"check", "build", "ci", "serve", "repl", "prove"}
_FILES = {"action", "context", "usage", "verification_key", "signing_key", "bundle", "paths"}


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a tab-completion script for SHELL, generated from this "
        "version's own commands and options. Load it from your shell's start-up file, "
        'for example `eval "$(aigre-policy completion bash)"` in ~/.bashrc or '
        "`aigre-policy completion zsh > ~/.zfunc/_aigre-policy` for zsh (docs/cli.md).",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    import shtab

    from aigre_policy.cli.main import build_parser

    parser = build_parser(None)  # every command with its real options
    for name, command in _commands(parser):
        for action in getattr(command, "arguments", ()):
            hint = _path_hint(name, action)
            if hint is not None:
                action.complete = getattr(shtab, hint)  # read by shtab
    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    return 0


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    commands = getattr(parser, "commands", None)
    return [] if commands is None else list(commands.choices.items())


def _path_hint(command: str, action: argparse.Action) -> str | None:
    """``"DIRECTORY"``, ``"FILE"`` or ``None``: what the argument's value completes as. An
    option left unmarked (in an option group) still completes as a path in bash, whose
    default completion the script falls back to."""
    if action.nargs == 2:  # --from FORMAT FILE: a format first
        return None
    packs = action.dest in ("pack", "packs")
    if action.dest in _DIRECTORIES or (packs and command in _PACK_DIRECTORIES):
        return "DIRECTORY"
    if action.dest in _FILES or action.metavar == "FILE" or packs:
        return "FILE"
    return None
