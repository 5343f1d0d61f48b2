"""The usage ledger: past actions with their decisions and outcomes, and recorded approvals.

The gate computes a pack's ``usage`` values from it and keeps approvals in it, so
every process that shares a ledger sees the same history. ``LedgerStore`` is the
small protocol a store implements; ``SqliteLedger`` is the embedded default
(WAL journal, a busy timeout, one write transaction per decision so several
processes can write at once). Every fault a store meets is raised as
``LedgerError``; the gate turns it into a fail-closed verdict.

Rows are never edited in place except to mark them superseded or to add an
outcome: checking the same action again (same canonical digest) inserts a new
row and marks the older one superseded, so a re-check after an approval is
counted once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from aigre_policy.gate.errors import GateError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL UNIQUE,
    action_digest TEXT NOT NULL,
    action TEXT NOT NULL,
    decision TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    current INTEGER NOT NULL DEFAULT 1,
    outcome TEXT,
    outcome_at_us INTEGER
);
-- covers the usage window query, so it never reads the stored action JSON
CREATE INDEX IF NOT EXISTS actions_window
    ON actions (at_us, decision_id, decision, action_digest) WHERE current = 1;
CREATE INDEX IF NOT EXISTS actions_digest ON actions (action_digest);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action_digest TEXT NOT NULL,
    approver TEXT NOT NULL,
    approver_group TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    UNIQUE (action_digest, approver, approver_group)
);
"""


class LedgerError(Exception):
    """The ledger could not be read or written: unreachable, locked, corrupt, full."""


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One decided action as the ledger keeps it."""

    decision_id: str
    action_digest: str
    action: dict[str, Any]
    decision: str
    at_us: int


@dataclass(frozen=True, slots=True)
class WindowRow:
    """A row inside a usage window, without its action (fetched only when not cached).

    Stores may return plain ``(id, decision_id, decision, at_us)`` tuples instead.
    """

    id: int
    decision_id: str
    decision: str
    at_us: int


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """An approval held for one action, bound to the action's canonical digest."""

    action_digest: str
    by: str
    group: str
    at_us: int
    note: str = ""


class LedgerSession(Protocol):
    """Reads and writes inside one transaction; all of it lands, or none of it."""

    def window(self, start_us: int, end_us: int, exclude_digest: str) -> list[WindowRow]:
        """Current rows with ``start_us <= at_us <= end_us``, other than ``exclude_digest``."""
        ...

    def actions(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]: ...

    def record(self, row: LedgerRow) -> None: ...

    def set_outcome(self, decision_id: str, outcome: str, at_us: int) -> bool: ...

    def approvals(self, action_digest: str) -> list[ApprovalRecord]: ...

    def add_approval(self, approval: ApprovalRecord) -> bool: ...

    def count(self) -> int: ...


class LedgerStore(Protocol):
    """A ledger backend: ``with store.session() as s: ...`` is one transaction."""

    name: str

    def session(self) -> AbstractContextManager[LedgerSession]: ...

    def close(self) -> None: ...


class SqliteLedger:
    """The embedded ledger: one SQLite file shared by every process that opens it.

    ``timeout`` is how long a writer waits for another's transaction (SQLite's
    busy timeout) before the check fails closed with ``database is locked``.
    The connection opens lazily, so a gate over an unreachable or corrupt file
    still starts and fails closed on each check until the file is repaired.
    """

    def __init__(self, path: str | Path, *, timeout: float = 5.0):
        self.path = str(path)
        self.name = f"sqlite:///{self.path}"
        self.timeout = timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"{self.path} holds ledger schema {version}; this version reads up to "
                    f"{SCHEMA_VERSION}"
                )
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextmanager
    def session(self) -> Iterator[_SqliteSession]:
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._drop()
                raise LedgerError(_describe(self.path, exc)) from exc
            try:
                yield _SqliteSession(conn, self.path)
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._drop()
                if isinstance(exc, sqlite3.Error):
                    raise LedgerError(_describe(self.path, exc)) from exc
                raise

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __repr__(self) -> str:
        return f"SqliteLedger({self.path!r})"


class _SqliteSession:
    def __init__(self, conn: sqlite3.Connection, path: str):
        self._conn = conn
        self._path = path

    def window(self, start_us: int, end_us: int, exclude_digest: str) -> list[Any]:
        rows = self._conn.execute(
            "SELECT id, decision_id, decision, at_us FROM actions WHERE current = 1"
            " AND at_us >= ? AND at_us <= ? AND action_digest != ?",
            (start_us, end_us, exclude_digest),
        ).fetchall()
        return rows  # plain tuples in WindowRow's field order: no object per row

    def actions(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            batch = list(ids[start : start + 500])
            marks = ",".join("?" * len(batch))
            for row_id, text in self._conn.execute(
                f"SELECT id, action FROM actions WHERE id IN ({marks})", batch
            ):
                try:
                    found[row_id] = json.loads(text)
                except ValueError as exc:
                    raise LedgerError(f"{self._path}: row {row_id} holds no JSON: {exc}") from exc
        return found

    def record(self, row: LedgerRow) -> None:
        self._conn.execute(
            "UPDATE actions SET current = 0 WHERE action_digest = ? AND current = 1",
            (row.action_digest,),
        )
        self._conn.execute(
            "INSERT INTO actions (decision_id, action_digest, action, decision, at_us)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                row.decision_id,
                row.action_digest,
                json.dumps(row.action, sort_keys=True, separators=(",", ":")),
                row.decision,
                row.at_us,
            ),
        )

    def set_outcome(self, decision_id: str, outcome: str, at_us: int) -> bool:
        cursor = self._conn.execute(
            "UPDATE actions SET outcome = ?, outcome_at_us = ? WHERE decision_id = ?",
            (outcome, at_us, decision_id),
        )
        return cursor.rowcount == 1

    def approvals(self, action_digest: str) -> list[ApprovalRecord]:
        rows = self._conn.execute(
            "SELECT action_digest, approver, approver_group, at_us, note FROM approvals"
            " WHERE action_digest = ? ORDER BY id",
            (action_digest,),
        ).fetchall()
        return [ApprovalRecord(*row) for row in rows]

    def add_approval(self, approval: ApprovalRecord) -> bool:
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO approvals (action_digest, approver, approver_group, at_us, note)"
            " VALUES (?, ?, ?, ?, ?)",
            (approval.action_digest, approval.by, approval.group, approval.at_us, approval.note),
        )
        return cursor.rowcount == 1

    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM actions").fetchone()[0]

    def outcome(self, decision_id: str) -> tuple[str | None, str | None]:
        row = self._conn.execute(
            "SELECT decision, outcome FROM actions WHERE decision_id = ?", (decision_id,)
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)


def _describe(path: str, exc: sqlite3.Error) -> str:
    return f"{path}: {type(exc).__name__}: {exc}"


def open_ledger(ledger: str | Path | LedgerStore | None) -> LedgerStore | None:
    """A store from a URL (``sqlite:///aigre.db``, ``sqlite:////abs/path.db?timeout=2``),
    a file path, or a store object; ``None`` stays ``None``."""
    if ledger is None or not isinstance(ledger, str | Path):
        return ledger
    text = str(ledger)
    if "://" not in text:
        return SqliteLedger(text)
    parts = urlsplit(text)
    if parts.scheme != "sqlite":
        raise GateError(f"unsupported ledger URL scheme `{parts.scheme}` in {text!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise GateError(f"ledger URL {text!r} names no file")
    options = parse_qs(parts.query)
    unknown = sorted(set(options) - {"timeout"})
    if unknown:
        raise GateError(f"unknown ledger URL option `{unknown[0]}` in {text!r}")
    timeout = float(options["timeout"][-1]) if "timeout" in options else 5.0
    return SqliteLedger(path, timeout=timeout)
