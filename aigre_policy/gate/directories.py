"""Approver directories beyond a static mapping: a file that is reloaded when it changes,
groups learnt from verified credentials (an OIDC token's ``groups`` claim), and the union.

Whatever the source, the gate asks the directory at approval time and again at every
check that counts the approval (``approvals.sift``): membership is the gate's to check,
never the proposer's to claim (an action's ``actor.groups`` is never read here).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aigre_policy.gate.world import Directory
from aigre_policy.yamlio import read_document

logger = logging.getLogger("aigre_policy.gate")


def _groups(data: Any, where: str) -> dict[str, frozenset[str]]:
    """``{group: [people]}`` read from a file; anything else is refused whole."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: a directory is a mapping of group to people")
    groups: dict[str, frozenset[str]] = {}
    for group, people in data.items():
        if not isinstance(group, str) or not isinstance(people, list):
            raise ValueError(f"{where}: group {group!r} must map to a list of people")
        if not all(isinstance(p, str) and p for p in people):
            raise ValueError(f"{where}: the members of {group!r} must be non-empty strings")
        groups[group] = frozenset(people)
    return groups


class FileDirectory:
    """Group membership from a YAML or JSON file ``{group: [people]}``, read again when
    the file changes (looked at no more than every ``check_seconds``).

    A file that cannot be read or does not have that shape makes *nobody* a member until
    it is fixed (approvals are refused and held ones stop counting: stricter, never
    looser); ``error`` says why.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        check_seconds: float = 1.0,
        timer: Callable[[], float] = time.monotonic,
    ):
        self.path = Path(path)
        self.check_seconds = check_seconds
        self.timer = timer
        self.error: str | None = None
        self._groups: dict[str, frozenset[str]] = {}
        self._seen: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        now = self.timer()
        if not force and now - self._checked < self.check_seconds:
            return
        self._checked = now
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
            if seen == self._seen and self.error is None:
                return
            document, problems = read_document(self.path)
            if document is None:
                raise ValueError("; ".join(str(getattr(p, "message", p)) for p in problems))
            self._groups, self.error, self._seen = (
                _groups(document.data, str(self.path)),
                None,
                seen,
            )
        except (OSError, ValueError) as exc:
            if self.error is None:
                logger.error(
                    "approver directory %s unusable, nobody is a member: %s", self.path, exc
                )
            self._groups, self.error, self._seen = {}, str(exc), None

    def is_member(self, person: str, group: str) -> bool:
        with self._lock:
            self._refresh()
            return person in self._groups.get(group, frozenset())


class ClaimedGroups:
    """Groups learnt from verified credentials: an OIDC token's ``groups`` claim, or an API
    key's configured actor. ``remember(actor)`` is called with the *authenticated* actor of
    an approver (never a proposal); what it says counts for ``remember_seconds`` after it
    was last presented, so someone taken out of a group at the identity provider stops
    counting at most that long after their last sign-in."""

    def __init__(self, remember_seconds: float = 3600.0, *, timer: Callable[[], float] = time.time):
        self.remember_seconds = remember_seconds
        self.timer = timer
        self._known: dict[str, tuple[frozenset[str], float]] = {}
        self._lock = threading.Lock()

    def remember(self, actor: Mapping[str, Any] | None) -> None:
        if not isinstance(actor, Mapping) or not isinstance(actor.get("id"), str):
            return
        groups = actor.get("groups")
        names = (
            frozenset(g for g in groups if isinstance(g, str))
            if isinstance(groups, list | tuple)
            else frozenset()
        )
        with self._lock:
            self._known[actor["id"]] = (names, self.timer() + self.remember_seconds)

    def is_member(self, person: str, group: str) -> bool:
        with self._lock:
            known = self._known.get(person)
        return known is not None and known[1] >= self.timer() and group in known[0]


class AnyDirectory:
    """A member of a group in any of the directories given."""

    def __init__(self, directories: Iterable[Directory]):
        self.directories = tuple(directories)

    def is_member(self, person: str, group: str) -> bool:
        return any(d.is_member(person, group) for d in self.directories)
