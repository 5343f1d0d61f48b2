"""The ledger store protocol and the records it holds, shared by every store.

``SqliteLedger`` (``ledger.py``) and ``PostgresLedger`` (``postgres.py``) implement
``LedgerStore``; the gate reads and writes through ``LedgerSession`` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

RELEASED = "released"  # the outcome of a row whose decision never took effect


class LedgerError(Exception):
    """The ledger could not be read or written: unreachable, locked, corrupt, full."""


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One decided action as the ledger keeps it.

    ``action_json`` is the action's canonical JSON when the caller already has it
    (the gate does: it took the digest of it); otherwise it is encoded here.
    """

    decision_id: str
    action_digest: str
    action: dict[str, Any]
    decision: str
    at_us: int
    action_json: str = ""


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one row adds to one usage declaration.

    ``passed``: the declaration's filter admits the row; ``value``: its argument
    (1 for ``count``); ``error``: why neither could be computed (the usage then
    fails closed while the row is inside its window).
    """

    passed: bool
    value: int | float | None = None
    error: str | None = None
    # for a declaration whose filter compares past and current actions: the digest of
    # the row's side, held in memory only (a reader computes it again from the row)
    match: str | None = None


@dataclass(frozen=True, slots=True)
class ChangedRow:
    """A row added or superseded after a given ``seq``; ``current`` is false once superseded."""

    id: int
    action_digest: str
    at_us: int
    current: bool


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """An approval held for one action, bound to the action's canonical digest."""

    action_digest: str
    by: str
    group: str
    at_us: int
    note: str = ""
    reusable: bool = False  # never used up by an enforced decision
    used_by: str | None = None  # the enforced decision that used it up
    id: int | None = None  # the store's key of this grant (a renewal is a new grant)


class LedgerSession(Protocol):
    """Reads and writes inside one transaction; all of it lands, or none of it."""

    def state(self) -> tuple[str, int]:
        """``(ledger_id, seq)``: which ledger this is and its change counter."""
        ...

    def current_rows(self, start_us: int) -> list[ChangedRow]:
        """Current rows with ``at_us >= start_us``."""
        ...

    def changes(self, after_seq: int) -> list[ChangedRow]:
        """Rows added or superseded by transactions after ``after_seq``."""
        ...

    def latest_at(self) -> int:
        """The latest ``at_us`` of a current row (0 for an empty ledger): the ledger's time."""
        ...

    def contributions(
        self, keys: Sequence[str], row_ids: Sequence[int] | None, start_us: int = 0
    ) -> dict[int, dict[str, Contribution]]:
        """Stored contributions for ``keys``: of ``row_ids``, or of every current row
        with ``at_us >= start_us`` when ``row_ids`` is ``None``."""
        ...

    def add_contributions(self, rows: Sequence[tuple[str, int, int, Contribution]]) -> None:
        """Store ``(key, row_id, at_us, contribution)`` computed by a reader."""
        ...

    def actions(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """``{id: (decision, action JSON)}``."""
        ...

    def record(self, row: LedgerRow, contributions: Mapping[str, Contribution]) -> tuple[int, int]:
        """Keep ``row`` (superseding older rows of its digest); returns ``(row id, seq)``."""
        ...

    def set_outcome(self, decision_id: str, outcome: str, at_us: int) -> bool: ...

    def release(self, decision_id: str, at_us: int) -> int | None:
        """Take back a row whose decision never took effect; returns the change's ``seq``
        (``None`` when no such row is held)."""
        ...

    def approvals(self, action_digest: str) -> list[ApprovalRecord]: ...

    def add_approval(self, approval: ApprovalRecord) -> bool:
        """Keep ``approval``; the same approver and group approving the same action again
        replaces the earlier one (a fresh time, unused)."""
        ...

    def use_approvals(self, used: Sequence[ApprovalRecord], decision_id: str, at_us: int) -> None:
        """Mark approvals used up by the enforced decision ``decision_id``; raises
        ``LedgerError`` if another decision used one of them first."""
        ...

    def count(self) -> int: ...


class LedgerStore(Protocol):
    """A ledger backend: ``with store.session() as s: ...`` is one transaction."""

    name: str

    def session(self) -> AbstractContextManager[LedgerSession]: ...

    def close(self) -> None: ...


def loaded_contribution(
    row_id: int, key: str, passed: int, value: Any, error: str | None
) -> Contribution:
    """A stored contribution as read back; one a reader cannot trust becomes an error."""
    if error is not None:
        return Contribution(False, None, str(error))
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            value = None
    if passed not in (0, 1) or (passed and not isinstance(value, int | float)):
        return Contribution(False, None, f"ledger row {row_id} holds an unreadable contribution")
    return Contribution(bool(passed), value if passed else None)
