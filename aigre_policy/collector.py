"""A pause of the cyclic garbage collector, shared by the threads that take one."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_PAUSE_LOCK = threading.Lock()
_pauses = 0  # compiles running with the collector paused
_resume = False  # whether the collector was on when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a pack compiles or loads from the compile
    cache, back as it was after.

    A compile allocates many objects that live until it ends (tokens, trees, nodes,
    code) and frees few; each full collection walks all of them again, which made
    compile time grow faster than the pack. A cache load unpickles tens of thousands of
    nodes and parses the generated Python: the same shape, a third of its time spent in
    collections that free nothing. Pauses in several threads share one: the last to
    finish restores the collector.
    """
    global _pauses, _resume
    with _PAUSE_LOCK:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
