"""The PostgreSQL ledger's own faults, injected for real: a connection killed mid-check, a
server down at start or stopped and started again, an exhausted pool, a lock held too long,
a commit the server refuses, a schema from a newer version. Each fails the check closed,
never allows, and the gate works again once the fault is gone.

(What both stores share, the ledger and approval semantics, runs on both from the other
ledger and gate tests through the ``ledger_url`` fixture.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import gate_action as act
from postgres_cluster import (
    Cluster,
    Unavailable,
    eventually,
    free_port,
    run_sql,
    unavailable,
    with_options,
)

from aigre_policy.gate import FakeClock, Gate, StaticDirectory, open_ledger
from aigre_policy.gate.log import read_log, verify_log

pytest.importorskip("psycopg", reason='the PostgreSQL ledger needs "aigre-policy[postgres]"')

POLICIES = """
usage spend_day = sum(action.cost.estimated_usd) over calendar_day where decision != "deny"

rule costly {
  require_approval by ["finops"] when action.cost.estimated_usd > 100
}
rule budget {
  deny when usage.spend_day + action.cost.estimated_usd > 1000
}
"""

COSTLY = {"cost": {"estimated_usd": 500}}


@pytest.fixture
def pack_dir(new_pack) -> Path:
    return new_pack(POLICIES)


def gate_on(pack_dir: Path, ledger: str, tmp_path: Path, **options: Any) -> Gate:
    options.setdefault("directory", StaticDirectory({"finops": ["fay"]}))
    return Gate.from_pack(
        pack_dir,
        ledger=ledger,
        log=tmp_path / "decisions.jsonl",
        clock=FakeClock("2025-03-10T12:00:00Z"),
        **options,
    )


def assert_failed_closed(verdict: Any, *texts: str) -> None:
    assert verdict.fail_closed and verdict.decision != "allow", verdict
    assert verdict.decision == "deny"  # the pack's fail_closed decision
    [fault] = [e for e in verdict.errors if e["path"] == "gate.ledger"]
    assert any(text in fault["message"] for text in texts), fault["message"]
    assert "\n" not in fault["message"]


def rows(ledger: str) -> list[tuple[Any, ...]]:
    return run_sql(ledger, "SELECT decision_id, decision FROM actions ORDER BY id")


class KillingDirectory:
    """Group membership whose lookup, once armed, kills every other connection to the
    database: the gate asks it inside its ledger transaction, between reads and writes."""

    def __init__(self, ledger: str):
        self.ledger = ledger
        self.armed = False
        self.killed = 0

    def is_member(self, person: str, group: str) -> bool:
        if self.armed:
            self.armed = False
            self.killed = len(
                run_sql(
                    self.ledger,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
            )
        return (person, group) == ("fay", "finops")


def test_a_connection_killed_mid_check_fails_closed_and_the_gate_recovers(
    pack_dir, postgres_url, tmp_path
) -> None:
    directory = KillingDirectory(postgres_url)
    gate = gate_on(pack_dir, postgres_url, tmp_path, directory=directory)
    waiting = gate.check(act(1, **COSTLY))
    assert waiting.decision == "require_approval"
    gate.approve(waiting, by="fay", group="finops")
    directory.armed = True
    verdict = gate.check(act(1, **COSTLY))  # the approval counts, then the connection dies
    assert directory.killed >= 1
    assert_failed_closed(verdict, "terminating connection", "server closed the connection")
    assert [d for _, d in rows(postgres_url)] == ["require_approval"]  # nothing of it kept
    again = gate.check(act(1, **COSTLY))  # a fresh connection: the approval lets it through
    assert again.decision == "allow" and not again.fail_closed
    decisions = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    assert [e.body["verdict"]["decision"] for e in decisions] == [
        "require_approval",
        "deny",  # the fail-closed verdict the caller received
        "allow",
    ]
    assert verify_log(tmp_path / "decisions.jsonl").ok


def test_connections_killed_while_idle_are_replaced_before_a_check(
    pack_dir, postgres_url, tmp_path
) -> None:
    gate = gate_on(pack_dir, with_options(postgres_url, pool_min=2), tmp_path)
    assert gate.check(act(1)).decision == "allow"
    run_sql(
        postgres_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    verdict = gate.check(act(2))  # nothing was read yet: a fresh connection is taken
    assert verdict.decision == "allow" and verdict.usage == {"spend_day": 10}


def test_a_server_down_at_start_fails_every_check_closed_within_the_pool_timeout(
    pack_dir, tmp_path
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/aigre?pool_timeout=0.3&connect_timeout=2"
    gate = gate_on(pack_dir, url, tmp_path)  # starting does not need the server
    started = time.monotonic()
    verdict = gate.check(act(1))
    assert time.monotonic() - started < 5
    assert_failed_closed(verdict, "PoolTimeout")
    assert_failed_closed(gate.check(act(2, **COSTLY)), "PoolTimeout")
    gate.close()


def test_an_exhausted_pool_fails_closed_and_frees_up(pack_dir, postgres_url, tmp_path) -> None:
    gate = gate_on(pack_dir, with_options(postgres_url, pool_max=1, pool_timeout=0.3), tmp_path)
    assert gate.check(act(1)).decision == "allow"
    assert gate.ledger is not None
    with gate.ledger.session():  # the pool's only connection is taken
        verdict = gate.check(act(2))
    assert_failed_closed(verdict, "PoolTimeout")
    assert gate.check(act(3)).usage == {"spend_day": 10}


def test_a_lock_held_too_long_fails_closed(pack_dir, postgres_url, tmp_path) -> None:
    gate = gate_on(pack_dir, with_options(postgres_url, timeout=0.3), tmp_path)
    assert gate.check(act(1)).decision == "allow"
    other = open_ledger(postgres_url)  # another host's gate, inside its decision
    assert other is not None
    with other.session():
        verdict = gate.check(act(2))
    assert_failed_closed(verdict, "lock timeout")
    assert gate.check(act(3)).usage == {"spend_day": 10}
    other.close()


def test_a_commit_the_server_refuses_fails_closed_and_is_logged_once(
    pack_dir, postgres_url, tmp_path
) -> None:
    gate = gate_on(pack_dir, postgres_url, tmp_path)
    first = gate.check(act(1))
    # a deferred constraint: every statement works, the COMMIT fails
    run_sql(
        postgres_url,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;"
        " CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON actions"
        " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    refused = [gate.check(act(n)) for n in (2, 3)]
    for verdict in refused:
        assert_failed_closed(verdict, "refused at commit")
    run_sql(postgres_url, "DROP TRIGGER refuse ON actions")
    assert gate.check(act(4)).usage == {"spend_day": 10}  # nothing refused was counted
    decisions = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    assert [e.id for e in decisions][:3] == [first.decision_id] + [v.decision_id for v in refused]
    assert [e.body["verdict"]["fail_closed"] for e in decisions] == [False, True, True, False]


def test_a_ledger_of_a_newer_schema_fails_closed_naming_it(
    pack_dir, postgres_url, tmp_path
) -> None:
    gate_on(pack_dir, postgres_url, tmp_path).check(act(1))
    run_sql(postgres_url, "UPDATE ledger_state SET schema_version = 99")
    verdict = gate_on(pack_dir, postgres_url, tmp_path).check(act(2))
    assert_failed_closed(verdict, "holds ledger schema 99; this version reads up to 1")


def test_a_log_copies_its_checkpoints_to_a_postgresql_ledger(postgres_url) -> None:
    store = open_ledger(postgres_url)
    assert store is not None
    store.add_checkpoint("log-a", 2, "second")  # type: ignore[attr-defined]
    store.add_checkpoint("log-a", 1, "first")  # type: ignore[attr-defined]
    store.add_checkpoint("log-a", 1, "first")  # type: ignore[attr-defined]
    assert store.checkpoints("log-a") == ["first", "second"]  # type: ignore[attr-defined]
    assert store.checkpoints("log-b") == []  # type: ignore[attr-defined]
    store.close()


# -- a cluster of its own, stopped and started again -------------------------------------


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    try:
        cluster = Cluster.start()
    except (Unavailable, OSError) as exc:
        unavailable(str(exc))
        raise
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        cluster.remove()


def test_a_server_stopped_mid_run_fails_closed_until_it_is_back(
    pack_dir, own_cluster: Cluster, tmp_path
) -> None:
    url = with_options(own_cluster.url, pool_timeout=0.5, connect_timeout=2)
    gate = gate_on(pack_dir, url, tmp_path)
    assert gate.check(act(1)).decision == "allow"
    own_cluster.stop("fast")
    try:
        down = [gate.check(act(n)) for n in (2, 3)]
    finally:
        own_cluster.start_again()
    for verdict in down:
        assert_failed_closed(verdict, "PoolTimeout", "server closed", "terminating connection")
    # the pool reconnects in the background, backing off from 1 s: checks fail closed
    # until it has, then the gate carries on where it stopped
    answers: list[Any] = []
    assert eventually(lambda: answers.append(gate.check(act(4))) or not answers[-1].fail_closed)
    assert all(a.decision == "deny" for a in answers[:-1])
    assert answers[-1].decision == "allow" and answers[-1].usage == {"spend_day": 10}
    gate.close()


def test_async_checks_and_enforcement_share_the_postgresql_ledger(
    pack_dir, postgres_url, tmp_path
) -> None:
    import asyncio

    gate = gate_on(pack_dir, postgres_url, tmp_path)

    async def run() -> list[Any]:
        waiting = await gate.acheck(act(1, **COSTLY))
        gate.approve(waiting, by="fay", group="finops")
        async with gate.aenforce(act(1, **COSTLY)) as first:
            pass
        answers = await asyncio.gather(*(gate.acheck(act(n)) for n in range(2, 8)))
        return [first.verdict, *answers]

    verdicts = asyncio.run(run())
    assert [v.decision for v in verdicts] == ["allow"] * 7
    assert verdicts[0].gate["approvals"]["used"] == [{"by": "fay", "group": "finops"}]
    assert verdicts[-1].usage["spend_day"] >= 500
    uses = run_sql(postgres_url, "SELECT approver, decision_id FROM approval_uses")
    assert uses == [("fay", verdicts[0].decision_id)]
    gate.close()


def test_a_child_after_fork_opens_its_own_connections_and_leaves_the_parents(
    pack_dir, postgres_url
) -> None:
    import gc
    import multiprocessing
    import os

    url = with_options(postgres_url, pool_max=1)
    gate = Gate.from_pack(pack_dir, ledger=url, clock=FakeClock("2025-03-10T12:00:00Z"))
    assert gate.check(act(1)).decision == "allow"  # the parent's pool is open

    def backend() -> int:
        assert gate.ledger is not None
        with gate.ledger.session() as session:
            return int(session._conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[attr-defined]

    before = backend()

    def child() -> None:
        verdict = gate.check(act(2))
        gc.collect()  # nothing of the parent's pool may be finalized here
        os._exit(0 if verdict.decision == "allow" and not verdict.fail_closed else 1)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert backend() == before  # the parent's connection survived the child
    assert gate.check(act(3)).usage == {"spend_day": 20}
    gate.close()
