"""The ledger session of a gate configured without a ledger: no history, nothing kept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aigre_policy.gate.ledger import (
    ApprovalRecord,
    ChangedRow,
    Contribution,
    LedgerError,
    LedgerRow,
)


class NoLedger:
    """The session of a gate without a ledger: no history, no approvals, nothing kept."""

    def state(self) -> tuple[str, int]:
        raise LedgerError("no ledger is configured, and the pack declares usage values")

    def current_rows(self, start_us: int) -> list[ChangedRow]:
        return []

    def changes(self, after_seq: int) -> list[ChangedRow]:
        return []

    def latest_at(self) -> int:
        return 0

    def contributions(
        self, keys: Sequence[str], row_ids: Sequence[int] | None, start_us: int = 0
    ) -> dict[int, dict[str, Contribution]]:
        return {}

    def add_contributions(self, rows: Sequence[tuple[str, int, int, Contribution]]) -> None:
        return None

    def actions(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        return {}

    def record(self, row: LedgerRow, contributions: Mapping[str, Contribution]) -> None:
        return None  # nothing kept

    def set_outcome(self, decision_id: str, outcome: str, at_us: int) -> bool:
        return False

    def release(self, decision_id: str, at_us: int) -> int | None:
        return None

    def approvals(self, action_digest: str) -> list[ApprovalRecord]:
        return []

    def add_approval(self, approval: ApprovalRecord) -> bool:
        raise LedgerError("no ledger is configured to keep approvals")

    def use_approvals(self, used: Sequence[ApprovalRecord], decision_id: str, at_us: int) -> None:
        return None  # no ledger holds approvals to use up

    def count(self) -> int:
        return 0
