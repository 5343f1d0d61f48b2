"""Fail closed: every fault on the decision path yields the fail-closed decision, naming it."""

from __future__ import annotations

import errno
import os
import pickle
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aigre_policy.gate import FakeClock, FunctionReviewer, Gate, SqliteLedger, open_ledger
from aigre_policy.gate import log as log_module
from aigre_policy.gate.log import read_log
from aigre_policy.gate.review import ReviewAnswer, ReviewRequest
from aigre_policy.gate.stats import log_stats

POLICIES = """
usage spend_day = sum(action.cost.estimated_usd) over calendar_day where decision != "deny"

rule budget {
  deny when usage.spend_day + action.cost.estimated_usd > 1000
}
rule no-grants {
  deny when action.kind == "iam_grant"
}
rule per-line {
  escalate when action.cost.estimated_usd / action.change.lines > 100
}
"""

# fail_closed: require_approval, so a fault never turns a rule's deny into something looser
MANIFEST = {"fail_closed": "require_approval"}


def act(n: int = 1, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"act-{n}",
        "kind": "restart",
        "target": "checkout",
        "environment": "production",
        "actor": {"kind": "llm", "id": "agent-7", "trust": 3},
        "change": {"type": "config", "lines": 1},
        "reversible": True,
        "blast_radius": {"users_share": 0.1},
        "cost": {"estimated_usd": 10},
        "requested_at": "2025-03-10T11:59:00Z",
    }
    base.update(overrides)
    return base


@pytest.fixture
def pack_dir(new_pack) -> Path:
    return new_pack(POLICIES, manifest=MANIFEST)


def gate_for(pack_dir: Path, where: Path, **options: Any) -> Gate:
    options.setdefault("ledger", f"sqlite:///{where / 'ledger.db'}?timeout=0.2")
    options.setdefault("log", where / "decisions.jsonl")
    return Gate.from_pack(pack_dir, clock=FakeClock("2025-03-10T12:00:00Z"), **options)


def assert_failed_closed(verdict: Any, component: str, text: str) -> None:
    assert verdict.decision == "require_approval" and verdict.fail_closed
    assert verdict.decision != "allow"
    faults = [e for e in verdict.errors if e["path"] == f"gate.{component}"]
    assert faults, verdict.errors
    assert text in faults[0]["message"], faults[0]["message"]


def unprivileged(job: Callable[[], Any]) -> Any:
    """Run ``job`` where file permissions bind: in a child without root, if we are root."""
    if os.geteuid() != 0:
        return job()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, run, send the result back
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            payload = pickle.dumps(("ok", job()))
        except BaseException as exc:
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        os.write(write, payload)
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    status, result = pickle.loads(b"".join(chunks))
    assert status == "ok", result
    return result


@pytest.fixture
def shared_dir() -> Path:
    """A directory anyone may write in, as an unprivileged child needs."""
    path = Path(tempfile.mkdtemp(prefix="aigre-gate-"))
    path.chmod(0o777)
    return path


def held(ledger: str) -> int:
    """Decisions the ledger at ``ledger`` holds, read by a store of its own."""
    store = open_ledger(ledger)
    assert store is not None
    try:
        with store.session() as session:
            return session.count()
    finally:
        store.close()


def summary(verdict: Any) -> tuple[str, bool, list[dict[str, Any]]]:
    return verdict.decision, verdict.fail_closed, verdict.errors


# -- input and engine ------------------------------------------------------------------------


def test_input_that_breaks_the_schema_fails_closed_and_is_logged_not_ledgered(
    pack_dir, tmp_path
) -> None:
    gate = gate_for(pack_dir, tmp_path)
    verdict = gate.check(act(environment="prod"))
    assert verdict.decision == "require_approval" and verdict.fail_closed
    assert (
        verdict.errors[0]["kind"] == "input" and verdict.errors[0]["path"] == "action.environment"
    )
    assert [e.kind for e in read_log(tmp_path / "decisions.jsonl")] == ["decision"]
    with SqliteLedger(tmp_path / "ledger.db").session() as session:
        assert session.count() == 0


def test_an_action_that_is_not_json_data_fails_closed(pack_dir, tmp_path) -> None:
    verdict = gate_for(pack_dir, tmp_path).check(act(cost={"estimated_usd": {1, 2}}))
    assert_failed_closed(verdict, "input", "not JSON data")


def test_an_engine_error_fails_closed(pack_dir, tmp_path) -> None:
    verdict = gate_for(pack_dir, tmp_path).check(act(change={"type": "config", "lines": 0}))
    assert verdict.decision == "require_approval" and verdict.fail_closed
    assert verdict.errors[0]["kind"] == "engine"
    assert "ZeroDivisionError" in verdict.errors[0]["message"]


def test_a_failing_context_provider_fails_closed(pack_dir, tmp_path) -> None:
    def provider(action: Any, now: Any) -> dict[str, Any]:
        raise ConnectionError("incident API unreachable")

    verdict = gate_for(pack_dir, tmp_path, context=provider).check(act())
    assert_failed_closed(verdict, "context", "ConnectionError: incident API unreachable")


def test_a_failing_clock_or_directory_is_an_engine_fault(pack_dir, tmp_path) -> None:
    def broken_clock() -> Any:
        raise OSError("no time source")

    gate = Gate.from_pack(pack_dir, clock=broken_clock)
    assert_failed_closed(gate.check(act()), "engine", "OSError: no time source")


def test_a_pack_with_usage_and_no_ledger_fails_closed(pack_dir) -> None:
    gate = Gate.from_pack(pack_dir, clock=FakeClock("2025-03-10T12:00:00Z"))
    assert_failed_closed(gate.check(act()), "ledger", "no ledger is configured")


# -- the ledger ------------------------------------------------------------------------------


def test_a_locked_ledger_fails_closed_and_recovers_when_released(pack_dir, tmp_path) -> None:
    gate = gate_for(pack_dir, tmp_path)
    assert gate.check(act(1)).decision == "allow"
    holder = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        verdict = gate.check(act(2))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_failed_closed(verdict, "ledger", "database is locked")
    [*_, logged] = read_log(tmp_path / "decisions.jsonl")  # the log still tells
    assert logged.body["verdict"]["fail_closed"] is True
    assert gate.check(act(3)).decision == "allow"


def test_a_corrupt_ledger_file_fails_closed(pack_dir, tmp_path) -> None:
    (tmp_path / "ledger.db").write_bytes(b"this is not a database, it only sits where one was" * 80)
    verdict = gate_for(pack_dir, tmp_path).check(act())
    assert_failed_closed(verdict, "ledger", "file is not a database")


def test_an_unreachable_ledger_fails_closed(pack_dir, tmp_path) -> None:
    gate = gate_for(pack_dir, tmp_path, ledger=f"sqlite:///{tmp_path}/missing/dir/ledger.db")
    assert_failed_closed(gate.check(act()), "ledger", "unable to open database file")


def test_a_full_ledger_fails_closed(pack_dir, tmp_path) -> None:
    gate = gate_for(pack_dir, tmp_path)
    assert gate.check(act(1)).decision == "allow"
    assert isinstance(gate.ledger, SqliteLedger)
    conn = gate.ledger._connect()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"
    big = act(2, target="x" * 20_000)
    assert_failed_closed(gate.check(big), "ledger", "database or disk is full")


def test_a_read_only_ledger_fails_closed(pack_dir, shared_dir) -> None:
    gate_for(pack_dir, shared_dir, log=None).check(act(1))  # create it, as root
    for name in os.listdir(shared_dir):
        os.chmod(shared_dir / name, 0o444)
    gate = gate_for(pack_dir, shared_dir, log=None)
    decision, fail_closed, errors = unprivileged(lambda: summary(gate.check(act(2))))
    assert (decision, fail_closed) == ("require_approval", True)
    assert errors[0]["path"] == "gate.ledger"
    assert "readonly" in errors[0]["message"] or "unable to open" in errors[0]["message"]


# -- the log ---------------------------------------------------------------------------------


def test_a_read_only_log_fails_closed_keeping_a_deny(pack_dir, shared_dir) -> None:
    log = shared_dir / "decisions.jsonl"
    log.write_text("")
    log.chmod(0o444)
    gate = gate_for(pack_dir, shared_dir)
    decision, fail_closed, errors = unprivileged(
        lambda: summary(gate.check(act(2, kind="iam_grant")))
    )
    assert (decision, fail_closed) == ("deny", True)  # the rule's deny is kept, not loosened
    assert errors[0]["path"] == "gate.log"
    assert "Permission denied" in errors[0]["message"]


def test_a_full_disk_under_the_log_fails_closed_and_rolls_back_the_ledger(
    pack_dir, tmp_path, monkeypatch, ledger_url
) -> None:
    gate = gate_for(pack_dir, tmp_path, ledger=ledger_url)
    assert gate.check(act(1)).decision == "allow"

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(log_module.os, "write", full)
    verdict = gate.check(act(2))
    monkeypatch.undo()
    assert_failed_closed(verdict, "log", "No space left on device")
    assert held(ledger_url) == 1  # the unlogged decision did not reach the ledger
    assert gate.check(act(3)).usage == {"spend_day": 10}


class FullAtCommit:
    """A ledger connection whose disk fills up at ``COMMIT``: every statement before works."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_ledger_commit_that_fails_is_logged_once_as_the_fail_closed_verdict(
    pack_dir, tmp_path
) -> None:
    gate = gate_for(pack_dir, tmp_path)
    given = [gate.check(act(n)) for n in range(3)]
    assert isinstance(gate.ledger, SqliteLedger)
    conn = gate.ledger._connect()
    gate.ledger._local.conn = FullAtCommit(conn)
    refused = [gate.check(act(n)) for n in range(3, 33)]
    gate.ledger._local.conn = conn
    for verdict in refused:
        assert_failed_closed(verdict, "ledger", "database or disk is full")
    given += refused
    decisions = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    # one entry per check, holding the decision its caller received
    assert [(e.id, e.body["verdict"]["decision"]) for e in decisions] == [
        (v.decision_id, v.decision) for v in given
    ]
    assert [e.body["verdict"]["fail_closed"] for e in decisions] == [False] * 3 + [True] * 30
    stats = log_stats(tmp_path / "decisions.jsonl")
    assert stats.decisions == 33 and stats.fail_closed == 30
    assert stats.by_verdict["allow"] == 3 and stats.by_verdict["require_approval"] == 30
    with SqliteLedger(tmp_path / "ledger.db").session() as session:
        assert session.count() == 3
    assert gate.check(act(40)).usage == {"spend_day": 30}


def test_a_reviewed_case_whose_commit_fails_is_logged_once_as_the_fail_closed_verdict(
    pack_dir, tmp_path
) -> None:
    gate: Gate | None = None

    def judge(request: ReviewRequest) -> ReviewAnswer:
        assert gate is not None and isinstance(gate.ledger, SqliteLedger)
        gate.ledger._local.conn = FullAtCommit(gate.ledger._connect())  # full from now on
        return ReviewAnswer("allow", "fine")

    gate = gate_for(pack_dir, tmp_path, reviewers=[FunctionReviewer("t", judge)])
    verdict = gate.check(act(1, cost={"estimated_usd": 500}))  # 500 per line: escalate
    assert_failed_closed(verdict, "ledger", "database or disk is full")
    assert verdict.reviews[0]["decision"] == "allow"
    decisions = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    assert [(e.id, e.body["verdict"]["decision"]) for e in decisions] == [
        (verdict.decision_id, "require_approval")
    ]


def test_a_re_check_the_log_cannot_take_gives_the_ledger_its_earlier_row_back(
    pack_dir, tmp_path, monkeypatch, ledger_url
) -> None:
    gate = gate_for(pack_dir, tmp_path, ledger=ledger_url)
    assert gate.check(act(1)).decision == "allow"

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(log_module.os, "write", full)
    verdict = gate.check(act(1))  # the same action again: its row would replace the first
    monkeypatch.undo()
    assert_failed_closed(verdict, "log", "No space left on device")
    assert held(ledger_url) == 1
    assert gate.check(act(2)).usage == {"spend_day": 10}  # the first row counts again
    other = gate_for(pack_dir, tmp_path, ledger=ledger_url)  # and for a gate reading it cold
    assert other.check(act(3)).usage == {"spend_day": 20}


def test_an_outcome_that_cannot_be_recorded_does_not_fail_the_finished_run(
    pack_dir, tmp_path, monkeypatch
) -> None:
    gate = gate_for(pack_dir, tmp_path)
    with gate.enforce(act()) as run:

        def full(fd: int, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(log_module.os, "write", full)
    assert run.faults and "No space left on device" in run.faults[0]


def test_a_log_fsync_that_fails_leaves_no_entry_for_the_refused_decision(
    pack_dir, tmp_path, monkeypatch, ledger_url
) -> None:
    gate = gate_for(pack_dir, tmp_path, ledger=ledger_url)
    first = gate.check(act(1))
    assert first.decision == "allow"

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(log_module.os, "fsync", broken)
    verdict = gate.check(act(2))  # the line reaches the file, its fsync fails
    monkeypatch.undo()
    assert_failed_closed(verdict, "log", "Input/output error")
    assert held(ledger_url) == 1  # the row was released
    decisions = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    assert [e.id for e in decisions] == [first.decision_id]  # none for what did not take effect
    third = gate.check(act(3))
    assert third.usage == {"spend_day": 10}
    gate.close()
    decisions = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    assert [e.id for e in decisions] == [first.decision_id, third.decision_id]
    stats = log_stats(tmp_path / "decisions.jsonl")
    assert stats.decisions == 2 and stats.by_verdict["allow"] == 2
