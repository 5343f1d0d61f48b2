"""Held decisions: ``require_approval`` verdicts waiting for people, kept in the ledger.

Every process on one ledger (the replicas of a fleet behind a load balancer) sees the
same list, so an action held by one is listed, approved or rejected on any other.
A held decision is written in **the decision's own transaction** (``keep``, called by
the recorder beside the ledger row, under a savepoint: a row that cannot be written
is reported in ``verdict.gate["inbox"]`` and changes nothing else), so a decision is
held exactly when it is recorded.

A held decision is live while its ledger row is current: checking the same action
again supersedes the row (and so the entry, replaced by the new verdict if that one
waits too), and a row released because its decision never took effect takes the entry
with it. Reading through the row needs no second write on every check. The approvals
it lists are the ledger's approvals of the action recorded after the decision (by id:
the ledger's lock orders them), so an approval made on any process, through any door,
shows; a rejection is kept on the entry (the ledger holds no rejections), written in
the transaction that logs it.

Works on ``SqliteLedger`` and ``PostgresLedger``: the same table, created on first use.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aigre_policy.gate.approvals import Approval
from aigre_policy.gate.clock import from_us
from aigre_policy.gate.side_tables import SideTable
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.verdict import Issuer, Verdict

logger = logging.getLogger("aigre_policy.gate")

TABLE = "held_decisions"
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " decision_id TEXT PRIMARY KEY,"
    " action_digest TEXT NOT NULL,"
    " row_id BIGINT NOT NULL,"  # the decision's ledger row: the order decisions came in
    " held_us BIGINT NOT NULL,"  # the decision's time in the ledger
    " requested_by TEXT NOT NULL,"
    " record TEXT NOT NULL,"  # the verdict as JSON: what approvers see and answer
    " approvals_after BIGINT NOT NULL,"  # approvals with a larger id came after it
    " rejection TEXT)",  # the rejection's log entry as JSON, once turned down
    f"CREATE INDEX IF NOT EXISTS {TABLE}_digest ON {TABLE} (action_digest)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_order ON {TABLE} (row_id)",
)
MAX_HELD = 10_000  # the oldest live entries are dropped past this; the ledger keeps approvals
PRUNE_EVERY = 100  # holds between two prunes of settled and surplus entries


@dataclass(frozen=True)
class HeldDecision:
    """A held decision as read back: the verdict, who asked, when, and what came since."""

    verdict: GateVerdict
    requested_by: str
    at: float  # seconds since the epoch, the ledger's time of the decision
    approvals: tuple[dict[str, Any], ...] = ()  # ``Approval.to_dict()`` of each since
    rejection: dict[str, Any] | None = None


class _HeldVerdict(Verdict):
    """The pack's verdict read back from its recorded document (records rendered)."""

    __slots__ = ()

    def __init__(self, document: dict[str, Any], pack: dict[str, str], input_document: Any):
        super().__init__(document["decision"], [], Issuer(pack), input_document)
        self._set_outcome(
            bool(document["fail_closed"]),
            list(document["errors"]),
            list(document["approvers"]),
            list(document["escalate_to"]),
            bool(document["default_applied"]),
        )
        self._fired = list(document["fired"])
        self._warnings = list(document["warnings"])

    @property
    def rule_ids(self) -> list[str]:
        return [str(record.get("id")) for record in self.fired]


def _recorded(verdict: GateVerdict) -> str:
    """What is kept of a verdict: enough to show it and to answer it (``Gate.approve``)."""
    base = verdict.pack_verdict
    assert base is not None
    record = {
        "decision_id": verdict.decision_id,
        "decision": verdict.decision,
        "fail_closed": verdict.fail_closed,
        "errors": verdict.errors,
        "approvers": list(verdict.approvers),
        "pack": verdict.pack,
        "action_digest": verdict.action_digest,
        "action": verdict.action,
        "gate": verdict.gate,
        "elapsed_us": verdict.elapsed_us,
        "pack_verdict": {
            "decision": base.decision,
            "fail_closed": base.fail_closed,
            "errors": base.errors,
            "approvers": list(base.approvers),
            "escalate_to": list(base.escalate_to),
            "default_applied": base.default_applied,
            "fired": base.fired,
            "warnings": base.warnings,
        },
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def _restored(text: str) -> GateVerdict:
    """The verdict of a held decision (its context and usage are in the decision log)."""
    record = json.loads(text)
    document = {"action": record["action"], "context": {}, "usage": {}}
    return GateVerdict.recorded(
        record["decision_id"],
        _HeldVerdict(record["pack_verdict"], record["pack"], document),
        record["decision"],
        pack=record["pack"],
        input_document=document,
        action_digest=record["action_digest"],
        gate=record["gate"],
        fail_closed=record["fail_closed"],
        errors=record["errors"],
        elapsed_us=record["elapsed_us"],
        approvers=record["approvers"],
    )


class _Sql(SideTable):
    """The held decisions' statements in one store's dialect."""

    def __init__(self, store: Any):
        super().__init__(store, _DDL, "held decisions")
        self.current = "a.current" if self.postgres else "a.current = 1"
        self.for_update = " FOR UPDATE OF h" if self.postgres else ""


_LIVE = (
    "SELECT h.decision_id, h.requested_by, h.held_us, h.record, h.rejection"
    f" FROM {TABLE} h JOIN actions a ON a.decision_id = h.decision_id WHERE {{current}}"
)
_SINCE = (
    "SELECT h.decision_id, p.action_digest, p.approver, p.approver_group, p.at_us, p.note,"
    f" p.reusable FROM {TABLE} h JOIN actions a ON a.decision_id = h.decision_id"
    " JOIN approvals p ON p.action_digest = h.action_digest AND p.id > h.approvals_after"
    " WHERE {current}"
)


class HeldDecisions:
    """The decisions waiting for people, in the ledger every gate on it shares."""

    def __init__(self, store: Any, *, limit: int = MAX_HELD):
        self._sql = _Sql(store)
        self.limit = limit
        self._holds = 0
        self._count_lock = threading.Lock()

    # -- in the decision's transaction -----------------------------------------------------

    def keep(self, session: Any, draft: Any, verdict: GateVerdict, row_id: int) -> None:
        """Hold ``verdict`` if it waits for people; a fault is kept in
        ``verdict.gate["inbox"]`` and rolled back to a savepoint, never raised."""
        if (
            verdict.decision != "require_approval"
            or verdict.fail_closed
            or verdict.pack_verdict is None
        ):
            return
        conn = session.connection
        try:
            with self._sql.savepoint(conn, "aigre_held"):
                self._hold(conn, draft, verdict, row_id)
        except Exception as exc:  # what the hold wrote is gone; the decision's rows stay
            logger.error("decision %s not held for approvers: %s", verdict.decision_id, exc)
            verdict.gate["inbox"] = {"error": f"not held: {type(exc).__name__}: {exc}"}

    def _hold(self, conn: Any, draft: Any, verdict: GateVerdict, row_id: int) -> None:
        q = self._sql.q
        digest = verdict.action_digest
        (after,) = conn.execute(
            q("SELECT coalesce(max(id), 0) FROM approvals WHERE action_digest = ?"), (digest,)
        ).fetchone()
        actor = verdict.gate.get("actor") if isinstance(verdict.gate, dict) else None
        requested_by = draft.requested_by or (actor or {}).get("id") or "anonymous"
        conn.execute(q(f"DELETE FROM {TABLE} WHERE action_digest = ?"), (digest,))
        conn.execute(
            q(
                f"INSERT INTO {TABLE} (decision_id, action_digest, row_id, held_us,"
                " requested_by, record, approvals_after) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            (
                verdict.decision_id,
                digest,
                row_id,
                draft.at_us,
                str(requested_by),
                _recorded(verdict),
                after,
            ),
        )
        with self._count_lock:
            self._holds += 1
            due = self._holds % PRUNE_EVERY == 0
        if due:
            self._prune(conn)

    def _prune(self, conn: Any) -> None:
        """Drop settled entries (their rows no longer current) and the oldest past the limit."""
        sql = self._sql
        conn.execute(
            f"DELETE FROM {TABLE} WHERE decision_id IN (SELECT h.decision_id FROM {TABLE} h"
            " LEFT JOIN actions a ON a.decision_id = h.decision_id"
            f" WHERE a.id IS NULL OR NOT ({sql.current}))"
        )
        skip = "LIMIT -1 OFFSET" if sql.mark == "?" else "OFFSET"
        conn.execute(
            sql.q(
                f"DELETE FROM {TABLE} WHERE decision_id IN (SELECT decision_id FROM {TABLE}"
                f" ORDER BY row_id DESC {skip} ?)"
            ),
            (self.limit,),
        )

    # -- read and answered by any process --------------------------------------------------

    def listed(self) -> list[HeldDecision]:
        """Every live held decision, oldest first (at most ``limit``)."""
        return self._read(None)

    def get(self, decision_id: str) -> HeldDecision | None:
        found = self._read(decision_id)
        return found[0] if found else None

    def _read(self, decision_id: str | None) -> list[HeldDecision]:
        sql = self._sql
        which = " AND h.decision_id = ?" if decision_id is not None else ""
        args = (decision_id,) if decision_id is not None else ()
        with sql.transaction() as conn:
            rows = conn.execute(
                sql.q(_LIVE.format(current=sql.current) + which + " ORDER BY h.row_id LIMIT ?"),
                (*args, self.limit),
            ).fetchall()
            since = conn.execute(
                sql.q(_SINCE.format(current=sql.current) + which + " ORDER BY p.id"), args
            ).fetchall()
        given: dict[str, list[dict[str, Any]]] = {}
        for held_id, digest, by, group, at_us, note, reusable in since:
            approval = Approval(digest, by, group, from_us(at_us), note, bool(reusable))
            given.setdefault(held_id, []).append(approval.to_dict())
        return [
            HeldDecision(
                _restored(record),
                requested_by,
                held_us / 1_000_000,
                tuple(given.get(held_id, ())),
                json.loads(rejection) if rejection is not None else None,
            )
            for held_id, requested_by, held_us, record, rejection in rows
        ]

    def reject(
        self, decision_id: str, answer: Callable[[GateVerdict], dict[str, Any]]
    ) -> dict[str, Any]:
        """Mark a live held decision rejected with what ``answer(verdict)`` returns (it
        logs the rejection: ``Gate.reject``), in one transaction: when ``answer`` raises
        nothing is marked. ``KeyError`` when no such decision is held."""
        sql = self._sql
        with sql.transaction() as conn:
            row = conn.execute(
                sql.q(
                    _LIVE.format(current=sql.current) + " AND h.decision_id = ?" + sql.for_update
                ),
                (decision_id,),
            ).fetchone()
            if row is None:
                raise KeyError(decision_id)
            rejection = answer(_restored(row[3]))
            conn.execute(
                sql.q(f"UPDATE {TABLE} SET rejection = ? WHERE decision_id = ?"),
                (json.dumps(rejection, ensure_ascii=False, default=str), decision_id),
            )
        return rejection


__all__ = ["MAX_HELD", "HeldDecision", "HeldDecisions"]
