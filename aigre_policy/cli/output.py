"""Where output goes and how it looks: ``-o FILE``, colour, and no wrapping in pipes.

One rule for every command: output to a terminal is laid out for its width; output to
a pipe or a file is never wrapped (a line of text, a hash, an identifier or a YAML
comment stays on one line, whatever its length) and has no colour unless ``--color``
asks for it. ``--no-color`` and the ``NO_COLOR`` variable turn colour off everywhere.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO

from aigre_policy.cli.exits import UsageError

if TYPE_CHECKING:
    from rich.console import Console

PIPE_WIDTH = 4096  # columns of output that is not a terminal: wide enough never to wrap
_color: bool | None = None  # --color (True), --no-color (False), or the terminal decides


def choose_color(choice: bool | None) -> None:
    """Set by ``--color``/``--no-color`` for the run; ``None`` lets the stream decide."""
    global _color
    _color = choice


def is_terminal(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def console(*, stderr: bool = False, file: IO[str] | None = None) -> Console:
    """A console for standard output (or error, or ``file``) that follows the rule above."""
    from rich.console import Console

    stream = file if file is not None else (sys.stderr if stderr else sys.stdout)
    terminal = is_terminal(stream)
    color = _color
    if color is None:
        color = terminal and "NO_COLOR" not in os.environ
    options: dict = {"highlight": False}
    if file is not None:
        options["file"] = file
    else:
        options["stderr"] = stderr
    if not terminal:
        options.update(width=PIPE_WIDTH, soft_wrap=True)
    if color:
        options.update(force_terminal=True)
    else:
        options.update(color_system=None, force_terminal=False)
    return Console(**options)


def piped(target: Console) -> bool:
    """Whether ``target`` writes to a pipe or a file: lay out for content, not for a width."""
    return not is_terminal(target.file)


@contextlib.contextmanager
def report_file(path: str | None) -> Iterator[TextIO]:
    """The file named by ``-o``, or standard output; a file that cannot be written is misuse."""
    if not path:
        yield sys.stdout
        return
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(Path(path).open("w", encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        yield handle


def wants_json(args_or_words: object) -> bool:
    """Whether the run asked for ``--format json`` (a parsed namespace or the raw words)."""
    if isinstance(args_or_words, list | tuple):
        words = [str(w) for w in args_or_words]
        return "--format=json" in words or any(
            a == "--format" and b == "json" for a, b in itertools.pairwise(words)
        )
    return getattr(args_or_words, "format", None) == "json"


def json_error(message: str, exit_code: int, **detail: object) -> None:
    """A failure as the one JSON document on standard output, for ``--format json`` callers:
    ``{"error": {"exit_code": 2, "message": "...", ...}}``. The line on standard error stays."""
    import json

    document = {"error": {"exit_code": exit_code, "message": message, **detail}}
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
