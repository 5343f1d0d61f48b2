"""Stored contributions give the usage values a recomputation from scratch gives.

The reference here reads every current ledger row (action JSON, decision, time),
evaluates each declaration's filter and argument with the interpreter, applies
the documented window edges and leaves out the action being checked; sums are
exact (``Fraction``), rounded once. Histories are random: out-of-order times,
values on window edges, re-checks that change a row's decision, outcomes, and
other processes writing the same ledger.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from conftest import write_pack
from hypothesis import given, settings
from hypothesis import strategies as st
from postgres_cluster import run_sql, with_options

from aigre_policy import Pack, interpreter, load_pack
from aigre_policy.gate import FakeClock, Gate
from aigre_policy.gate.clock import to_us
from aigre_policy.gate.series import Series, exact
from aigre_policy.gate.usage import window_start
from aigre_policy.verdict import digest

USAGES = """
usage last_hour = count() over last 1h where action.actor.kind != "human" and decision != "deny"
usage spend_day = sum(action.cost.estimated_usd) over calendar_day where decision != "deny"
usage spend_week = sum(action.cost.estimated_usd) over calendar_week
usage spend_month = sum(action.cost.estimated_usd) over calendar_month where decision != "deny"
usage biggest_day = max(action.cost.estimated_usd) over calendar_day

rule day_budget {
  deny when usage.spend_day + action.cost.estimated_usd > 1000
  because "over the day's budget"
}
"""

BASE = datetime(2025, 3, 31, 23, 0, tzinfo=UTC)  # a Monday, an hour before April
OFFSETS = [  # microseconds from BASE: window edges and their neighbours
    -86_400_000_000 * 7,
    -86_400_000_000 * 6 - 1,
    -3_600_000_000 - 1,
    -3_600_000_000,
    -3_599_999_999,
    -1,
    0,
    1,
    3_599_999_999,
    3_600_000_000,  # midnight: April, a new day
    3_600_000_001,
    7_200_000_000,
]


@pytest.fixture(scope="module")
def pack_path(tmp_path_factory) -> Path:
    return write_pack(tmp_path_factory.mktemp("usage") / "pack", USAGES)


def act(n: int, usd: float | int, kind: str = "llm") -> dict[str, Any]:
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
    }


@functools.cache
def _pack(path: Path) -> Pack:
    return load_pack(path)


def recomputed(ledger: str, pack_path: Path, now: datetime, proposed: dict[str, Any]) -> dict:
    """Usage values from the raw rows of the ledger at ``ledger`` (a URL), without any
    stored contribution."""
    pack = _pack(pack_path)
    rows = run_sql(
        ledger, "SELECT action, decision, at_us, action_digest FROM actions WHERE current"
    )
    exclude = digest(proposed)
    values = {}
    latest = max((at_us for _, _, at_us, _ in rows), default=0)
    for usage in pack.program.usages:
        # windows end at the ledger's time: never before the latest time recorded
        start, end = to_us(window_start(usage, now)), max(to_us(now), latest)
        picked = []
        for text, decision, at_us, row_digest in sorted(rows, key=lambda r: r[2]):
            if not start <= at_us <= end or row_digest == exclude:
                continue
            scope = {"action": json.loads(text), "decision": decision}
            if usage.filter is not None and not interpreter.evaluate(
                usage.filter, scope, pack.envelopes
            ):
                continue
            picked.append(
                1
                if usage.argument is None
                else interpreter.evaluate(usage.argument, scope, pack.envelopes)
            )
        if usage.aggregate == "count":
            values[usage.name] = len(picked)
        elif usage.aggregate == "max":
            values[usage.name] = max(picked, default=0)
        elif any(isinstance(v, float) for v in picked):
            values[usage.name] = float(sum(map(Fraction, picked)))
        else:
            values[usage.name] = sum(picked)
    return values


history = st.lists(
    st.tuples(
        st.integers(0, 7),  # which action: repeats are re-checks of the same action
        st.sampled_from(OFFSETS),
        st.one_of(st.integers(0, 700), st.floats(0, 700, allow_nan=False).map(lambda f: f / 3)),
        st.sampled_from(["llm", "human"]),
        st.sampled_from([None, "executed", "failed", "rolled_back"]),
    ),
    max_size=14,
)


@given(steps=history, final=st.sampled_from(OFFSETS), usd=st.integers(0, 100))
@settings(max_examples=40, deadline=None)
def test_stored_contributions_match_a_recomputation_from_scratch(
    pack_path: Path, steps: list, final: int, usd: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        replay_history(f"sqlite:///{Path(tmp) / 'ledger.db'}", pack_path, steps, final, usd)


@given(steps=history, final=st.sampled_from(OFFSETS), usd=st.integers(0, 100))
@settings(max_examples=25, deadline=None)
def test_stored_contributions_match_a_recomputation_on_postgresql(
    pack_path: Path, postgres_server: Any, steps: list, final: int, usd: int
) -> None:
    ledger = postgres_server.create_ledger()
    try:
        replay_history(ledger, pack_path, steps, final, usd)
    finally:
        postgres_server.drop_ledger(ledger)


def replay_history(ledger: str, pack_path: Path, steps: list, final: int, usd: int) -> None:
    """Check each step of a history and compare its usage with a recomputation."""
    clock = FakeClock(BASE)
    gate = Gate(_pack(pack_path), ledger=ledger, clock=clock)
    amounts: dict[int, float | int] = {}
    for which, offset, amount, kind, outcome in steps:
        amounts.setdefault(which, amount)  # a re-check proposes the same action
        clock.set(BASE + timedelta(microseconds=offset))
        proposed = act(which, amounts[which], kind if which % 2 else "llm")
        verdict = gate.check(proposed)
        assert not verdict.fail_closed, verdict.errors
        assert verdict.usage == recomputed(ledger, pack_path, clock(), proposed)
        if outcome is not None:
            gate.record_outcome(verdict, outcome)
    clock.set(BASE + timedelta(microseconds=final))
    proposed = act(99, usd)
    cold = Gate(_pack(pack_path), ledger=ledger, clock=clock)
    from_cold = cold.check(proposed).usage  # loaded from the stored contributions
    expected = recomputed(ledger, pack_path, clock(), proposed)  # its own row is left out
    assert from_cold == expected
    assert gate.check(proposed).usage == expected  # the warm copy, kept in step
    gate.close()
    cold.close()


def test_a_re_check_that_changes_the_decision_moves_the_row_out_of_the_filter(
    pack_path: Path, ledger_url: str
) -> None:
    db = ledger_url
    clock = FakeClock(BASE)  # 23:00, the last day of March
    gate = Gate.from_pack(pack_path, ledger=ledger_url, clock=clock)
    first = gate.check(act(1, 600))
    assert first.decision == "allow"
    gate.record_outcome(first, "executed")
    clock.advance(hours=2)  # 01:00 on 1 April: a new day and month, the same week
    assert gate.check(act(2, 500)).usage["spend_day"] == 0
    assert gate.check(act(1, 600)).decision == "deny"  # the same action again: 500 + 600
    proposed = act(3, 1)
    usage = gate.check(proposed).usage
    assert usage == recomputed(db, pack_path, clock(), proposed)
    assert usage["spend_day"] == 500  # act-1 now counts as denied
    assert usage["spend_week"] == 1100  # counted once, at its latest decision
    assert usage["biggest_day"] == 600  # max has no filter: the denied act-1 is the largest


def _writer(ledger: str, pack: str, worker: int, count: int) -> None:
    clock = FakeClock(BASE)
    with Gate.from_pack(pack, ledger=with_options(ledger, timeout=30), clock=clock) as gate:
        for i in range(count):
            clock.advance(seconds=1)
            verdict = gate.check(act(worker * 1000 + i % 7, 1 + i % 7 % 3))  # re-checks
            assert not verdict.fail_closed, verdict.errors


def test_a_long_lived_gate_sees_what_other_processes_wrote(pack_path: Path, ledger_url) -> None:
    db = ledger_url
    clock = FakeClock(BASE + timedelta(minutes=5))
    gate = Gate.from_pack(pack_path, ledger=ledger_url, clock=clock)
    assert gate.check(act(50, 7.5)).usage["spend_day"] == 0  # its copy is now loaded
    gate.ledger.close()  # nothing open across the fork; the gate reopens on its next check
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_writer, args=(str(db), str(pack_path), w, 20)) for w in (1, 2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    proposed = act(51, 1)
    usage = gate.check(proposed).usage
    assert usage == recomputed(db, pack_path, clock(), proposed)
    assert usage["spend_day"] == 7.5 + 2 * sum(1 + k % 3 for k in range(7))  # re-checks once


def test_a_ledger_of_the_first_schema_is_upgraded_and_its_rows_counted(
    pack_path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE actions (id INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL
          UNIQUE, action_digest TEXT NOT NULL, action TEXT NOT NULL, decision TEXT NOT NULL,
          at_us INTEGER NOT NULL, current INTEGER NOT NULL DEFAULT 1, outcome TEXT,
          outcome_at_us INTEGER);
        CREATE INDEX actions_window ON actions (at_us, decision_id, decision, action_digest)
          WHERE current = 1;
        CREATE INDEX actions_digest ON actions (action_digest);
        CREATE TABLE approvals (id INTEGER PRIMARY KEY AUTOINCREMENT, action_digest TEXT NOT
          NULL, approver TEXT NOT NULL, approver_group TEXT NOT NULL, at_us INTEGER NOT NULL,
          note TEXT NOT NULL DEFAULT '', UNIQUE (action_digest, approver, approver_group));
        PRAGMA user_version = 1;
        """
    )
    for n, (usd, decision) in enumerate([(40, "allow"), (600, "deny"), (5, "allow")]):
        action = act(n, usd)
        conn.execute(
            "INSERT INTO actions (decision_id, action_digest, action, decision, at_us)"
            " VALUES (?, ?, ?, ?, ?)",
            (f"d{n}", digest(action), json.dumps(action), decision, to_us(BASE) - n),
        )
    conn.commit()
    conn.close()
    clock = FakeClock(BASE)
    gate = Gate.from_pack(pack_path, ledger=f"sqlite:///{db}", clock=clock)
    usage = gate.check(act(9, 1)).usage
    assert usage["spend_day"] == 45 and usage["spend_week"] == 645
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    stored = conn.execute("SELECT count(DISTINCT row_id) FROM contributions").fetchone()[0]
    assert stored == 4  # the three old rows were computed once and kept, plus the new one


def test_a_ledger_of_the_second_schema_keeps_its_stored_contributions(
    pack_path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.db"
    clock = FakeClock(BASE)
    Gate.from_pack(pack_path, ledger=f"sqlite:///{db}", clock=clock).check(act(1, 10))
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(  # back to the second schema's layout, with a value only it holds
        """
        CREATE TABLE old (usage_key TEXT NOT NULL, row_id INTEGER NOT NULL,
          at_us INTEGER NOT NULL, passed INTEGER NOT NULL, value, error TEXT,
          PRIMARY KEY (usage_key, row_id)) WITHOUT ROWID;
        INSERT INTO old SELECT usage_key, row_id, at_us, passed, value, error FROM contributions;
        DROP TABLE contributions;
        ALTER TABLE old RENAME TO contributions;
        CREATE INDEX contributions_window ON contributions (usage_key, at_us);
        UPDATE contributions SET value = 70 WHERE passed = 1 AND value = 10;
        PRAGMA user_version = 2;
        """
    )
    conn.close()
    usage = Gate.from_pack(pack_path, ledger=f"sqlite:///{db}", clock=clock).check(act(2, 1)).usage
    assert usage["spend_day"] == 70  # read from the stored contributions, not recomputed
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    assert conn.execute("SELECT count(DISTINCT row_id) FROM contributions").fetchone()[0] == 2
    assert not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'contributions_window'"
    ).fetchone()
    conn.close()


def test_a_stored_contribution_that_cannot_be_read_fails_closed(
    pack_path: Path, ledger_url: str, ledger_sql
) -> None:
    clock = FakeClock(BASE)
    Gate.from_pack(pack_path, ledger=ledger_url, clock=clock).check(act(1, 10))
    ledger_sql("UPDATE contributions SET value = 'ten' WHERE passed = 1")
    verdict = Gate.from_pack(pack_path, ledger=ledger_url, clock=clock).check(act(2, 1))
    assert verdict.fail_closed and verdict.decision == "deny"
    assert verdict.errors[0]["path"] == "gate.ledger"
    assert "unreadable contribution" in verdict.errors[0]["message"]


@given(st.lists(st.floats(-1e300, 1e300, allow_nan=False) | st.integers(-(10**30), 10**30)))
@settings(max_examples=200, deadline=None)
def test_series_sums_are_exact_whatever_order_rows_arrive_in(values: list) -> None:
    series = Series()
    order = sorted(range(len(values)), key=lambda i: (i * 7919) % (len(values) or 1))
    for i in order:
        series.put(i, i, contribution(values[i]))
    for i in order[::3]:  # superseded rows leave, then come back
        series.drop(i)
    for i in order[::3]:
        series.put(i, i, contribution(values[i]))
    for lo in range(0, len(values) + 1, 3):
        picked = values[lo:]
        total = series.aggregate("sum", lo, len(values), None, "x")
        want = sum(map(Fraction, picked))
        if any(isinstance(v, float) for v in picked):
            assert total == float(want)
        else:
            assert total == want and isinstance(total, int)
        assert series.aggregate("count", lo, len(values), None, "x") == len(picked)
    assert all(exact(v) == Fraction(v) * 2**1074 for v in values)


def contribution(value: float | int) -> Any:
    from aigre_policy.gate.ledger import Contribution

    return Contribution(True, value)
