"""Replicas of ``aigre-policy serve`` on one ledger, clients racing them, and what must hold.

``replicas(pack, ledger, logs)`` starts one ``aigre-policy serve`` process per log (on
127.0.0.1, a free port each, all on the one ledger URL) and stops them at the end.
``drive(urls, actions, clients)`` posts every action to ``/v1/check`` from ``clients``
threads, spread round-robin over the replicas as a load balancer would; a replica that
stops answering (connection refused or cut) is dropped by that client, and the check it
was sending is sent again to the next replica, as a load balancer's retry does. Sending
a check again is safe: the ledger keeps one current row per action digest, so the
second decision replaces whatever row the first left (``docs/gate.md``).

``settle(...)`` then checks what must hold: every answer a 200 with a decision that did
not fail closed; admitted spend never over the budget and, when demand exceeds it,
exactly the budget; the ledger's current rows exactly the answered checks (one per
action, the allowed spend equal to what was admitted); every answer in the log of the
replica that gave it; each log verifies.

Used by ``tests/test_server_replicas.py`` and ``benchmarks/bench_replicas.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 120.0  # a loaded machine compiles the pack slowly


@dataclass
class Replica:
    """One ``aigre-policy serve`` process: where it answers and what it writes."""

    index: int
    url: str
    log: Path
    process: subprocess.Popen[bytes]
    stderr: Path

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, no close; what a crash or an OOM kill leaves."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_replica(index: int, pack: str, ledger: str, log: Path, *extra: str) -> Replica:
    """``aigre-policy serve PACK --ledger LEDGER --log LOG`` on a free port (not yet ready)."""
    port = _free_port()
    command = [sys.executable, "-m", "aigre_policy.cli.main", "serve", pack]
    command += ["--ledger", ledger, "--log", str(log), "--host", "127.0.0.1"]
    command += ["--port", str(port), *extra]
    stderr = log.with_name(log.name + ".stderr")
    with stderr.open("wb") as sink:  # a file, not a pipe: a chatty server never blocks on it
        process = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    return Replica(index, f"http://127.0.0.1:{port}", log, process, stderr)


def wait_ready(replica: Replica, seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            tail = replica.stderr.read_text(errors="replace")[-2000:]
            code = replica.process.returncode
            raise RuntimeError(f"replica {replica.index} exited {code}: {tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"replica {replica.index} did not become ready at {replica.url}")


@contextlib.contextmanager
def replicas(pack: str, ledger: str, logs: Sequence[Path], *extra: str) -> Iterator[list[Replica]]:
    """One replica per log, all started before any is awaited (each compiles the pack)."""
    fleet: list[Replica] = []
    try:
        for index, log in enumerate(logs):
            fleet.append(start_replica(index, pack, ledger, Path(log), *extra))
        for replica in fleet:
            wait_ready(replica)
        yield fleet
    finally:
        for replica in fleet:
            replica.stop()


# -- the clients ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one check got: the action's id, who answered, the verdict, how long it took."""

    action_id: str
    replica: int
    status: int
    decision: str  # allow, deny, ..., or "fail_closed"
    decision_id: str
    seconds: float  # from the first send to the answer, retries included
    resent: int  # times the check was sent again after a replica stopped answering


# a replica that refuses the connection, or cuts it before answering, is gone for this client
GONE = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def client(
    urls: Sequence[str],
    actions: Sequence[dict[str, Any]],
    first: int,
    answered: Callable[[Answer], None] = lambda _answer: None,
    timeout: float = 120.0,
    stop: threading.Event | None = None,
) -> list[Answer]:
    """Post each action to ``/v1/check`` on the replicas in turn, starting at ``first``
    (until ``stop`` is set, when given)."""
    gone: set[int] = set()
    answers = []
    with httpx.Client(timeout=timeout) as http:
        turn = first
        for action in actions:
            if stop is not None and stop.is_set():
                break
            started = time.perf_counter()
            resent = 0
            while True:
                live = [i for i in range(len(urls)) if i not in gone]
                if not live:
                    raise RuntimeError("every replica stopped answering")
                replica = live[turn % len(live)]
                turn += 1
                try:
                    response = http.post(f"{urls[replica]}/v1/check", json=action)
                except GONE:
                    gone.add(replica)
                    resent += 1
                    continue
                break
            body = response.json() if response.status_code == 200 else {}
            decision = "fail_closed" if body.get("fail_closed") else str(body.get("decision"))
            answer = Answer(
                str(action["id"]),
                replica,
                response.status_code,
                decision,
                str(body.get("decision_id")),
                time.perf_counter() - started,
                resent,
            )
            answers.append(answer)
            answered(answer)
    return answers


@dataclass
class DriveResult:
    answers: list[Answer]
    seconds: float  # from the clients' start to the last answer
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return len(self.answers) / self.seconds if self.seconds else 0.0

    def quantile_ms(self, q: int) -> float:
        """The ``q``-th percentile of the checks' latency, in milliseconds."""
        cuts = statistics.quantiles([a.seconds for a in self.answers], n=100)
        return cuts[q - 1] * 1e3

    def by_replica(self) -> dict[int, list[Answer]]:
        found: dict[int, list[Answer]] = {}
        for answer in self.answers:
            found.setdefault(answer.replica, []).append(answer)
        return found


def drive(
    urls: Sequence[str],
    actions: Sequence[dict[str, Any]],
    clients: int,
    answered: Callable[[Answer], None] = lambda _answer: None,
    stop: threading.Event | None = None,
) -> DriveResult:
    """Post ``actions`` from ``clients`` threads at once (each a share, in turn over the
    replicas); ``answered`` is called (from the client threads) after each answer; once
    ``stop`` is set the clients send nothing more."""
    shares = [actions[i::clients] for i in range(clients)]
    results: list[list[Answer]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = client(urls, shares[i], i, answered, stop=stop)
        except BaseException as exc:  # reported below, never lost
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise AssertionError(f"a client failed: {type(errors[0]).__name__}: {errors[0]}")
    answers = [a for each in results for a in each]
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer.decision] = counts.get(answer.decision, 0) + 1
    return DriveResult(answers, seconds, counts)


# -- what must hold afterwards --------------------------------------------------------------


@dataclass(frozen=True)
class LedgerTotals:
    rows: int  # every row kept, superseded ones included
    current: dict[str, tuple[str, str, float]]  # action id -> (decision_id, decision, cost)

    @property
    def allowed_spend(self) -> float:
        return sum(cost for _, decision, cost in self.current.values() if decision == "allow")


def ledger_totals(ledger: str) -> LedgerTotals:
    """The ledger read directly from the database, not through a gate."""
    from postgres_cluster import run_sql

    (rows,) = run_sql(ledger, "SELECT count(*) FROM actions")[0]
    current: dict[str, tuple[str, str, float]] = {}
    for decision_id, decision, text in run_sql(
        ledger, "SELECT decision_id, decision, action FROM actions WHERE current"
    ):
        action = json.loads(text)
        current[action["id"]] = (decision_id, decision, action["cost"]["estimated_usd"])
    return LedgerTotals(int(rows), current)


def logged_decisions(log: Path) -> dict[str, str]:
    """decision_id -> decision of every ``decision`` entry of a log."""
    from aigre_policy.gate.log import read_log

    return {
        entry.id: entry.body["verdict"]["decision"]
        for entry in read_log(log)
        if entry.kind == "decision"
    }


@dataclass
class Settled:
    """The figures the checks below established, for a report."""

    admitted: int
    spend: float
    rows: int
    current: int
    resent: int
    logged: dict[int, int]  # replica -> decision entries in its log
    verified: dict[int, str]  # replica -> "ok" or what the report found


def settle(
    result: DriveResult,
    *,
    actions: int,
    cost: float,
    budget: float,
    ledger: str,
    fleet: Sequence[Replica],
    killed: Sequence[int] = (),
) -> Settled:
    """Assert what the fleet must leave behind; ``killed``: replicas stopped by SIGKILL."""
    from aigre_policy.gate.log import verify_log

    answers = result.answers
    assert len(answers) == actions, f"{len(answers)} answers for {actions} checks"
    assert {a.status for a in answers} == {200}, {a.status for a in answers}
    assert "fail_closed" not in result.counts, result.counts
    admitted = result.counts.get("allow", 0)
    assert admitted * cost <= budget, f"{admitted} admitted: {admitted * cost} of {budget}"
    if actions * cost >= budget:
        assert admitted * cost == budget, f"only {admitted * cost} of {budget} spent"

    # the ledger: one current row per check, the one whose answer the client received
    totals = ledger_totals(ledger)
    answered = {a.action_id: a for a in answers}
    assert len(answered) == actions, "an action was answered twice"
    assert set(totals.current) == set(answered), "current rows differ from the checks answered"
    for action_id, (decision_id, decision, _cost) in totals.current.items():
        answer = answered[action_id]
        assert (decision_id, decision) == (answer.decision_id, answer.decision), (
            f"{action_id}: the ledger holds {decision_id} {decision}, the client got "
            f"{answer.decision_id} {answer.decision}"
        )
    assert totals.allowed_spend == admitted * cost, (totals.allowed_spend, admitted * cost)
    resent = sum(a.resent for a in answers)
    # a row beyond the current ones: a check a killed replica committed but never answered
    assert totals.rows - len(totals.current) <= resent, (totals.rows, len(totals.current), resent)

    # every replica's log: each of its answers in it, and the chain verifies
    logged: dict[int, int] = {}
    verified: dict[int, str] = {}
    by_replica = result.by_replica()
    for replica in fleet:
        report = verify_log(replica.log)
        if replica.index in killed:
            # SIGKILL may stop a write mid-line: only the very last line may be torn
            assert report.ok or report.only_torn, report
        else:
            assert report.ok, report
        verified[replica.index] = "ok" if report.ok else "torn last line"
        entries = logged_decisions(replica.log)
        logged[replica.index] = len(entries)
        mine = by_replica.get(replica.index, [])
        for answer in mine:
            assert entries.get(answer.decision_id) == answer.decision, (
                f"replica {replica.index}: {answer.decision_id} answered but not logged"
            )
        if replica.index not in killed:
            # a live replica logged exactly what it answered; a killed one may have logged
            # checks whose answers it never sent
            assert len(entries) == len(mine), (replica.index, len(entries), len(mine))
    spend = admitted * cost
    return Settled(admitted, spend, totals.rows, len(totals.current), resent, logged, verified)
