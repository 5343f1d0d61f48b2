"""``aigre-policy test --watch``: run the tests again each time a pack's file changes.

Polling, not OS notifications: a pack is a handful of small files, a stat of each twice a
second costs nothing, and it works the same on every platform and file system (network
mounts and containers included) with no extra dependency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

Snapshot = dict[str, tuple[int, int]]  # file -> (mtime in ns, size)
WATCHED = ("pack.yaml", "policies", "tests", "fixtures")  # what a pack's tests read


def watched_files(packs: Iterable[Path]) -> list[Path]:
    """The files the tests of ``packs`` read: the manifest, policies, YAML tests, fixtures."""
    files: list[Path] = []
    for pack in packs:
        for name in WATCHED:
            path = pack / name
            if path.is_file():
                files.append(path)
            elif path.is_dir():
                files += sorted(p for p in path.rglob("*") if p.is_file())
    return files


def snapshot(packs: Iterable[Path]) -> Snapshot:
    found: Snapshot = {}
    for file in watched_files(packs):
        try:
            info = file.stat()
        except OSError:  # removed between the listing and the stat: the next poll sees it
            continue
        found[str(file)] = (info.st_mtime_ns, info.st_size)
    return found


def wait_for_change(
    packs: list[Path],
    before: Snapshot,
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Snapshot:
    """Block until a watched file is added, removed or changed; the new snapshot."""
    while True:
        sleep(interval)
        now = snapshot(packs)
        if now != before:
            return now


def watch(
    packs: list[Path],
    run: Callable[[], int],
    announce: Callable[[str], None],
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    rounds: int | None = None,
) -> int:
    """Run, then run again after each change, until interrupted (or ``rounds`` runs, for
    tests); the last run's exit code."""
    code = 0
    done = 0
    state = snapshot(packs)
    while rounds is None or done < rounds:
        code = run()
        done += 1
        if rounds is not None and done >= rounds:
            break
        announce(f"watching {len(state)} files for changes (Ctrl-C to stop)")
        state = wait_for_change(packs, state, interval, sleep)
        announce("changed: running the tests again")
    return code
