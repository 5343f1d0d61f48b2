"""``-o FILE``: where a command's report goes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from aigre_policy.cli.common import UsageError


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
