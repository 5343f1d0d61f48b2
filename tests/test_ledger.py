"""The usage ledger: URLs, exact window edges, filters, aggregates, re-checks, several processes."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from postgres_cluster import with_options

from aigre_policy import load_pack
from aigre_policy.gate import FakeClock, Gate, GateError, SqliteLedger, open_ledger
from aigre_policy.gate.clock import from_us, iso, to_us
from aigre_policy.gate.log import verify_log
from aigre_policy.gate.usage import window_start

USAGES = """
usage last_hour = count() over last 1h where action.actor.kind != "human" and decision != "deny"
usage spend_day = sum(action.cost.estimated_usd) over calendar_day where decision != "deny"
usage spend_week = sum(action.cost.estimated_usd) over calendar_week
usage spend_month = sum(action.cost.estimated_usd) over calendar_month where decision != "deny"
usage biggest_day = max(action.cost.estimated_usd) over calendar_day

rule pricey {
  deny when action.cost.estimated_usd > 500
}
"""


BASELINE_USAGES = load_pack(
    Path(__file__).parent.parent / "policy_packs/aigre-baseline"
).program.usages


def action(n: int, usd: float = 10, kind: str = "llm", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"act-{n}",
        "kind": "scale",
        "target": "checkout",
        "environment": "staging",
        "actor": {"kind": kind, "id": "agent-7", "trust": 3},
        "change": {"type": "infra"},
        "reversible": True,
        "blast_radius": {"users_share": 0.1},
        "cost": {"estimated_usd": usd},
        "requested_at": "2025-03-01T00:00:00Z",
        **extra,
    }


@pytest.fixture
def gate_at(new_pack, ledger_url: str):
    """A gate on the test's ledger (SQLite or PostgreSQL) at a fake time."""

    def make(start: str, policies: str = USAGES) -> tuple[Gate, FakeClock]:
        clock = FakeClock(start)
        pack = load_pack(new_pack(policies))
        gate = Gate(pack, ledger=ledger_url, clock=clock)
        return gate, clock

    return make


def test_ledger_urls_name_a_sqlite_file_and_options(tmp_path: Path) -> None:
    store = open_ledger(f"sqlite:///{tmp_path}/a.db?timeout=0.5")
    assert isinstance(store, SqliteLedger)
    assert store.path == f"{tmp_path}/a.db" and store.timeout == 0.5
    relative = open_ledger("sqlite:///aigre.db")
    assert isinstance(relative, SqliteLedger) and relative.path == "aigre.db"
    assert isinstance(open_ledger(tmp_path / "b.db"), SqliteLedger)
    assert open_ledger(None) is None
    for bad in ("mysql://db/x", "sqlite:///", "sqlite:///x.db?color=red"):
        with pytest.raises(GateError):
            open_ledger(bad)


def test_postgresql_urls_keep_the_ledgers_options_and_hand_the_rest_to_libpq() -> None:
    from aigre_policy.gate.postgres import PostgresLedger

    store = open_ledger(
        "postgresql://gate:secret@db.internal:5433/aigre?timeout=2&pool_max=4"
        "&pool_timeout=0.5&sslmode=require"
    )
    assert isinstance(store, PostgresLedger)
    assert (store.timeout, store.pool_min, store.pool_max, store.pool_timeout) == (2, 1, 4, 0.5)
    assert store.conninfo == "postgresql://gate:secret@db.internal:5433/aigre?sslmode=require"
    assert "secret" not in store.name and "secret" not in repr(store)
    assert isinstance(open_ledger("postgres://localhost/aigre"), PostgresLedger)
    socket = open_ledger("postgresql:///aigre?host=/run/pg&options=-c%20search_path%3Dteam_a")
    assert isinstance(socket, PostgresLedger)  # a unix socket, a schema of its own
    assert (
        socket.conninfo == "postgresql:///aigre?host=%2Frun%2Fpg&options=-c%20search_path%3Dteam_a"
    )
    for bad in ("postgresql://h/db?pool_max=none", "postgresql://h/db?pool_min=3&pool_max=2"):
        with pytest.raises(GateError):
            open_ledger(bad)


def test_a_postgresql_url_without_psycopg_names_the_extra_to_install(monkeypatch) -> None:
    import sys

    import aigre_policy.gate

    monkeypatch.delitem(sys.modules, "aigre_policy.gate.postgres", raising=False)
    monkeypatch.delattr(aigre_policy.gate, "postgres", raising=False)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(GateError) as raised:
        open_ledger("postgresql://localhost/aigre")
    message = str(raised.value)
    assert 'pip install "aigre-policy[postgres]"' in message and "\n" not in message


def test_the_ledger_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    store = SqliteLedger(tmp_path / "l.db", timeout=1.5)
    with store.session() as session:
        assert session.count() == 0
    conn = store._connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1500


def test_threads_opening_a_new_ledger_together_all_get_in(tmp_path: Path) -> None:
    # A fresh file's switch to WAL answered "database is locked" at once, without
    # the busy timeout, so one of the first concurrent checks failed closed.
    import threading

    failures: list[BaseException] = []
    for round_ in range(60):
        store = SqliteLedger(tmp_path / f"race-{round_}.db")

        def first_session(store: SqliteLedger = store) -> None:
            try:
                with store.session() as session:
                    session.state()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=first_session) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        store.close()
    assert failures == []


def test_an_action_exactly_at_the_start_of_a_last_window_counts(gate_at) -> None:
    gate, clock = gate_at("2025-03-10T12:00:00Z")
    gate.check(action(1))
    clock.set("2025-03-10T12:00:00.000001Z")
    gate.check(action(2))
    clock.set("2025-03-10T13:00:00Z")  # act-1 is exactly 1h old: in
    assert gate.check(action(3)).usage["last_hour"] == 2
    clock.set("2025-03-10T13:00:00.000001Z")  # now act-1 is 1h + 1µs old: out
    assert gate.check(action(4)).usage["last_hour"] == 2  # act-2, act-3
    clock.set("2025-03-10T13:00:00.000002Z")
    assert gate.check(action(5)).usage["last_hour"] == 2  # act-2 left; act-3 and act-4 in


def test_calendar_windows_start_at_midnight_monday_and_the_first_in_utc(gate_at) -> None:
    gate, clock = gate_at("2025-02-28T23:59:59.999999Z")  # a Friday, last instant of February
    gate.check(action(1, usd=7))
    clock.set("2025-03-01T00:00:00Z")  # a Saturday, first instant of March
    gate.check(action(2, usd=11))
    clock.set("2025-03-01T10:00:00+05:00")  # 05:00 UTC the same day
    usage = gate.check(action(3, usd=1)).usage
    assert usage["spend_day"] == 11 and usage["spend_month"] == 11
    assert usage["spend_week"] == 18  # the week started Monday 24 February
    clock.set("2025-03-03T00:00:00Z")  # Monday: a new week
    assert gate.check(action(4, usd=1)).usage["spend_week"] == 0


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    )
)
@settings(max_examples=200, deadline=None)
def test_window_starts_hold_now_and_are_the_documented_instants(moment: datetime) -> None:
    for usage in BASELINE_USAGES:
        start = window_start(usage, moment)
        assert start <= moment
        if usage.window == "calendar_month":
            assert (start.day, start.hour, start.minute, start.second) == (1, 0, 0, 0)
            assert (start.year, start.month) == (moment.year, moment.month)
        else:
            assert moment - start == timedelta(hours=1)
    assert from_us(to_us(moment)) == moment


def test_filters_aggregates_and_decisions_decide_what_counts(gate_at) -> None:
    gate, _ = gate_at("2025-03-10T12:00:00Z")
    gate.check(action(1, usd=40))
    gate.check(action(2, usd=600))  # denied: out of spend_day and spend_month, in spend_week
    gate.check(action(3, usd=5, kind="human"))  # a person: not in last_hour
    usage = gate.check(action(4, usd=1)).usage
    assert usage == {
        "last_hour": 1,
        "spend_day": 45,
        "spend_week": 645,
        "spend_month": 45,
        "biggest_day": 600,
    }


def test_an_empty_ledger_gives_zero_for_every_aggregate(gate_at) -> None:
    gate, _ = gate_at("2025-03-10T12:00:00Z")
    usage = gate.check(action(1)).usage
    assert usage == dict.fromkeys(usage, 0) and len(usage) == 5


def test_checking_the_same_action_again_counts_it_once_and_never_against_itself(gate_at) -> None:
    gate, clock = gate_at("2025-03-10T12:00:00Z")
    first = gate.check(action(1, usd=40))
    assert first.usage["spend_day"] == 0
    clock.advance(minutes=5)
    again = gate.check(action(1, usd=40))
    assert again.usage["spend_day"] == 0  # its own earlier row is left out
    assert gate.check(action(2, usd=1)).usage["spend_day"] == 40  # counted once, not twice


def test_a_past_row_the_usage_cannot_read_fails_closed_naming_the_row(gate_at, ledger_sql) -> None:
    # written by a pack without these declarations: the reader computes what the row adds
    writer, _ = gate_at("2025-03-10T12:00:00Z", "rule pricey {\n  deny when 1 > 2\n}\n")
    writer.check(action(1))
    gate, _ = gate_at("2025-03-10T12:00:00Z")
    ledger_sql('UPDATE actions SET action = \'{"id": "x"}\'')
    verdict = gate.check(action(2))
    assert verdict.fail_closed and verdict.decision == "deny"
    assert verdict.errors[0]["path"] == "gate.ledger"
    assert "cannot read ledger row" in verdict.errors[0]["message"]


def _hammer(ledger: str, log: str, pack: str, worker: int, count: int) -> None:
    clock = FakeClock(datetime(2025, 3, 10, 12, tzinfo=UTC))
    with Gate.from_pack(pack, ledger=ledger, log=log, clock=clock) as gate:
        for i in range(count):
            verdict = gate.check(action(worker * 1000 + i, usd=1))
            assert not verdict.fail_closed, verdict.errors


def test_several_processes_sharing_a_ledger_and_a_log_lose_nothing(
    new_pack, tmp_path, ledger_url: str
) -> None:
    pack = str(new_pack(USAGES))
    ledger = with_options(ledger_url, timeout=30)
    log = str(tmp_path / "decisions.jsonl")
    workers, each = 4, 25
    ctx = multiprocessing.get_context("fork")  # the parent holds no ledger or log open
    processes = [
        ctx.Process(target=_hammer, args=(ledger, log, pack, w, each)) for w in range(workers)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
        assert p.exitcode == 0
    store = open_ledger(ledger_url)
    assert store is not None
    with store.session() as session:
        assert session.count() == workers * each
    store.close()
    report = verify_log(log)
    assert report.ok, report
    assert report.entries == workers * each
    clock = FakeClock(datetime(2025, 3, 10, 12, tzinfo=UTC))
    gate = Gate.from_pack(pack, ledger=ledger, clock=clock)
    assert gate.check(action(99_999, usd=1)).usage["spend_day"] == workers * each
    assert iso(clock()) == "2025-03-10T12:00:00Z"
