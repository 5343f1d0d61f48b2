"""What ``guard`` proposes for a call: the action, with an id and time kept across retries.

A call refused for an approval or a reviewer proposes the same action again when
it is repeated with the same arguments (the same ``id`` and ``requested_at``, so
the same digest), so an approval recorded in between lets it through. A proposal
that ran, or was refused for good, is forgotten.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aigre_policy.gate.clock import Clock, iso
from aigre_policy.gate.draft import plain
from aigre_policy.gate.errors import ApprovalRequired, Escalated
from aigre_policy.verdict import digest

_KEPT = 10_000  # proposals waiting for a person; past that the oldest are dropped at once


class Proposals:
    """The proposals of a gate's guarded calls that wait for a person."""

    def __init__(self, defaults: Mapping[str, Any], clock: Clock):
        self.defaults = defaults
        self.clock = clock
        self._pending: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def propose(
        self,
        function: Callable,
        action: Any,
        fields: Mapping[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[dict[str, Any], str]:
        """The action a call proposes, and the key its retries share."""
        proposal: dict[str, Any] = dict(self.defaults)
        if action is not None:
            proposal.update(plain(action(*args, **kwargs) if callable(action) else action))
        for name, value in fields.items():
            proposal[name] = value(*args, **kwargs) if callable(value) else value
        proposal = {k: plain(v) for k, v in proposal.items()}
        key = digest({k: v for k, v in proposal.items() if k not in ("id", "requested_at")})
        with self._lock:
            known = self._pending.get(key)
            if known is None:
                known = (
                    proposal.get("id") or f"{function.__name__}-{uuid.uuid4().hex[:12]}",
                    proposal.get("requested_at") or iso(self.clock()),
                )
                if len(self._pending) > _KEPT:
                    self._pending.clear()
                self._pending[key] = known
        proposal.setdefault("id", known[0])
        proposal.setdefault("requested_at", known[1])
        return proposal, key

    @contextmanager
    def attempt(self, key: str) -> Iterator[None]:
        """Forget the proposal once the call ran or was refused for good; one waiting for
        an approval or a reviewer is kept, to be proposed again unchanged."""
        try:
            yield
        except (ApprovalRequired, Escalated):
            raise
        except BaseException:
            self._forget(key)
            raise
        self._forget(key)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._pending.pop(key, None)
