"""Which files make up a log: the active file and the files rotated out of it."""

from __future__ import annotations

import re
from pathlib import Path


def log_files(path: str | Path) -> list[Path]:
    """The files of a log, oldest first: rotated ``PATH.1``, ``PATH.2``, ..., then ``PATH``."""
    active = Path(path)
    pattern = re.compile(re.escape(active.name) + r"\.([0-9]+)")
    rotated: list[tuple[int, Path]] = []
    if active.parent.is_dir():
        for candidate in active.parent.iterdir():
            match = pattern.fullmatch(candidate.name)
            if match and candidate.is_file():
                rotated.append((int(match.group(1)), candidate))
    files = [p for _, p in sorted(rotated)]
    if active.exists():
        files.append(active)
    return files
