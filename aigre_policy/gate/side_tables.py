"""Tables the gate keeps beside the ledger's, in the ledger's own database.

The held decisions (``held.py``) and the notification outbox (``outbox.py``) each keep a
table there, written in the decision's transaction where they can be. This is what they
share: the statements in the store's dialect (``?`` on SQLite, ``%s`` on PostgreSQL), the
table created on first use, and a transaction of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aigre_policy.gate.errors import GateError
from aigre_policy.gate.ledger import SqliteLedger


class SideTable:
    """One side table's dialect and connections over ``store`` (SQLite or PostgreSQL)."""

    def __init__(self, store: Any, ddl: tuple[str, ...], kept: str):
        if isinstance(store, SqliteLedger):
            self.postgres, self.mark = False, "?"
            self._plain: Callable[[], Any] = store.session
        elif type(store).__module__ == "aigre_policy.gate.postgres":
            self.postgres, self.mark = True, "%s"
            self._plain = lambda: store.session(lock=False)
        else:
            raise GateError(f"the ledger store {store!r} keeps no {kept}")
        self.store = store
        self._ddl = ddl
        self.ready = False

    def q(self, statement: str) -> str:
        return statement.replace("?", self.mark)

    def ensure(self, conn: Any) -> None:
        if not self.ready:
            for statement in self._ddl:
                conn.execute(statement)
            self.ready = True

    @contextmanager
    def transaction(self, *, locked: bool = False) -> Iterator[Any]:
        """A connection in a transaction of its own: under the ledger's lock when
        ``locked``, and while the table may still have to be created (PostgreSQL's DDL
        races otherwise)."""
        opened = self.store.session() if locked or not self.ready else self._plain()
        with opened as session:
            conn = session.connection  # both stores' sessions give their DB-API connection
            self.ensure(conn)
            yield conn

    @contextmanager
    def savepoint(self, conn: Any, name: str) -> Iterator[None]:
        """The block's writes in the decision's transaction, under savepoint ``name``
        (the table created first if need be): on a fault what the block wrote goes, the
        decision's rows stay, the table is checked again next time, and the fault is
        raised on for the caller to keep beside the verdict."""
        marked = False
        try:
            conn.execute(f"SAVEPOINT {name}")
            marked = True
            self.ensure(conn)
            yield
            conn.execute(f"RELEASE SAVEPOINT {name}")
        except Exception:
            if marked:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            self.ready = False
            raise
