"""The PostgreSQL ledger: one ledger shared by gates on many hosts.

``PostgresLedger`` is the same store as ``SqliteLedger`` (same protocol, same rows,
same meaning), kept in a PostgreSQL database that every gate of a fleet opens with
``postgresql://user@host:port/db``. It holds the usage ledger, the approval store
and the copies of signed log checkpoints.

**One writer at a time, across hosts.** SQLite's ``BEGIN IMMEDIATE`` takes the
file's write lock before the first read. Here each decision's transaction starts
by taking a *transaction-scoped advisory lock* (``pg_advisory_xact_lock``) on one
key, then reads the ledger's time, the usage and the approvals, and writes the
row; the lock is released by ``COMMIT`` or ``ROLLBACK`` (or the server, when the
connection dies). Why a lock and not ``SERIALIZABLE`` with retries: a session is
a context manager around the gate's own code (evaluating the pack, resolving
approvals), which runs once and cannot be replayed by the store; a serialization
failure at ``COMMIT`` would only let the gate fail closed, so under contention
most checks would be refused instead of waiting their turn. The lock makes the
budget exact with no retry, at the price of one decision at a time per ledger,
as SQLite does. The transaction is ``READ COMMITTED`` on purpose: each statement
after the lock sees every commit made before it (a ``REPEATABLE READ`` snapshot
would be taken by the lock statement itself, before the lock was granted).

Every fault (server down, connection lost, lock or pool timeout, a constraint)
is raised as ``LedgerError``, so the gate fails closed.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import psycopg
import psycopg_pool

from aigre_policy.gate.errors import GateError
from aigre_policy.gate.store import (
    RELEASED,
    ApprovalRecord,
    ChangedRow,
    Contribution,
    LedgerError,
    LedgerRow,
    loaded_contribution,
)

SCHEMA_VERSION = 1  # of the PostgreSQL tables, numbered apart from SQLite's

# the advisory lock every gate of a ledger takes: a fixed class key, unlikely to be another
# application's, and the hash of the ledger's schema, so ledgers kept in separate schemas
# of one database (``options=-c search_path=...``) do not wait for each other (two schemas
# whose hashes collide only share a lock)
LOCK_CLASS = 0x2B2B_5AE7

OPTIONS = ("timeout", "pool_min", "pool_max", "pool_timeout")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_state (
    id integer PRIMARY KEY CHECK (id = 1),
    ledger_id text NOT NULL,
    seq bigint NOT NULL,
    schema_version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id text NOT NULL UNIQUE,
    action_digest text NOT NULL,
    action text NOT NULL,
    decision text NOT NULL,
    at_us bigint NOT NULL,
    current boolean NOT NULL DEFAULT true,
    outcome text,
    outcome_at_us bigint,
    seq bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS actions_digest ON actions (action_digest);
CREATE INDEX IF NOT EXISTS actions_window ON actions (at_us) WHERE current;
CREATE INDEX IF NOT EXISTS actions_seq ON actions (seq);
CREATE TABLE IF NOT EXISTS contributions (
    row_id bigint NOT NULL,
    usage_key text NOT NULL,
    at_us bigint NOT NULL,
    passed smallint NOT NULL,
    value text,
    error text,
    PRIMARY KEY (row_id, usage_key)
);
CREATE TABLE IF NOT EXISTS approvals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_digest text NOT NULL,
    approver text NOT NULL,
    approver_group text NOT NULL,
    at_us bigint NOT NULL,
    note text NOT NULL DEFAULT '',
    reusable boolean NOT NULL DEFAULT false,
    UNIQUE (action_digest, approver, approver_group)
);
CREATE TABLE IF NOT EXISTS approval_uses (
    approval_id bigint PRIMARY KEY,
    action_digest text NOT NULL,
    approver text NOT NULL,
    approver_group text NOT NULL,
    approval_at_us bigint NOT NULL,
    decision_id text NOT NULL,
    used_at_us bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    log_id text NOT NULL,
    entries bigint NOT NULL,
    line text NOT NULL,
    PRIMARY KEY (log_id, entries, line)
)
"""

_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"

_APPROVALS = (
    "SELECT a.action_digest, a.approver, a.approver_group, a.at_us, a.note, a.reusable,"
    " u.decision_id, a.id FROM approvals a LEFT JOIN approval_uses u"
    " ON u.approval_id = a.id WHERE a.action_digest = %s ORDER BY a.id"
)
# the state, the ledger's time and an action's approvals in one round trip
_SNAPSHOT_AND_APPROVALS = (
    "SELECT s.ledger_id, s.seq, (SELECT max(at_us) FROM actions WHERE current),"
    " a.action_digest, a.approver, a.approver_group, a.at_us, a.note, a.reusable,"
    " u.decision_id, a.id FROM ledger_state s"
    " LEFT JOIN approvals a ON a.action_digest = %s"
    " LEFT JOIN approval_uses u ON u.approval_id = a.id"
    " WHERE s.id = 1 ORDER BY a.id"
)
_SNAPSHOT = (
    "SELECT ledger_id, seq, (SELECT max(at_us) FROM actions WHERE current)"
    " FROM ledger_state WHERE id = 1"
)
# the change counter, the superseded row, the new row and its contributions: one round trip
_RECORD = """
WITH bumped AS (UPDATE ledger_state SET seq = seq + 1 WHERE id = 1 RETURNING seq),
superseded AS (
    UPDATE actions SET current = false, seq = (SELECT seq FROM bumped)
    WHERE action_digest = %(digest)s AND current
),
added AS (
    INSERT INTO actions (decision_id, action_digest, action, decision, at_us, seq)
    SELECT %(decision_id)s, %(digest)s, %(action)s, %(decision)s, %(at)s, seq FROM bumped
    RETURNING id, seq
),
kept AS (
    INSERT INTO contributions (row_id, usage_key, at_us, passed, value, error)
    SELECT added.id, c.k, %(at)s, c.p, c.v, c.e FROM added,
        unnest(%(keys)s::text[], %(passed)s::smallint[], %(values)s::text[], %(errors)s::text[])
        AS c(k, p, v, e)
)
SELECT id, seq FROM added
"""
_ADD_CONTRIBUTIONS = """
INSERT INTO contributions (row_id, usage_key, at_us, passed, value, error)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::smallint[], %s::text[],
                     %s::text[])
ON CONFLICT (row_id, usage_key) DO UPDATE SET at_us = EXCLUDED.at_us,
    passed = EXCLUDED.passed, value = EXCLUDED.value, error = EXCLUDED.error
"""


def _stored(value: Any) -> str | None:
    """A contribution value as text that reads back as the same number (ints of any size,
    floats by their shortest exact ``repr``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _number(text: Any) -> Any:
    """The number a stored contribution holds (anything else: ``loaded_contribution``
    refuses it)."""
    if not isinstance(text, str):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PostgresLedger:
    """A ledger in a PostgreSQL database shared by every gate that opens it.

    ``conninfo`` is a libpq URL or ``key=value`` string. ``timeout`` (s) is how long a
    decision waits for another's transaction (the advisory lock's ``lock_timeout``)
    before it fails closed; ``pool_min``/``pool_max`` bound this process's connections;
    ``pool_timeout`` (s) is how long a check waits for a free connection (a server that
    is down, a pool exhausted) before it fails closed. The pool is opened on the first
    session of each process (a child after ``fork`` opens its own), so a gate over a
    server that is down still starts and fails closed on each check until it is back.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        timeout: float = 5.0,
        pool_min: int = 1,
        pool_max: int = 10,
        pool_timeout: float = 5.0,
        name: str | None = None,
    ):
        if not 0 <= pool_min <= pool_max or pool_max < 1:
            raise GateError("the pool needs 0 <= pool_min <= pool_max and pool_max >= 1")
        if timeout <= 0 or pool_timeout <= 0:
            raise GateError("timeout and pool_timeout must be positive")
        self.conninfo = conninfo
        self.name = name or _masked(conninfo)
        self.timeout = timeout
        self.pool_min = pool_min
        self.pool_max = pool_max
        self.pool_timeout = pool_timeout
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pid: int | None = None
        self._ready = False
        self._guard = threading.Lock()
        self._inherited: list[Any] = []

    def __repr__(self) -> str:
        return f"PostgresLedger({self.name!r})"

    # -- connections -------------------------------------------------------------------------

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Every new connection: how long to wait for the lock, and a bound on how long a
        transaction may sit idle holding it (a hung process must not stop the fleet)."""
        lock_ms = max(1, int(self.timeout * 1000))
        idle_ms = max(30_000, 6 * lock_ms)
        conn.execute(f"SET lock_timeout = {lock_ms}")
        conn.execute(f"SET idle_in_transaction_session_timeout = {idle_ms}")
        conn.commit()

    def _current_pool(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
        with self._guard:
            if self._pool is None or self._pid != os.getpid():
                if self._pool is not None:
                    # after fork the parent's pool is left alone, never closed or collected
                    # here: that would end the parent's connections, whose sockets it shares
                    self._inherited.append(self._pool)
                self._pool = psycopg_pool.ConnectionPool(
                    self.conninfo,
                    min_size=self.pool_min,
                    max_size=self.pool_max,
                    timeout=self.pool_timeout,
                    configure=self._configure,
                    open=False,
                    name=f"aigre-ledger-{os.getpid()}",
                )
                self._pool.open(wait=False)
                self._pid = os.getpid()
                self._ready = False
            return self._pool

    def _locked(
        self, pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]]
    ) -> psycopg.Connection[Any]:
        """A connection inside a transaction that holds the ledger's write lock.

        A connection the server dropped while it sat in the pool (a restart) fails at
        its first statement; nothing has been read or written yet, so the pool's idle
        connections are checked and one fresh connection is tried.
        """
        for attempt in (1, 2):
            conn = pool.getconn()
            try:
                if not self._ready:
                    self._migrate(conn)
                conn.execute(_LOCK, (LOCK_CLASS,))
                return conn
            except psycopg.OperationalError:
                broken = conn.broken
                _give_back(pool, conn)
                if not broken or attempt == 2:
                    raise
                pool.check()
            except BaseException:
                _give_back(pool, conn)
                raise
        raise AssertionError("unreachable")

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create or upgrade the tables, under the ledger's lock; once per process."""
        conn.execute(_LOCK, (LOCK_CLASS,))
        version = 0
        if conn.execute("SELECT to_regclass('ledger_state')").fetchone() != (None,):
            row = conn.execute("SELECT schema_version FROM ledger_state WHERE id = 1").fetchone()
            version = row[0] if row else 0
        if version > SCHEMA_VERSION:
            conn.rollback()
            raise LedgerError(
                f"{self.name} holds ledger schema {version}; this version reads up to "
                f"{SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            for statement in _SCHEMA.split(";"):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO ledger_state (id, ledger_id, seq, schema_version)"
                " VALUES (1, %s, 0, %s) ON CONFLICT (id) DO UPDATE"
                " SET schema_version = EXCLUDED.schema_version",
                (uuid.uuid4().hex, SCHEMA_VERSION),
            )
        conn.commit()
        self._ready = True

    @contextmanager
    def session(self, *, lock: bool = True) -> Iterator[_PostgresSession]:
        """One transaction holding the ledger's write lock (``lock=False``: a plain one,
        for what needs no lock, such as keeping a checkpoint line)."""
        try:
            pool = self._current_pool()
            if lock:
                conn = self._locked(pool)
            else:
                conn = pool.getconn()
                if not self._ready:
                    try:
                        self._migrate(conn)
                    except BaseException:
                        _give_back(pool, conn)
                        raise
        except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            raise LedgerError(f"{self.name}: {type(exc).__name__}: {_one_line(exc)}") from exc
        try:
            yield _PostgresSession(conn, self.name)
            conn.commit()
        except BaseException as exc:
            _give_back(pool, conn)
            if isinstance(exc, psycopg.Error):
                raise LedgerError(f"{self.name}: {type(exc).__name__}: {_one_line(exc)}") from exc
            raise
        else:
            pool.putconn(conn)

    def close(self) -> None:
        """Close this process's connections."""
        with self._guard:
            pool, self._pool = self._pool, None
            if pool is not None and self._pid == os.getpid():
                with suppress(Exception):
                    pool.close(timeout=1.0)

    # -- signed decision-log checkpoints: a copy kept apart from the log's own file --------

    def add_checkpoint(self, log_id: str, entries: int, line: str) -> None:
        """Keep a signed checkpoint line of the log ``log_id`` (``gate.checkpoint``)."""
        with self.session(lock=False) as session:
            session._conn.execute(
                "INSERT INTO checkpoints (log_id, entries, line) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (log_id, entries, line),
            )

    def checkpoints(self, log_id: str) -> list[str]:
        """The checkpoint lines kept for the log ``log_id``, fewest entries first."""
        with self.session(lock=False) as session:
            rows = session._conn.execute(
                "SELECT line FROM checkpoints WHERE log_id = %s ORDER BY entries, line",
                (log_id,),
            ).fetchall()
        return [row[0] for row in rows]


def _give_back(
    pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]], conn: psycopg.Connection[Any]
) -> None:
    """Roll back and return a connection after a fault; the pool drops a broken one."""
    if not conn.broken:
        try:
            conn.rollback()
        except psycopg.Error:
            with suppress(psycopg.Error):
                conn.close()
    with suppress(Exception):
        pool.putconn(conn)


def _masked(conninfo: str) -> str:
    """The URL without its password, to name the ledger in messages."""
    parts = urlsplit(conninfo)
    if not parts.scheme or parts.password is None:
        return conninfo
    user, _, host = parts.netloc.rpartition("@")
    return conninfo.replace(parts.netloc, f"{user.partition(':')[0]}:***@{host}", 1)


def from_url(url: str) -> PostgresLedger:
    """``postgresql://user:password@host:port/db?timeout=5&pool_max=10&sslmode=require``:
    the ledger's own options are taken out, the rest goes to libpq as it is."""
    base, _, query = url.partition("?")  # kept as text: urlunsplit drops the // of ``:///db``
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        (ours.__setitem__(key, value) if key in OPTIONS else theirs.append((key, value)))
    try:
        timeout = float(ours.get("timeout", 5.0))
        pool_min = int(ours.get("pool_min", 1))
        pool_max = int(ours.get("pool_max", 10))
        pool_timeout = float(ours.get("pool_timeout", 5.0))
    except ValueError as exc:
        raise GateError(f"ledger URL {_masked(url)!r}: {exc}") from None
    # libpq reads %20 as a space, not +
    conninfo = f"{base}?{urlencode(theirs, quote_via=quote)}" if theirs else base
    try:
        psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise GateError(f"ledger URL {_masked(url)!r}: {_one_line(exc)}") from None
    return PostgresLedger(
        conninfo,
        timeout=timeout,
        pool_min=pool_min,
        pool_max=pool_max,
        pool_timeout=pool_timeout,
        name=_masked(url),
    )


class _PostgresSession:
    """``LedgerSession`` over one connection inside one locked transaction."""

    def __init__(self, conn: psycopg.Connection[Any], name: str):
        self._conn = conn
        self._name = name
        self._read: tuple[str, int, int] | None = None  # state and time, until a write

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The transaction's connection, for tables kept beside the ledger's (the outbox)."""
        return self._conn

    def _snapshot(self) -> tuple[str, int, int]:
        if self._read is None:
            row = self._conn.execute(_SNAPSHOT).fetchone()
            if row is None:
                raise LedgerError(f"{self._name}: the ledger has lost its state row")
            self._read = (row[0], row[1], row[2] or 0)
        return self._read

    def state(self) -> tuple[str, int]:
        ledger_id, seq, _ = self._snapshot()
        return ledger_id, seq

    def latest_at(self) -> int:
        return self._snapshot()[2]

    def current_rows(self, start_us: int) -> list[ChangedRow]:
        return [
            ChangedRow(row_id, digest, at_us, True)
            for row_id, digest, at_us in self._conn.execute(
                "SELECT id, action_digest, at_us FROM actions WHERE current AND at_us >= %s",
                (start_us,),
            )
        ]

    def changes(self, after_seq: int) -> list[ChangedRow]:
        return [
            ChangedRow(row_id, digest, at_us, current)
            for row_id, digest, at_us, current in self._conn.execute(
                "SELECT id, action_digest, at_us, current FROM actions WHERE seq > %s",
                (after_seq,),
            )
        ]

    def contributions(
        self, keys: Sequence[str], row_ids: Sequence[int] | None, start_us: int = 0
    ) -> dict[int, dict[str, Contribution]]:
        if row_ids is None:  # the window's current rows, with each one's contributions
            rows = self._conn.execute(
                "SELECT c.row_id, c.usage_key, c.passed, c.value, c.error FROM actions a"
                " JOIN contributions c ON c.row_id = a.id"
                " WHERE a.current AND a.at_us >= %s AND c.usage_key = ANY(%s::text[])",
                (start_us, list(keys)),
            )
        else:
            rows = self._conn.execute(
                "SELECT row_id, usage_key, passed, value, error FROM contributions"
                " WHERE usage_key = ANY(%s::text[]) AND row_id = ANY(%s::bigint[])",
                (list(keys), list(row_ids)),
            )
        found: dict[int, dict[str, Contribution]] = {}
        for row_id, key, passed, value, error in rows:
            found.setdefault(row_id, {})[key] = loaded_contribution(
                row_id, key, passed, _number(value), error
            )
        return found

    def add_contributions(self, rows: Sequence[tuple[str, int, int, Contribution]]) -> None:
        if not rows:
            return
        self._conn.execute(
            _ADD_CONTRIBUTIONS,
            (
                [i for _, i, _, _ in rows],
                [k for k, _, _, _ in rows],
                [at for _, _, at, _ in rows],
                [int(c.passed) for *_, c in rows],
                [_stored(c.value) for *_, c in rows],
                [c.error for *_, c in rows],
            ),
        )

    def actions(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        return {
            row_id: (decision, text)
            for row_id, decision, text in self._conn.execute(
                "SELECT id, decision, action FROM actions WHERE id = ANY(%s::bigint[])",
                (list(ids),),
            )
        }

    def record(self, row: LedgerRow, contributions: Mapping[str, Contribution]) -> tuple[int, int]:
        self._read = None
        text = row.action_json or json.dumps(row.action, sort_keys=True, separators=(",", ":"))
        found = self._conn.execute(
            _RECORD,
            {
                "digest": row.action_digest,
                "decision_id": row.decision_id,
                "action": text,
                "decision": row.decision,
                "at": row.at_us,
                "keys": list(contributions),
                "passed": [int(c.passed) for c in contributions.values()],
                "values": [_stored(c.value) for c in contributions.values()],
                "errors": [c.error for c in contributions.values()],
            },
        ).fetchone()
        if found is None:
            raise LedgerError(f"{self._name}: the ledger has lost its state row")
        return found[0], found[1]

    def set_outcome(self, decision_id: str, outcome: str, at_us: int) -> bool:
        # usage filters read the action and its decision, never the outcome: no seq bump
        cursor = self._conn.execute(
            "UPDATE actions SET outcome = %s, outcome_at_us = %s"
            " WHERE decision_id = %s AND outcome IS DISTINCT FROM %s",
            (outcome, at_us, decision_id, RELEASED),
        )
        return cursor.rowcount == 1

    def release(self, decision_id: str, at_us: int) -> int | None:
        conn = self._conn
        found = conn.execute(
            "SELECT id, action_digest, current, seq FROM actions"
            " WHERE decision_id = %s AND outcome IS DISTINCT FROM %s",
            (decision_id, RELEASED),
        ).fetchone()
        if found is None:
            return None
        row_id, action_digest, current, written_seq = found
        self._read = None
        (seq,) = conn.execute(
            "UPDATE ledger_state SET seq = seq + 1 WHERE id = 1 RETURNING seq"
        ).fetchone() or (None,)
        if seq is None:
            raise LedgerError(f"{self._name}: the ledger has lost its state row")
        conn.execute(
            "UPDATE actions SET current = false, outcome = %s, outcome_at_us = %s, seq = %s"
            " WHERE id = %s",
            (RELEASED, at_us, seq, row_id),
        )
        if current:  # the row it superseded (stamped by the same change) counts again
            conn.execute(
                "UPDATE actions SET current = true, seq = %s WHERE id = ("
                " SELECT max(id) FROM actions WHERE action_digest = %s AND id < %s"
                " AND seq = %s AND NOT current AND outcome IS DISTINCT FROM %s)",
                (seq, action_digest, row_id, written_seq, RELEASED),
            )
        # approvals the decision used up are not used after all
        conn.execute("DELETE FROM approval_uses WHERE decision_id = %s", (decision_id,))
        return int(seq)

    def approvals(self, action_digest: str) -> list[ApprovalRecord]:
        if self._read is None:  # a check's first read: the snapshot comes in the same statement
            rows = self._conn.execute(_SNAPSHOT_AND_APPROVALS, (action_digest,)).fetchall()
            if not rows:
                raise LedgerError(f"{self._name}: the ledger has lost its state row")
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
        # approving again renews: a new grant (new id, fresh time) that no use applies to
        self._conn.execute(
            "DELETE FROM approvals WHERE action_digest = %s AND approver = %s"
            " AND approver_group = %s",
            (approval.action_digest, approval.by, approval.group),
        )
        cursor = self._conn.execute(
            "INSERT INTO approvals (action_digest, approver, approver_group, at_us, note,"
            " reusable) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                approval.action_digest,
                approval.by,
                approval.group,
                approval.at_us,
                approval.note,
                approval.reusable,
            ),
        )
        return cursor.rowcount == 1

    def use_approvals(self, used: Sequence[ApprovalRecord], decision_id: str, at_us: int) -> None:
        for approval in used:
            if approval.id is None:
                raise LedgerError(f"{self._name}: an approval to use up has no ledger id")
            cursor = self._conn.execute(
                "INSERT INTO approval_uses (approval_id, action_digest, approver,"
                " approver_group, approval_at_us, decision_id, used_at_us)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
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
                    f"{self._name}: the approval of `{approval.by}` ({approval.group}) was"
                    " already used up by another decision"
                )

    def count(self) -> int:
        """Decisions held: every row but released ones."""
        row = self._conn.execute(
            "SELECT count(*) FROM actions WHERE outcome IS DISTINCT FROM %s", (RELEASED,)
        ).fetchone()
        return int(row[0]) if row else 0

    def outcome(self, decision_id: str) -> tuple[str | None, str | None]:
        row = self._conn.execute(
            "SELECT decision, outcome FROM actions WHERE decision_id = %s", (decision_id,)
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)
