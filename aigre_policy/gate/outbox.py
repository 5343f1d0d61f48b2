"""The notification outbox: rows in the ledger, delivered by a worker, at least once.

A decision that waits for people (``notify.waits``) gets one outbox row per webhook,
written in **the decision's own transaction** (so a notification exists exactly when the
decision does, and survives a crash before delivery), under a savepoint: a row that
cannot be written is reported in ``verdict.gate["notify"]`` and changes nothing else.
The worker claims due rows in a short transaction (a lease, so another process does not
deliver them at the same time), posts outside any transaction (a receiver that hangs
never holds the ledger's lock), then records the outcome: ``delivered``, a retry at
``backoff * 2**(attempts - 1)`` seconds (capped), or ``failed`` with the last error.
A process that dies with rows claimed leaves them to the next worker once the lease
passes; the receiver may then see a delivery twice, with the same ``Idempotency-Key``.
A row whose decision was released (it never took effect) is ``dropped``. Delivered and
dropped rows are deleted a week after they were settled; failed ones stay to be read.

Works on ``SqliteLedger`` and ``PostgresLedger``: the same table, created on first use.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aigre_policy.gate import notify as notify_mod
from aigre_policy.gate.clock import iso
from aigre_policy.gate.errors import GateError
from aigre_policy.gate.ledger import LedgerError
from aigre_policy.gate.notify import Notify, Webhook
from aigre_policy.gate.side_tables import SideTable
from aigre_policy.gate.store import RELEASED

logger = logging.getLogger("aigre_policy.gate.notify")

TABLE = "notification_outbox"
_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " id TEXT PRIMARY KEY,"  # the idempotency key every delivery of the row carries
    " webhook TEXT NOT NULL,"
    " decision_id TEXT NOT NULL,"
    " dedupe_key TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " created_us BIGINT NOT NULL,"
    " state TEXT NOT NULL,"  # pending, delivered, failed, dropped
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_us BIGINT NOT NULL,"
    " lease_us BIGINT NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " done_us BIGINT)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (state, next_us)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_dedupe ON {TABLE} (dedupe_key, created_us)",
)
LEASE_MARGIN_S = 30.0  # beyond the batch's timeouts, before another worker may take a row
BATCH = 10  # rows claimed at once: their lease covers each one's connect and read timeouts
RETRYABLE = frozenset({408, 425, 429})
KEEP_DONE_S = 7 * 86400  # delivered and dropped rows are deleted after a week
PRUNE_EVERY_S = 600.0


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    webhook: str
    decision_id: str
    body: str
    attempts: int


class _Sql(SideTable):
    """The outbox's statements in one store's dialect."""

    def __init__(self, store: Any):
        super().__init__(store, _DDL, "notification outbox")
        self.skip_locked = " FOR UPDATE SKIP LOCKED" if self.postgres else ""


class Notifier:
    """Queues notifications in the decision's transaction; delivers them from a worker."""

    def __init__(self, store: Any, notify: Notify, *, timer: Callable[[], float] = time.time):
        if store is None:
            raise GateError("notifications need a ledger: the outbox is kept in it")
        self.notify = notify
        self.webhooks = {w.name: w for w in notify.webhooks}
        self.timer = timer
        self._sql = _Sql(store)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._http: Any = None
        self._pruned_at = float("-inf")

    # -- in the decision's transaction -----------------------------------------------------

    def enqueue(self, session: Any, verdict: Any, at: Any) -> None:
        """Queue the verdict's notifications inside the decision's transaction; any fault
        is kept in ``verdict.gate["notify"]`` and rolled back to a savepoint, never raised."""
        if not notify_mod.waits(verdict, self.notify.on):
            return
        conn = session.connection
        try:
            with self._sql.savepoint(conn, "aigre_notify"):
                queued = self._queue(conn, verdict, iso(at))
        except Exception as exc:  # what the notification wrote is gone; the decision's stay
            logger.error("notification of %s not queued: %s", verdict.decision_id, exc)
            verdict.gate["notify"] = {"error": f"not queued: {type(exc).__name__}: {exc}"}
            return
        verdict.gate["notify"] = queued

    def _queue(self, conn: Any, verdict: Any, at: str) -> dict[str, Any]:
        sql = self._sql
        now_us = _us(self.timer())
        event = notify_mod.event_for(verdict, at, self.notify.inbox_url)
        groups = ",".join(sorted(event["approver_groups"] + event["escalate_to"]))
        queued, skipped = [], []
        for hook in self.notify.webhooks:
            key = f"{hook.name}|{verdict.action_digest}|{verdict.decision}|{groups}"
            after = self.notify.renotify_after
            if (
                after is not None
                and conn.execute(
                    sql.q(
                        f"SELECT 1 FROM {TABLE} WHERE dedupe_key = ? AND created_us >= ? LIMIT 1"
                    ),
                    (key, now_us - _us(after.total_seconds())),
                ).fetchone()
            ):
                skipped.append(hook.name)
                continue
            delivery = str(uuid.uuid4())
            body = notify_mod.render({**event, "id": delivery}, hook.format).decode()
            conn.execute(
                sql.q(
                    f"INSERT INTO {TABLE} (id, webhook, decision_id, dedupe_key, body,"
                    " created_us, state, next_us) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)"
                ),
                (delivery, hook.name, verdict.decision_id, key, body, now_us, now_us),
            )
            queued.append({"webhook": hook.name, "id": delivery})
        result: dict[str, Any] = {"queued": queued}
        if skipped:
            result["already_notified"] = skipped
        return result

    def committed(self) -> None:
        """A decision's transaction committed: the worker may have rows to deliver."""
        self._wake.set()

    # -- the worker ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background worker (once); a no-op unless ``background``."""
        with self._started:
            if self._thread is None and self.notify.background:
                self._thread = threading.Thread(target=self._run, name="aigre-notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.deliver_due()
            except Exception as exc:  # the ledger down: try again at the next poll
                logger.warning("notification outbox unavailable: %s", exc)
                busy = 0
            if not busy:
                self._wake.wait(self.notify.poll_seconds)
                self._wake.clear()

    def deliver_due(self) -> int:
        """Claim the rows due now, deliver each, record how it went; how many were tried."""
        claimed = self._claim()
        for row in claimed:
            if self._stop.is_set():
                break
            self._finish(row, self._deliver(row))
        return len(claimed)

    def _claim(self) -> list[Claimed]:
        sql = self._sql
        hooks = list(self.webhooks)
        now_us = _us(self.timer())
        lease = BATCH * 2 * max(w.timeout for w in self.webhooks.values()) + LEASE_MARGIN_S
        marks = ",".join("?" * len(hooks))
        with sql.transaction(locked=not sql.ready) as conn:
            conn.execute(
                sql.q(
                    f"UPDATE {TABLE} SET state = 'dropped', done_us = ?,"
                    " last_error = 'the decision never took effect' WHERE state = 'pending'"
                    " AND EXISTS (SELECT 1 FROM actions a WHERE a.decision_id ="
                    f" {TABLE}.decision_id AND a.outcome = ?)"
                ),
                (now_us, RELEASED),
            )
            if now_us / 1e6 - self._pruned_at >= PRUNE_EVERY_S:  # failed rows stay to be read
                self._pruned_at = now_us / 1e6
                conn.execute(
                    sql.q(
                        f"DELETE FROM {TABLE} WHERE state IN ('delivered', 'dropped')"
                        " AND done_us < ?"
                    ),
                    (now_us - _us(KEEP_DONE_S),),
                )
            rows = conn.execute(
                sql.q(
                    f"UPDATE {TABLE} SET lease_us = ?, attempts = attempts + 1 WHERE id IN"
                    f" (SELECT id FROM {TABLE} WHERE state = 'pending' AND next_us <= ?"
                    f" AND lease_us <= ? AND webhook IN ({marks}) ORDER BY created_us"
                    f" LIMIT ?{sql.skip_locked})"
                    " RETURNING id, webhook, decision_id, body, attempts"
                ),
                (now_us + _us(lease), now_us, now_us, *hooks, BATCH),
            ).fetchall()
        return [Claimed(*row) for row in rows]

    def _deliver(self, row: Claimed) -> tuple[str, float | None]:
        """POST one row: ``("", None)`` on a 2xx, else the error and a retry delay
        (``None``: do not retry)."""
        import requests  # a core dependency; loaded only when something is delivered

        hook: Webhook = self.webhooks[row.webhook]
        body = row.body.encode()
        headers = notify_mod.signed(hook, row.id, body, int(self.timer()))
        if self._http is None:
            self._http = requests.Session()
        try:
            answer = self._http.post(
                hook.url,
                data=body,
                headers=headers,
                timeout=(hook.timeout, hook.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"[:500], self._delay(row.attempts)
        if 200 <= answer.status_code < 300:
            return "", None
        error = f"HTTP {answer.status_code}: {answer.text[:200]}"
        if answer.status_code >= 500 or answer.status_code in RETRYABLE:
            delay = self._delay(row.attempts)
            after = answer.headers.get("Retry-After", "")
            if answer.status_code == 429 and after.isdigit():
                delay = min(max(delay, float(after)), self.notify.max_backoff)
            return error, delay
        return error, None  # another 4xx: the receiver refuses it, retrying will not help

    def _delay(self, attempts: int) -> float:
        base = min(self.notify.backoff * 2 ** max(0, attempts - 1), self.notify.max_backoff)
        return base * random.uniform(0.9, 1.1)  # spread retries of many rows apart

    def _finish(self, row: Claimed, outcome: tuple[str, float | None]) -> None:
        error, delay = outcome
        now_us = _us(self.timer())
        if not error:
            state, next_us = "delivered", 0
        elif delay is None or row.attempts >= self.notify.max_attempts:
            state, next_us = "failed", 0
            logger.error("notification %s to %s failed: %s", row.id, row.webhook, error)
        else:
            state, next_us = "pending", now_us + _us(delay)
        sql = self._sql
        try:
            with sql.transaction() as conn:
                conn.execute(
                    sql.q(
                        f"UPDATE {TABLE} SET state = ?, next_us = ?, lease_us = 0,"
                        " last_error = ?, done_us = ? WHERE id = ?"
                    ),
                    (
                        state,
                        next_us,
                        error or None,
                        now_us if state != "pending" else None,
                        row.id,
                    ),
                )
        except LedgerError as exc:  # the lease runs out and the row is delivered again
            logger.warning("outcome of notification %s not recorded: %s", row.id, exc)

    def rows(self) -> list[dict[str, Any]]:
        """Every outbox row, oldest first (for ``inspect`` and tests)."""
        names = ("id", "webhook", "decision_id", "state", "attempts", "last_error", "body")
        with self._sql.transaction(locked=not self._sql.ready) as conn:
            found = conn.execute(
                f"SELECT {', '.join(names)} FROM {TABLE} ORDER BY created_us, id"
            ).fetchall()
        return [dict(zip(names, row, strict=True)) for row in found]

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._http is not None:
            self._http.close()
