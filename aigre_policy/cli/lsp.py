"""``aigre-policy lsp``: the language server an editor starts (docs/editors.md).

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console

from aigre_policy.cli.common import UsageError

_EXTRA = {"pygls", "lsprotocol", "cattrs"}  # what `pip install "aigre-policy[lsp]"` brings


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "lsp",
        help="run the language server (for editors)",
        description="Speak the Language Server Protocol on standard input and output: "
        "diagnostics as you type, hover, go to definition and completion for .aigre files. "
        "Editors start it themselves; see docs/editors.md.",
    )
    parser.add_argument(
        "--stdio",
        action="store_true",
        help="talk over standard input and output (the default and only transport; "
        "accepted because many editor clients pass it)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    try:  # pygls is an optional extra: imported only when the server runs
        from aigre_policy.lsp.server import serve
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in _EXTRA:
            raise
        raise UsageError(
            'the language server needs pygls: pip install "aigre-policy[lsp]"'
        ) from None
    code = serve()
    if sys.stdout.closed:  # the server closes its output when the client says exit
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    return code
