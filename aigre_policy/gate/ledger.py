"""The usage ledger: past actions with their decisions and outcomes, and recorded approvals.

The gate computes a pack's ``usage`` values from it and keeps approvals in it, so
every process that shares a ledger sees the same history. ``LedgerStore`` is the
small protocol a store implements (``store.py``); ``SqliteLedger`` is the embedded
default (WAL journal, a busy timeout, one write transaction per decision so several
processes can write at once), ``PostgresLedger`` (``postgres.py``, opened from a
``postgresql://`` URL) the one shared by hosts. Every fault a store meets is raised
as ``LedgerError``; the gate turns it into a fail-closed verdict.

Rows are never edited in place except to mark them superseded, released or to
add an outcome: checking the same action again (same canonical digest) inserts a
new row and marks the older one superseded, so a re-check after an approval is
counted once. A row whose decision never took effect (the log could not take it
after the ledger committed) is *released*: no longer current, its outcome
``released``, and the row it superseded current again.

The ledger keeps its own time: ``latest_at`` is the latest time a current row was
recorded at. The gate reads it under the write lock and records each decision at
the later of its own clock and that, so times in the ledger never go backwards,
whatever the clocks of the processes writing it.

An approval is used up by the enforced decision it let through: the use is kept in
``approval_uses`` (in that decision's transaction), so no second enforcement of the
same action counts it; approvals marked ``reusable`` are never used up.

Each row also keeps its *contributions*: per usage declaration (named by a key
that digests its argument and filter), whether the filter admits the row and the
argument's value, computed once when the row is written (or, for a declaration
the writer did not know, by the first reader). A change counter (``seq``) is
bumped by every transaction that adds or supersedes rows and stamped on the rows
it touched, so a reader holding the history in memory fetches only what changed.

Deferred imports: the PostgreSQL driver (the `postgres` extra) loads only for a
postgresql:// ledger.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aigre_policy.gate.errors import GateError
from aigre_policy.gate.store import (
    RELEASED,
    ApprovalRecord,
    ChangedRow,
    Contribution,
    LedgerError,
    LedgerRow,
    LedgerSession,
    LedgerStore,
    loaded_contribution,
)

# the store protocol and its records live in ``store.py``; importing them from here goes on
__all__ = [
    "RELEASED",
    "ApprovalRecord",
    "ChangedRow",
    "Contribution",
    "LedgerError",
    "LedgerRow",
    "LedgerSession",
    "LedgerStore",
    "SqliteLedger",
    "open_ledger",
]

SCHEMA_VERSION = 3

_TABLES = """
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL UNIQUE,
    action_digest TEXT NOT NULL,
    action TEXT NOT NULL,
    decision TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    current INTEGER NOT NULL DEFAULT 1,
    outcome TEXT,
    outcome_at_us INTEGER,
    seq INTEGER NOT NULL DEFAULT 0
);
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

# schema 2: contributions, the change counter, and the indexes reading them
_VERSION_2 = """
DROP INDEX IF EXISTS actions_window;
CREATE INDEX actions_window ON actions (at_us) WHERE current = 1;
CREATE INDEX IF NOT EXISTS actions_seq ON actions (seq);
CREATE TABLE IF NOT EXISTS contributions (
    usage_key TEXT NOT NULL,
    row_id INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    value,
    error TEXT,
    PRIMARY KEY (usage_key, row_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contributions_window ON contributions (usage_key, at_us);
CREATE TABLE IF NOT EXISTS ledger_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ledger_id TEXT NOT NULL,
    seq INTEGER NOT NULL
);
"""

# created on first use, outside the schema versions: only logs with a signing key need it
_CHECKPOINTS = """
CREATE TABLE IF NOT EXISTS checkpoints (
    log_id TEXT NOT NULL,
    entries INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (log_id, entries, line)
) WITHOUT ROWID
"""

# approvals used up by enforced decisions, and approvals marked reusable: added to a ledger
# of any schema version when first opened (both statements are idempotent)
_APPROVAL_USES = """
CREATE TABLE IF NOT EXISTS approval_uses (
    approval_id INTEGER PRIMARY KEY,
    action_digest TEXT NOT NULL,
    approver TEXT NOT NULL,
    approver_group TEXT NOT NULL,
    approval_at_us INTEGER NOT NULL,
    decision_id TEXT NOT NULL,
    used_at_us INTEGER NOT NULL
)
"""

# schema 3: contributions keyed by row first, so a decision's contributions land on one
# page beside each other and no second index is written per check (the window is read
# through ``actions_window``); about a fifth less to write at each commit
_VERSION_3 = """
CREATE TABLE contributions_by_row (
    row_id INTEGER NOT NULL,
    usage_key TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    value,
    error TEXT,
    PRIMARY KEY (row_id, usage_key)
) WITHOUT ROWID;
INSERT INTO contributions_by_row (row_id, usage_key, at_us, passed, value, error)
    SELECT row_id, usage_key, at_us, passed, value, error FROM contributions;
DROP TABLE contributions;
ALTER TABLE contributions_by_row RENAME TO contributions;
"""

SYNCHRONOUS = ("normal", "full")


class SqliteLedger:
    """The embedded ledger: one SQLite file shared by every process that opens it.

    ``timeout`` is how long a writer waits for another's transaction (SQLite's
    busy timeout) before the check fails closed with ``database is locked``.
    ``synchronous`` is ``normal`` (WAL commits reach the disk at checkpoints: a
    power cut may lose the last decisions, never corrupts the file) or ``full``
    (every commit is synced). Each thread gets its own connection, opened lazily,
    so a gate over an unreachable or corrupt file still starts and fails closed
    on each check until the file is repaired. ``:memory:`` is one connection
    shared under a lock (each connection would otherwise see its own database).
    """

    def __init__(self, path: str | Path, *, timeout: float = 5.0, synchronous: str = "normal"):
        if synchronous not in SYNCHRONOUS:
            raise GateError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}")
        self.path = str(path)
        self.name = f"sqlite:///{self.path}"
        self.timeout = timeout
        self.synchronous = synchronous
        self._memory = self.path == ":memory:"
        self._lock = threading.RLock() if self._memory else None
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []
        self._open_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (the only one for ``:memory:``), opened on first use."""
        local = self._shared() if self._memory else self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            _use_wal(conn, self.timeout)
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            self._migrate(conn)
            _approval_schema(conn)
        except BaseException:
            conn.close()
            raise
        local.conn, local.pid = conn, os.getpid()  # a child after fork opens its own
        with self._open_lock:
            self._open.append(conn)
        return conn

    def _shared(self) -> Any:
        return self  # ``:memory:``: the store itself holds the one connection

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} holds ledger schema {version}; this version reads up to "
                f"{SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another may have won
            if version < 2:
                _run(conn, _TABLES)
                if version == 1:  # rows written before contributions: readers compute them
                    conn.execute("ALTER TABLE actions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
                    conn.execute("UPDATE actions SET seq = 1")
                _run(conn, _VERSION_2)
                conn.execute(
                    "INSERT OR IGNORE INTO ledger_state (id, ledger_id, seq)"
                    " SELECT 1, ?, coalesce(max(seq), 0) FROM actions",
                    (uuid.uuid4().hex,),
                )
            if version < 3:
                _run(conn, _VERSION_3)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def session(self) -> Iterator[_SqliteSession]:
        with self._lock if self._lock is not None else nullcontext():
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
        """Forget this thread's connection after a fault; the next session reopens."""
        local = self._shared() if self._memory else self._local
        conn = getattr(local, "conn", None)
        local.conn = None
        if conn is not None:
            with self._open_lock:
                if conn in self._open:
                    self._open.remove(conn)
            with suppress(sqlite3.Error):
                conn.close()

    def close(self) -> None:
        """Close every thread's connection (those opened by this process)."""
        with self._open_lock:
            conns, self._open = self._open, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
        if self._memory:
            self.conn = None

    def __repr__(self) -> str:
        return f"SqliteLedger({self.path!r})"

    # -- signed decision-log checkpoints: a copy kept apart from the log's own file --------

    def add_checkpoint(self, log_id: str, entries: int, line: str) -> None:
        """Keep a signed checkpoint line of the log ``log_id`` (``gate.checkpoint``)."""
        with self.session() as session:
            session._conn.execute(_CHECKPOINTS)
            session._conn.execute(
                "INSERT OR IGNORE INTO checkpoints (log_id, entries, line) VALUES (?, ?, ?)",
                (log_id, entries, line),
            )

    def checkpoints(self, log_id: str) -> list[str]:
        """The checkpoint lines kept for the log ``log_id``, fewest entries first."""
        with self.session() as session:
            if not session._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'"
            ).fetchone():
                return []
            rows = session._conn.execute(
                "SELECT line FROM checkpoints WHERE log_id = ? ORDER BY entries, line", (log_id,)
            ).fetchall()
        return [row[0] for row in rows]


def _use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode, waiting out other connections doing the same.

    Switching a fresh file's journal mode needs an exclusive lock, and SQLite
    answers ``database is locked`` at once there instead of calling the busy
    handler: threads or hosts opening a new ledger together would fail closed.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return  # the mode is stored in the file: one switch serves every connection
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _approval_schema(conn: sqlite3.Connection) -> None:
    """The approval-use table and the ``reusable`` flag, added once to any ledger."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(approvals)")}
    tables = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'approval_uses'"
    ).fetchone()[0]
    if "reusable" in columns and tables:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(approvals)")}
        if "reusable" not in columns:  # another process may have added it meanwhile
            conn.execute("ALTER TABLE approvals ADD COLUMN reusable INTEGER NOT NULL DEFAULT 0")
        conn.execute(_APPROVAL_USES)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _run(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


_MAX_INTEGER = 2**63 - 1


def _stored(value: Any) -> Any:
    """A contribution value as SQLite keeps it: integers beyond 64 bits as text."""
    if isinstance(value, int) and not -_MAX_INTEGER <= value <= _MAX_INTEGER:
        return str(value)
    return value


_CHUNK = 500  # ids per IN (...) list, well under SQLite's parameter limit

_APPROVALS = (
    "SELECT a.action_digest, a.approver, a.approver_group, a.at_us, a.note, a.reusable,"
    " u.decision_id, a.id FROM approvals a LEFT JOIN approval_uses u"
    " ON u.approval_id = a.id WHERE a.action_digest = ? ORDER BY a.id"
)
# the state, the ledger's time and an action's approvals in one statement: one row per
# approval, or one row of NULL approval columns when none is held
_SNAPSHOT_AND_APPROVALS = (
    "SELECT s.ledger_id, s.seq, (SELECT max(at_us) FROM actions WHERE current = 1),"
    " a.action_digest, a.approver, a.approver_group, a.at_us, a.note, a.reusable,"
    " u.decision_id, a.id FROM ledger_state s"
    " LEFT JOIN approvals a ON a.action_digest = ?"
    " LEFT JOIN approval_uses u ON u.approval_id = a.id"
    " WHERE s.id = 1 ORDER BY a.id"
)


_ONE_STATEMENT = 64  # contributions written by one INSERT (6 parameters each)


def _contributions_insert(count: int) -> str:
    """One statement for a row's ``count`` contributions (cached by the connection)."""
    values = ",".join(["(?, ?, ?, ?, ?, ?)"] * count)
    return (
        "INSERT OR REPLACE INTO contributions (usage_key, row_id, at_us, passed, value, error)"
        f" VALUES {values}"
    )


class _SqliteSession:
    def __init__(self, conn: sqlite3.Connection, path: str):
        self._conn = conn
        self._path = path
        self._read: tuple[str, int, int] | None = None  # state and time, until a write

    @property
    def connection(self) -> sqlite3.Connection:
        """The transaction's connection, for tables kept beside the ledger's (the outbox)."""
        return self._conn

    def _snapshot(self) -> tuple[str, int, int]:
        """``(ledger_id, seq, latest_at)`` in one statement, kept until this session writes."""
        if self._read is None:
            row = self._conn.execute(
                "SELECT ledger_id, seq, (SELECT max(at_us) FROM actions WHERE current = 1)"
                " FROM ledger_state WHERE id = 1"
            ).fetchone()
            if row is None:
                raise LedgerError(f"{self._path}: the ledger has lost its state row")
            self._read = (row[0], row[1], row[2] or 0)
        return self._read

    def state(self) -> tuple[str, int]:
        ledger_id, seq, _ = self._snapshot()
        return ledger_id, seq

    def current_rows(self, start_us: int) -> list[ChangedRow]:
        return [
            ChangedRow(row_id, digest, at_us, True)
            for row_id, digest, at_us in self._conn.execute(
                "SELECT id, action_digest, at_us FROM actions WHERE current = 1 AND at_us >= ?",
                (start_us,),
            )
        ]

    def changes(self, after_seq: int) -> list[ChangedRow]:
        return [
            ChangedRow(row_id, digest, at_us, bool(current))
            for row_id, digest, at_us, current in self._conn.execute(
                "SELECT id, action_digest, at_us, current FROM actions WHERE seq > ?",
                (after_seq,),
            )
        ]

    def latest_at(self) -> int:
        return self._snapshot()[2]

    def contributions(
        self, keys: Sequence[str], row_ids: Sequence[int] | None, start_us: int = 0
    ) -> dict[int, dict[str, Contribution]]:
        found: dict[int, dict[str, Contribution]] = {}
        rows: Any
        if row_ids is None:  # the window's current rows, then each one's contributions
            rows = (
                (row_id, key, *rest)
                for key in keys
                for row_id, *rest in self._conn.execute(
                    "SELECT c.row_id, c.passed, c.value, c.error FROM actions a"
                    " JOIN contributions c ON c.row_id = a.id AND c.usage_key = ?"
                    " WHERE a.current = 1 AND a.at_us >= ?",
                    (key, start_us),
                )
            )
        else:
            key_marks = ",".join("?" * len(keys))
            rows = (
                row
                for start in range(0, len(row_ids), _CHUNK)
                for batch in [list(row_ids[start : start + _CHUNK])]
                for row in self._conn.execute(
                    "SELECT row_id, usage_key, passed, value, error FROM contributions"
                    f" WHERE usage_key IN ({key_marks})"
                    f" AND row_id IN ({','.join('?' * len(batch))})",
                    (*keys, *batch),
                )
            )
        for row_id, key, passed, value, error in rows:
            found.setdefault(row_id, {})[key] = loaded_contribution(
                row_id, key, passed, value, error
            )
        return found

    def add_contributions(self, rows: Sequence[tuple[str, int, int, Contribution]]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO contributions (usage_key, row_id, at_us, passed, value, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(k, i, at, int(c.passed), _stored(c.value), c.error) for k, i, at, c in rows],
        )

    def actions(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        found: dict[int, tuple[str, str]] = {}
        for start in range(0, len(ids), _CHUNK):
            batch = list(ids[start : start + _CHUNK])
            marks = ",".join("?" * len(batch))
            for row_id, decision, text in self._conn.execute(
                f"SELECT id, decision, action FROM actions WHERE id IN ({marks})", batch
            ):
                found[row_id] = (decision, text)
        return found

    def record(self, row: LedgerRow, contributions: Mapping[str, Contribution]) -> tuple[int, int]:
        conn = self._conn
        self._read = None
        (seq,) = conn.execute(
            "UPDATE ledger_state SET seq = seq + 1 WHERE id = 1 RETURNING seq"
        ).fetchone()
        conn.execute(
            "UPDATE actions SET current = 0, seq = ? WHERE action_digest = ? AND current = 1",
            (seq, row.action_digest),
        )
        text = row.action_json or json.dumps(row.action, sort_keys=True, separators=(",", ":"))
        row_id = conn.execute(
            "INSERT INTO actions (decision_id, action_digest, action, decision, at_us, seq)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (row.decision_id, row.action_digest, text, row.decision, row.at_us, seq),
        ).lastrowid
        assert row_id is not None
        if len(contributions) > _ONE_STATEMENT:
            self.add_contributions([(k, row_id, row.at_us, c) for k, c in contributions.items()])
        elif contributions:  # one statement for the row's contributions
            conn.execute(
                _contributions_insert(len(contributions)),
                [
                    field
                    for key, c in contributions.items()
                    for field in (key, row_id, row.at_us, int(c.passed), _stored(c.value), c.error)
                ],
            )
        return row_id, seq

    def set_outcome(self, decision_id: str, outcome: str, at_us: int) -> bool:
        # usage filters read the action and its decision, never the outcome: no seq bump
        cursor = self._conn.execute(
            "UPDATE actions SET outcome = ?, outcome_at_us = ?"
            " WHERE decision_id = ? AND outcome IS NOT ?",
            (outcome, at_us, decision_id, RELEASED),
        )
        return cursor.rowcount == 1

    def release(self, decision_id: str, at_us: int) -> int | None:
        conn = self._conn
        found = conn.execute(
            "SELECT id, action_digest, current, seq FROM actions"
            " WHERE decision_id = ? AND outcome IS NOT ?",
            (decision_id, RELEASED),
        ).fetchone()
        if found is None:
            return None
        row_id, action_digest, current, written_seq = found
        self._read = None
        (seq,) = conn.execute(
            "UPDATE ledger_state SET seq = seq + 1 WHERE id = 1 RETURNING seq"
        ).fetchone()
        conn.execute(
            "UPDATE actions SET current = 0, outcome = ?, outcome_at_us = ?, seq = ? WHERE id = ?",
            (RELEASED, at_us, seq, row_id),
        )
        if current:  # the row it superseded (stamped by the same change) counts again
            conn.execute(
                "UPDATE actions SET current = 1, seq = ? WHERE id = ("
                " SELECT max(id) FROM actions WHERE action_digest = ? AND id < ?"
                " AND seq = ? AND current = 0 AND outcome IS NOT ?)",
                (seq, action_digest, row_id, written_seq, RELEASED),
            )
        if conn.execute(  # approvals the decision used up are not used after all
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'approval_uses'"
        ).fetchone():
            conn.execute("DELETE FROM approval_uses WHERE decision_id = ?", (decision_id,))
        return seq

    def approvals(self, action_digest: str) -> list[ApprovalRecord]:
        if self._read is None:  # a check's first read: the snapshot comes in the same statement
            rows = self._conn.execute(_SNAPSHOT_AND_APPROVALS, (action_digest,)).fetchall()
            if not rows:
                raise LedgerError(f"{self._path}: the ledger has lost its state row")
            ledger_id, seq, latest = rows[0][:3]
            self._read = (ledger_id, seq, latest or 0)
            held = [row[3:] for row in rows if row[-1] is not None]
        else:
            held = self._conn.execute(_APPROVALS, (action_digest,)).fetchall()
        return [
            ApprovalRecord(digest, by, group, at_us, note, bool(reusable), used_by, row_id)
            for digest, by, group, at_us, note, reusable, used_by, row_id in held
        ]

    def add_approval(self, approval: ApprovalRecord) -> bool:
        # approving again renews: a new grant (new id, fresh time) that no use applies to;
        # the uses of the earlier one stay in approval_uses
        self._conn.execute(
            "DELETE FROM approvals WHERE action_digest = ? AND approver = ? AND approver_group = ?",
            (approval.action_digest, approval.by, approval.group),
        )
        cursor = self._conn.execute(
            "INSERT INTO approvals (action_digest, approver, approver_group, at_us, note, reusable)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                approval.action_digest,
                approval.by,
                approval.group,
                approval.at_us,
                approval.note,
                int(approval.reusable),
            ),
        )
        return cursor.rowcount == 1

    def use_approvals(self, used: Sequence[ApprovalRecord], decision_id: str, at_us: int) -> None:
        for approval in used:
            if approval.id is None:
                raise LedgerError(f"{self._path}: an approval to use up has no ledger id")
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO approval_uses (approval_id, action_digest, approver,"
                " approver_group, approval_at_us, decision_id, used_at_us)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    approval.id,
                    approval.action_digest,
                    approval.by,
                    approval.group,
                    approval.at_us,
                    decision_id,
                    at_us,
                ),
            )
            if cursor.rowcount != 1:
                raise LedgerError(
                    f"{self._path}: the approval of `{approval.by}` ({approval.group}) was"
                    " already used up by another decision"
                )

    def count(self) -> int:
        """Decisions held: every row but released ones."""
        return self._conn.execute(
            "SELECT count(*) FROM actions WHERE outcome IS NOT ?", (RELEASED,)
        ).fetchone()[0]

    def outcome(self, decision_id: str) -> tuple[str | None, str | None]:
        row = self._conn.execute(
            "SELECT decision, outcome FROM actions WHERE decision_id = ?", (decision_id,)
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)


def _describe(path: str, exc: sqlite3.Error) -> str:
    return f"{path}: {type(exc).__name__}: {exc}"


def open_ledger(ledger: str | Path | LedgerStore | None) -> LedgerStore | None:
    """A store from a URL (``sqlite:///aigre.db``, ``sqlite:////abs/path.db?timeout=2``,
    ``?synchronous=full``, ``postgresql://user@host:5432/db?pool_max=10``), a file path,
    or a store object; ``None`` stays ``None``."""
    if ledger is None or not isinstance(ledger, str | Path):
        return ledger
    text = str(ledger)
    if "://" not in text:
        return SqliteLedger(text)
    parts = urlsplit(text)
    if parts.scheme in ("postgresql", "postgres"):
        return _postgres(text)
    if parts.scheme != "sqlite":
        raise GateError(f"unsupported ledger URL scheme `{parts.scheme}` in {text!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise GateError(f"ledger URL {text!r} names no file")
    options = parse_qs(parts.query)
    unknown = sorted(set(options) - {"timeout", "synchronous"})
    if unknown:
        raise GateError(f"unknown ledger URL option `{unknown[0]}` in {text!r}")
    timeout = float(options["timeout"][-1]) if "timeout" in options else 5.0
    synchronous = options["synchronous"][-1].lower() if "synchronous" in options else "normal"
    return SqliteLedger(path, timeout=timeout, synchronous=synchronous)


def _postgres(url: str) -> LedgerStore:
    """A ``PostgresLedger``: psycopg is imported only when such a URL is opened."""
    try:
        from aigre_policy.gate import postgres
    except ImportError as exc:
        raise GateError(
            f'a postgresql:// ledger needs psycopg ({exc}): pip install "aigre-policy[postgres]"'
        ) from None
    return postgres.from_url(url)
