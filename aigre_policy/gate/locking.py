"""An advisory lock shared by the processes writing one log: ``flock`` on ``PATH.lock``.

The lock file stays open for the life of the writer (reopened after a fork), so
taking the lock costs one system call when nobody else holds it. The kernel
drops a lock when its holder dies, so a writer killed mid-entry never blocks
the others. POSIX only (``fcntl``).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class LockTimeout(Exception):
    """The lock was not free within the timeout."""


class InterProcessLock:
    """``with lock:`` holds an exclusive ``flock`` on the file, waiting up to ``timeout`` s."""

    def __init__(self, path: str | Path, timeout: float):
        self.path = Path(path)
        self.timeout = timeout
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            # after a fork the inherited descriptor shares the parent's lock: open our own
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._pid = os.getpid()
        return self._fd

    def __enter__(self) -> InterProcessLock:
        fd = self._descriptor()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return self
        except BlockingIOError:
            pass
        deadline = time.monotonic() + self.timeout
        pause = 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{self.path} stayed locked for {self.timeout} s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.005)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
