"""Time for the gate: the only place the gate reads a clock, so tests can replace it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
"""A zero-argument callable returning an aware ``datetime``."""


def system_clock() -> datetime:
    return datetime.now(UTC)


class FakeClock:
    """A clock that stands still until moved: ``clock.set(t)``, ``clock.advance(seconds=5)``."""

    def __init__(self, start: datetime | str):
        self._now = _aware(start)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime | str) -> None:
        with self._lock:
            self._now = _aware(moment)

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def _aware(moment: datetime | str) -> datetime:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if value.tzinfo is None:
        raise ValueError(f"{moment!r} has no UTC offset")
    return value


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch: exact, so window edges compare without rounding."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as the action schema's date-times are written."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
