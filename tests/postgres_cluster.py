"""A throwaway PostgreSQL cluster for the tests, and the store fixtures every ledger test uses.

``AIGRE_TEST_POSTGRES_URL`` names a running server to use (``.ci/run`` starts one);
otherwise the session starts its own cluster with ``initdb``/``pg_ctl`` (from PATH or
``/usr/lib/postgresql/*/bin``) in a temporary directory, listening on 127.0.0.1 on a
free port, and stops it at the end. As root the server runs as the ``postgres`` user
(PostgreSQL refuses to run as root). Each test that asks for a PostgreSQL ledger gets a
schema of its own in one database of the tests (``CREATE SCHEMA``, named by the URL's
``options=-c search_path=...``), dropped afterwards.

Without PostgreSQL those tests are skipped with the reason, or fail when
``AIGRE_REQUIRE_SERVICES=1`` (CI) says the service must be there.

The cluster itself is ``pg_throwaway.Cluster``, which ``.ci/run`` also runs as a script,
so the tests and CI start clusters the same way.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest
from pg_throwaway import Cluster, Unavailable, free_port  # noqa: F401 (for tests here)

STORES = ("sqlite", "postgresql")


def unavailable(reason: str) -> None:
    """Skip, or fail when the environment requires the services."""
    if os.environ.get("AIGRE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"PostgreSQL is required (AIGRE_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(f"PostgreSQL is not available: {reason}")


@dataclass
class Server:
    """The server the tests use: ``url`` of a maintenance database on it."""

    url: str
    cluster: Cluster | None  # None: given by AIGRE_TEST_POSTGRES_URL, not ours to stop
    database: str | None = None  # the tests' own database, made on first use

    def admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def create_ledger(self) -> str:
        """A fresh, empty schema in the tests' database; a ledger URL whose search path
        names it (a schema is made in milliseconds, a database in about a second)."""
        if self.database is None:
            name = f"aigre_tests_{uuid.uuid4().hex[:8]}"
            with self.admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
            self.database = with_database(self.url, name)
        schema = f"t_{uuid.uuid4().hex[:16]}"
        run_sql(self.database, f'CREATE SCHEMA "{schema}"')
        return with_options(self.database, options=f"-c search_path={schema}")

    def drop_ledger(self, url: str) -> None:
        options = dict(parse_qsl(urlsplit(url).query)).get("options", "")
        schema = options.rpartition("=")[2]
        with contextlib.suppress(Exception):
            run_sql(self.database or self.url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def close(self) -> None:
        if self.database is not None:
            name = urlsplit(self.database).path.lstrip("/")
            with contextlib.suppress(Exception), self.admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def with_options(url: str, **options: Any) -> str:
    """``url`` with query options added (text appended: ``sqlite:////abs`` keeps its slashes)."""
    added = urlencode({k: str(v) for k, v in options.items()}, quote_via=quote)
    return f"{url}{'&' if '?' in url else '?'}{added}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """The session's PostgreSQL server (given, or a throwaway cluster of our own)."""
    given = os.environ.get("AIGRE_TEST_POSTGRES_URL")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        unavailable(f'psycopg is not installed ({exc}): pip install "aigre-policy[postgres]"')
    if given:
        server = Server(given, None)
        yield server
        server.close()
        return
    try:
        cluster = Cluster.start()
    except (Unavailable, OSError, subprocess.SubprocessError) as exc:
        unavailable(str(exc))
        raise  # unreachable: unavailable() skips or fails
    try:
        yield Server(cluster.url, cluster)
    finally:
        cluster.stop("immediate")
        cluster.remove()


@pytest.fixture
def postgres_url(postgres_server: Server) -> Iterator[str]:
    """A fresh ledger (a schema of its own) for one test; every ledger opened is closed after."""
    from aigre_policy.gate import postgres

    url = postgres_server.create_ledger()
    opened: list[Any] = []
    original = postgres.from_url

    def tracked(text: str) -> Any:
        store = original(text)
        opened.append(store)
        return store

    postgres.from_url = tracked
    try:
        yield url
    finally:
        postgres.from_url = original
        for store in opened:
            store.close()
        postgres_server.drop_ledger(url)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """One ledger URL per store: a SQLite file in ``tmp_path``, or a fresh PostgreSQL database."""
    if store_kind == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def ledger_sql(ledger_url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    """Run one SQL statement (no parameters) on the test's ledger; the rows it returns."""
    return lambda statement: run_sql(ledger_url, statement)


def run_sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        conn = sqlite3.connect(parts.path[1:], isolation_level=None)
        try:
            return conn.execute(statement).fetchall()
        finally:
            conn.close()
    import psycopg

    from aigre_policy.gate.postgres import OPTIONS

    kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in OPTIONS]
    plain = urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote)))
    with psycopg.connect(plain, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def eventually(test: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if test():
            return True
        time.sleep(0.05)
    return False
