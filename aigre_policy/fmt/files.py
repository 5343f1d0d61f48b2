"""Which files ``fmt`` formats, and writing them back safely."""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from pathlib import Path

from aigre_policy.fmt import FormatResult

SUFFIX = ".aigre"


class NoSources(Exception):
    """A path that is neither a policy file nor a directory holding one."""


def find_sources(paths: list[str]) -> list[Path]:
    """The ``.aigre`` files named, or found below the directories named (hidden ones skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            below = sorted(
                p
                for p in path.rglob(f"*{SUFFIX}")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not below:
                raise NoSources(f"{path} holds no {SUFFIX} files")
            found.extend(below)
        else:
            raise NoSources(f"no file or directory at {path}")
    return list(dict.fromkeys(found))


def pack_sources(pack: Path) -> list[Path]:
    """The policy files of a pack, as the compiler reads them."""
    policies = pack / "policies"
    return sorted(policies.glob(f"*{SUFFIX}")) if policies.is_dir() else []


def unified_diff(result: FormatResult) -> str:
    """What formatting changes, as a unified diff (empty when nothing changes)."""
    if not result.changed:
        return ""
    assert result.formatted is not None
    return "".join(
        difflib.unified_diff(
            result.original.splitlines(keepends=True),
            result.formatted.splitlines(keepends=True),
            fromfile=f"{result.file}\t(original)",
            tofile=f"{result.file}\t(formatted)",
        )
    )


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: a reader sees the old file or the new one."""
    mode = path.stat().st_mode
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
