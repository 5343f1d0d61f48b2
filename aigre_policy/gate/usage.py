"""Usage values: a pack's ``usage`` declarations computed over the ledger.

Each declaration aggregates (``sum``, ``count``, ``max``) a value over the past
actions inside a window that pass its ``where`` filter. The argument and the
filter are IR expressions, evaluated with the reference interpreter over the
stored action and its decision.

Windows, in UTC, hold a past action when ``start <= at <= now`` (both edges in):

- ``last D``: ``start = now - D``, so an action exactly ``D`` ago still counts;
- ``calendar_day``: from 00:00:00 of ``now``'s day;
- ``calendar_week``: from 00:00:00 of the Monday of ``now``'s ISO week;
- ``calendar_month``: from 00:00:00 of the first day of ``now``'s month.

``at`` is the gate time of the action's latest decision; ``sum`` and ``count`` of
nothing are 0, and so is ``max`` of nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aigre_policy import interpreter, ir
from aigre_policy.gate.clock import to_us
from aigre_policy.gate.ledger import LedgerError, LedgerSession, WindowRow


def window_start(usage: ir.Usage, now: datetime) -> datetime:
    """The first instant of ``usage``'s window at ``now``."""
    if usage.window_seconds is not None:
        return now - timedelta(seconds=usage.window_seconds)
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    match usage.window:
        case "calendar_day":
            return midnight
        case "calendar_week":
            return midnight - timedelta(days=midnight.weekday())
        case "calendar_month":
            return midnight.replace(day=1)
    raise ValueError(f"unknown window {usage.window!r}")


class UsageCalculator:
    """Computes one pack's usage values; remembers what each past row contributes.

    A row never changes once written (a re-check adds a new row), so its
    contributions are cached by decision id and the ledger sends each action once.
    """

    def __init__(self, usages: Sequence[ir.Usage], envelopes: Mapping[str, Mapping[str, Any]]):
        self.usages = tuple(usages)
        self._envelopes = envelopes
        self._cache: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()

    def compute(self, session: LedgerSession, now: datetime, exclude_digest: str) -> dict[str, Any]:
        """``{name: value}`` for every declaration; the action being checked is left out."""
        if not self.usages:
            return {}
        now_us = to_us(now)
        starts = [to_us(window_start(u, now)) for u in self.usages]
        rows = [tuple(row) for row in session.window(min(starts), now_us, exclude_digest)]
        picked: list[list[Any]] = [[] for _ in self.usages]
        with self._lock:
            cache = self._cache
            missing = [row for row in rows if row[1] not in cache]
            if missing:
                actions = session.actions([row[0] for row in missing])
                for row in missing:
                    if row[0] not in actions:
                        raise LedgerError(f"ledger row {row[1]} vanished while being read")
                    cache[row[1]] = self._contribute(WindowRow(*row), actions[row[0]])
            for _, decision_id, _, at_us in rows:
                for i, value in enumerate(cache[decision_id]):
                    if value is not None and at_us >= starts[i]:
                        picked[i].append(value)
            if len(cache) > 4 * len(rows) + 10_000:  # drop rows that left every window
                live = {row[1] for row in rows}
                self._cache = {k: v for k, v in cache.items() if k in live}
        return {
            u.name: _aggregate(u, values) for u, values in zip(self.usages, picked, strict=True)
        }

    def _contribute(self, row: WindowRow, action: Any) -> tuple[Any, ...]:
        """Per declaration: ``None`` when the filter rejects the row, else its value."""
        scope = {"action": action, "decision": row.decision}
        values: list[Any] = []
        for usage in self.usages:
            try:
                if usage.filter is not None and not interpreter.evaluate(
                    usage.filter, scope, self._envelopes
                ):
                    values.append(None)
                    continue
                value = (
                    1
                    if usage.argument is None
                    else interpreter.evaluate(usage.argument, scope, self._envelopes)
                )
            except Exception as exc:
                raise LedgerError(
                    f"usage `{usage.name}` cannot read ledger row {row.decision_id}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            values.append(value)
        return tuple(values)


def _aggregate(usage: ir.Usage, values: list[Any]) -> Any:
    match usage.aggregate:
        case "count":
            result: Any = len(values)
        case "sum":
            result = sum(values)
        case "max":
            result = max(values, default=0)
        case other:
            raise ValueError(f"unknown aggregate {other!r}")
    if isinstance(result, float) and not math.isfinite(result):
        raise LedgerError(f"usage `{usage.name}` is {result!r}: not a finite number")
    return result
