"""Usage values: a pack's ``usage`` declarations computed over the ledger.

Each declaration aggregates (``sum``, ``count``, ``max``) a value over the past
actions inside a window that pass its ``where`` filter. The argument and the
filter are IR expressions, evaluated with the reference interpreter over the
stored action and its decision, once per row: the result (a ``Contribution``) is
stored beside the row when it is written, under a key digesting the declaration's
argument, filter and envelopes, so a re-worded window or a renamed declaration
reuses it and a changed expression computes afresh.

Windows, in UTC, hold a past action when ``start <= at <= end`` (both edges in),
where ``end`` is the check's time in the ledger (``now``, or later when another
process recorded a later time) and ``start`` derives from ``now``:

- ``last D``: ``start = now - D``, so an action exactly ``D`` ago still counts;
- ``calendar_day``: from 00:00:00 of ``now``'s day;
- ``calendar_week``: from 00:00:00 of the Monday of ``now``'s ISO week;
- ``calendar_month``: from 00:00:00 of the first day of ``now``'s month.

A declaration whose filter compares a past action with the one being checked
(``where action.target == current.target``) counts only the rows whose side of each
such comparison equals the current action's: each admitted row carries the digest of
its values (``Contribution.match``), and the window is read within the partition of
the current action's digest (``Partitioned``). The digest is kept in memory only: a
reader computes it again from the stored action, so the ledgers' tables and queries do
not change, and what the proposer wrote never reaches SQL text.

``at`` is the gate time of the action's latest decision; ``sum`` and ``count`` of
nothing are 0, and so is ``max`` of nothing. ``sum`` is exact: the true total,
rounded once to a float when any value is a float.

A ``UsageCalculator`` keeps the rows of its widest window in memory (one
``Series`` per key) and, at each check, fetches only the rows added or
superseded since it last looked (the ledger's change counter), so several
processes writing one ledger stay in step and a check costs a few index lookups,
not a pass over the window.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aigre_policy import interpreter, ir
from aigre_policy.gate.clock import to_us
from aigre_policy.gate.compiled import Compiled, compile_node
from aigre_policy.gate.ledger import ChangedRow, Contribution, LedgerError, LedgerSession
from aigre_policy.gate.series import Series
from aigre_policy.version import __version__

CONTRIBUTION_FORMAT = 1  # bump when the meaning of a stored contribution changes
_PRUNE_AT = 1024  # forget rows that left every window once this many are held
_PRUNE_EVERY = 256  # checks between looks for such rows


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


def usage_key(usage: ir.Usage, envelopes: Mapping[str, Any]) -> str:
    """What a row's contribution depends on: argument, filter, envelopes, evaluator version."""
    parts = [CONTRIBUTION_FORMAT, __version__, repr(usage.argument), repr(usage.filter), envelopes]
    if usage.matches:  # only then, so the keys of other declarations stay as they were
        parts.append(repr(usage.matches))
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _compiled(node: ir.Node | None, envelopes: Mapping[str, Any]) -> Compiled | None:
    if node is None:
        return None
    try:
        return compile_node(node, envelopes)
    except Exception:  # too deep, or a node it cannot take: the interpreter judges it
        return _interpreted(node, envelopes)


def _side(node: ir.Node, envelopes: Mapping[str, Any]) -> Compiled:
    """One side of a ``PAST == CURRENT`` comparison as a closure."""
    compiled = _compiled(node, envelopes)
    assert compiled is not None  # a node always compiles to something
    return compiled


def _interpreted(node: ir.Node | None, envelopes: Mapping[str, Any]) -> Compiled | None:
    if node is None:
        return None
    return lambda scope: interpreter.evaluate(node, scope, envelopes)


def _plain(value: Any) -> Any:
    """``value`` with whole floats as integers, so values ``==`` holds equal digest alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def match_digest(values: Sequence[Any]) -> str:
    """The digest of one side of a declaration's ``PAST == CURRENT`` comparisons."""
    text = json.dumps(_plain(list(values)), sort_keys=True, ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _contribute(
    filter_: Compiled | None,
    argument: Compiled | None,
    scope: Mapping[str, Any],
    row: object,
    matches: Sequence[Compiled] = (),
) -> Contribution:
    """What the row in ``scope`` adds: the filter first, then the past side of each match
    (read only when the filter admits the row: its guards hold), then the argument
    (1 without one)."""
    match = None
    try:
        if filter_ is not None and not filter_(scope):
            return Contribution(False)
        if matches:
            match = match_digest([side(scope) for side in matches])
        if argument is None:
            return Contribution(True, 1, None, match)
        value = argument(scope)
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        if isinstance(value, float) and math.isfinite(value):
            return Contribution(True, value, None, match)
        if isinstance(value, int) and not isinstance(value, bool):
            return Contribution(True, value, None, match)
        problem = f"the value {value!r} is not a finite number"
    return Contribution(False, None, f"cannot read ledger row {row}: {problem}")


class Partitioned:
    """A declaration's rows split by their match digest; unreadable rows count for all."""

    __slots__ = ("_all", "_parts", "_where")

    def __init__(self) -> None:
        self._all = Series()  # holds the unreadable rows only, so each window checks them
        self._parts: dict[str, Series] = {}
        self._where: dict[int, str] = {}  # row id -> its partition

    def __len__(self) -> int:
        return len(self._all) + len(self._where)

    def put(self, row_id: int, at_us: int, contribution: Contribution) -> None:
        self.drop(row_id)
        if contribution.error is not None:
            self._all.put(row_id, at_us, contribution)
            return
        if not contribution.passed:
            return
        if contribution.match is None:  # never computed for this row: fail closed
            unread = Contribution(False, None, f"ledger row {row_id} has no match digest")
            self._all.put(row_id, at_us, unread)
            return
        self._where[row_id] = contribution.match
        self._parts.setdefault(contribution.match, Series()).put(row_id, at_us, contribution)

    def drop(self, row_id: int) -> None:
        self._all.drop(row_id)
        part = self._where.pop(row_id, None)
        if part is not None:
            series = self._parts[part]
            series.drop(row_id)
            if not len(series):
                del self._parts[part]

    def aggregate(
        self, aggregate: str, start_us: int, end_us: int, skip: int | None, name: str, match: str
    ) -> Any:
        self._all.aggregate(aggregate, start_us, end_us, skip, name)  # raises on an error
        return self._parts.get(match, self._all).aggregate(aggregate, start_us, end_us, skip, name)


@dataclass
class _Mirror:
    """The ledger's current rows from ``since_us`` on, as of change ``seq``."""

    ledger_id: str
    seq: int
    since_us: int
    series: dict[str, Any]  # key -> Series, or Partitioned for a declaration with matches
    rows: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> (digest, at_us)
    by_digest: dict[str, int] = field(default_factory=dict)  # digest -> current row id
    checks: int = 0

    def forget(self, row_id: int) -> None:
        held = self.rows.pop(row_id, None)
        if held is None:
            return
        if self.by_digest.get(held[0]) == row_id:
            del self.by_digest[held[0]]
        for series in self.series.values():
            series.drop(row_id)

    def hold(self, row: ChangedRow, contributions: Mapping[str, Contribution]) -> None:
        self.rows[row.id] = (row.action_digest, row.at_us)
        self.by_digest[row.action_digest] = row.id
        for key, series in self.series.items():
            series.put(row.id, row.at_us, contributions[key])


class UsageCalculator:
    """Computes one pack's usage values over a ledger; thread-safe."""

    def __init__(self, usages: Sequence[ir.Usage], envelopes: Mapping[str, Mapping[str, Any]]):
        self.usages = tuple(usages)
        self._envelopes = envelopes
        self._keys = tuple(usage_key(u, envelopes) for u in self.usages)
        self._by_key = dict(zip(self._keys, self.usages, strict=True))  # one usage per key
        self.keys = tuple(self._by_key)
        # filter and argument of each declaration as closures, built once (``compiled``)
        self._compiled = {
            key: (_compiled(u.filter, envelopes), _compiled(u.argument, envelopes))
            for key, u in self._by_key.items()
        }
        # each ``PAST == CURRENT`` pair: the past side over the row, the current side
        # over ``{"current": action}``
        self._matches = {
            key: (
                tuple(_side(past, envelopes) for past, _ in u.matches),
                tuple(_side(now, envelopes) for _, now in u.matches),
            )
            for key, u in self._by_key.items()
            if u.matches
        }
        self._mirror: _Mirror | None = None
        self._lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------------

    def contributions(self, action: Any, decision: str, row: object) -> dict[str, Contribution]:
        """What a row holding ``action`` decided ``decision`` adds to each declaration.

        A declaration that cannot read the row gets an ``error`` naming ``row``; the
        usage then fails closed while the row is inside its window.
        """
        scope = {"action": action, "decision": decision}
        return {
            key: _contribute(*compiled, scope, row, self._matches.get(key, ((), ()))[0])
            for key, compiled in self._compiled.items()
        }

    def interpreted(self, action: Any, decision: str, row: object) -> dict[str, Contribution]:
        """``contributions`` computed by the reference interpreter (the tests compare)."""
        scope = {"action": action, "decision": decision}
        return {
            key: _contribute(
                _interpreted(usage.filter, self._envelopes),
                _interpreted(usage.argument, self._envelopes),
                scope,
                row,
                [_interpreted(past, self._envelopes) for past, _ in usage.matches],  # type: ignore[misc]
            )
            for key, usage in self._by_key.items()
        }

    def committed(
        self,
        row: ChangedRow,
        seq: int,
        contributions: Mapping[str, Contribution],
    ) -> None:
        """A transaction holding only ``row`` (written as change ``seq``) committed.

        When the memory copy stands just before that change it takes the row
        directly, so the next check need not read back its own write.
        """
        with self._lock:
            mirror = self._mirror
            if mirror is None or mirror.seq != seq - 1:
                return  # another change came between: the next check reads them all
            try:
                superseded = mirror.by_digest.get(row.action_digest)
                if superseded is not None:
                    mirror.forget(superseded)
                if row.at_us >= mirror.since_us:
                    mirror.hold(row, contributions)
                mirror.seq = seq
            except Exception:  # never fail a recorded decision: read it all again next time
                self._mirror = None

    # -- reading ---------------------------------------------------------------------------

    def compute(
        self,
        session: LedgerSession,
        now: datetime,
        exclude_digest: str,
        end_us: int | None = None,
        action: Any = None,
    ) -> dict[str, Any]:
        """``{name: value}`` for every declaration; the action being checked is left out.

        Windows start from ``now`` (the gate's clock) and end at ``end_us`` (by default
        ``now``); the gate passes the ledger's time, never earlier than ``now``, so a row
        another process stamped later than this clock reads still counts. ``action`` is
        the action being checked, which declarations with matches compare rows with.
        """
        if not self.usages:
            return {}
        now_us = to_us(now) if end_us is None else end_us
        starts = [to_us(window_start(u, now)) for u in self.usages]
        wanted = {key: self._current(key, action) for key in self._matches}
        with self._lock:
            try:
                mirror = self._sync(session, min(starts))
            except BaseException:
                self._mirror = None  # half-applied changes: load afresh next time
                raise
            skip = mirror.by_digest.get(exclude_digest)
            values = {
                usage.name: mirror.series[key].aggregate(
                    usage.aggregate, start, now_us, skip, usage.name, *wanted.get(key, ())
                )
                for usage, key, start in zip(self.usages, self._keys, starts, strict=True)
            }
            self._prune(mirror, min(starts))
        return values

    def _current(self, key: str, action: Any) -> tuple[str]:
        """The digest of the current action's side of ``key``'s matches; a fault fails closed."""
        name = self._by_key[key].name
        if action is None:
            raise LedgerError(f"usage `{name}` compares with the action being checked: none given")
        scope = {"current": action}
        try:
            return (match_digest([side(scope) for side in self._matches[key][1]]),)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise LedgerError(
                f"usage `{name}` cannot read the action being checked: {problem}"
            ) from None

    def _series(self) -> dict[str, Any]:
        return {k: Partitioned() if k in self._matches else Series() for k in self.keys}

    def _sync(self, session: LedgerSession, earliest_us: int) -> _Mirror:
        ledger_id, seq = session.state()
        mirror = self._mirror
        if (
            mirror is None
            or mirror.ledger_id != ledger_id
            or seq < mirror.seq  # the file was replaced by an older copy
            or earliest_us < mirror.since_us  # the clock went back past what is held
        ):
            mirror = _Mirror(ledger_id, seq, earliest_us, self._series())
            rows = session.current_rows(earliest_us)
            stored = session.contributions(self.keys, None, earliest_us)
            self._fill(session, mirror, rows, stored)
            self._mirror = mirror
        elif seq > mirror.seq:
            fresh = []
            for row in session.changes(mirror.seq):
                mirror.forget(row.id)
                if row.current and row.at_us >= mirror.since_us:
                    fresh.append(row)
            if fresh:
                stored = session.contributions(self.keys, [row.id for row in fresh])
                self._fill(session, mirror, fresh, stored)
            mirror.seq = seq
        return mirror

    def _fill(
        self,
        session: LedgerSession,
        mirror: _Mirror,
        rows: Sequence[ChangedRow],
        stored: dict[int, dict[str, Contribution]],
    ) -> None:
        """Hold ``rows``, computing (and storing) contributions the ledger lacks."""
        missing = [row for row in rows if self._incomplete(stored.get(row.id, {}))]
        if missing:
            texts = session.actions([row.id for row in missing])
            computed = []
            for row in missing:
                have = stored.setdefault(row.id, {})
                for key, contribution in self._backfill(row, texts.get(row.id)).items():
                    if key not in have:
                        have[key] = contribution
                        computed.append((key, row.id, row.at_us, contribution))
                    elif key in self._matches:  # the stored one lacks its match digest
                        have[key] = contribution
            session.add_contributions(computed)
        for row in rows:
            mirror.hold(row, stored[row.id])

    def _incomplete(self, stored: Mapping[str, Contribution]) -> bool:
        """Whether a row lacks a contribution, or the match digest of an admitted one."""
        if len(stored) < len(self.keys):
            return True
        return any(
            stored[key].passed and stored[key].match is None
            for key in self._matches
            if key in stored
        )

    def _backfill(self, row: ChangedRow, found: tuple[str, str] | None) -> dict[str, Contribution]:
        """Contributions of a row written without this pack's declarations."""
        try:
            if found is None:
                raise LedgerError("it vanished while being read")
            decision, text = found
            action = json.loads(text)
        except (LedgerError, ValueError, TypeError) as exc:
            problem = Contribution(False, None, f"cannot read ledger row {row.id}: {exc}")
            return dict.fromkeys(self.keys, problem)
        return self.contributions(action, decision, row.id)

    def _prune(self, mirror: _Mirror, earliest_us: int) -> None:
        """Forget rows older than every window, now and then, once enough have piled up."""
        mirror.checks += 1
        if mirror.checks % _PRUNE_EVERY or len(mirror.rows) < _PRUNE_AT:
            return
        old = [row_id for row_id, (_, at_us) in mirror.rows.items() if at_us < earliest_us]
        if len(old) * 4 < len(mirror.rows):
            return
        for row_id in old:
            mirror.forget(row_id)
        mirror.since_us = earliest_us
