"""Hot reload: a new version of the pack compiles beside the one serving, then takes over.

``watch`` polls the pack's files (a directory's every file, or a bundle) every
``interval`` seconds; when any changed it calls ``Runtime.reload``, which compiles the
new version in a worker thread and swaps it in with one assignment. A version that does
not compile leaves the old one serving; ``/readyz`` and the ``aigre_policy.server`` log
say why until a later version compiles. Polling needs no extra library and sees a change
made by any means (an editor, ``git pull``, a volume swapped under a container).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from aigre_policy.server.runtime import Runtime

logger = logging.getLogger("aigre_policy.server")
MAX_FILES = 10_000  # a pack is tens of files; past this the watch stops looking deeper


def fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file under ``path`` (or ``path`` itself) with its modification time and size."""
    found: list[tuple[str, int, int]] = []
    targets = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in targets[:MAX_FILES]:
        try:
            stat = os.stat(file)
        except OSError:
            continue  # removed while we looked: the next round sees it
        found.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def watched(runtime: Runtime) -> tuple[tuple[str, int, int], ...]:
    """The fingerprint of the pack and of every pack it extends (``extends:``)."""
    checked = getattr(runtime.served.pack, "checked", None)
    parents = getattr(checked, "ancestors", ())
    return tuple(f for root in (Path(runtime.pack_path), *parents) for f in fingerprint(root))


async def watch(runtime: Runtime, interval: float) -> None:
    """Reload the pack whenever its files, or a parent pack's, change; runs until cancelled."""
    seen = await asyncio.to_thread(watched, runtime)
    while True:
        await asyncio.sleep(interval)
        now = await asyncio.to_thread(watched, runtime)
        if now == seen:
            continue
        seen = now
        swapped = await asyncio.to_thread(runtime.reload)
        pack = runtime.served.pack
        if swapped:
            logger.warning("reloaded %s %s (%s)", pack.name, pack.version, pack.digest)
        else:
            logger.error(
                "the new version of %s does not compile; still serving %s: %s",
                runtime.pack_path,
                pack.version,
                runtime.reload_error,
            )
