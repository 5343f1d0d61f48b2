"""Time the gate's overhead per check beyond the pack's own ``evaluate``.

Run by hand, not in CI::

    python benchmarks/bench_gate.py
    python benchmarks/bench_gate.py --checks 2000 --history 5000
    python benchmarks/bench_gate.py --only "log without fsync" --rounds 3

With the default pack and one proposed action (an LLM rollback that is allowed),
it times ``pack.evaluate`` with precomputed usage values, then ``gate.check``
in four set-ups: an in-memory ledger and no log; a SQLite file ledger; the
file ledger and a log without fsync; the file ledger and a log that fsyncs
every entry (the default). Before timing, ``--history`` past actions are
written into each ledger inside the month's usage window (one action every
100 s of a fake clock, which keeps the agent rate below the default pack's
limit), so the month's spend covers them all. It prints the median, p10 and
p90 microseconds per check, the overhead over ``evaluate`` (median minus the
median of ``evaluate``) and the ratio, and the same median and overhead in CPU
time (the process's own, which a busy machine barely moves); then ``DecisionLog.append`` alone with
a decision entry, without and with fsync, the part of the logged set-ups the
log itself costs. ``--only`` keeps the set-ups whose name holds a text;
``--rounds`` times each set-up that many times, each on a fresh ledger, and
prints every round (on a shared machine the spread between rounds is the
noise; compare the lowest medians, or the p10s).

The gate attests a constant actor (``identity=ACTOR``), as an embedding tool
with an authenticated caller would; the pack reads it as ``context.actor``.

What it flatters: one process and one thread, so the write lock is never
waited for and the log is never found rotated or written by another; one small
action of one kind, so the contributions and the log entry are small and the
statement cache and the in-memory usage window are always warm; no approvals
held, so the ledger's read is one row; a new action digest each time, so no
earlier row is superseded; a pack without ``sensitive`` fields, so the log
takes the decision body the gate already encoded (a pack that redacts
re-encodes it); a fake clock inside one month, so the window never reloads;
``synchronous=normal``, so no commit waits for the disk, and the median hides
the WAL checkpoints (every ~1000 pages) that land in the p90. CPU time counts
the kernel's share of this process (the ledger's and the log's writes into the
page cache), not the disk's.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aigre_policy import Gate, load_pack  # noqa: E402
from aigre_policy.gate import FakeClock  # noqa: E402
from aigre_policy.gate.clock import iso  # noqa: E402
from aigre_policy.gate.log import DecisionLog  # noqa: E402

PACK = REPO / "policy_packs" / "aigre-baseline"
NOW = "2025-03-11T14:03:00Z"
START = "2025-03-02T00:00:00Z"  # history and timed checks stay inside March
STEP_SECONDS = 100  # one check every 100 s: under the baseline's 40 agent actions an hour
# the authenticated actor the gate attests as ``context.actor`` (the proposal's is a claim)
ACTOR = {"kind": "llm", "id": "agent-remediator", "trust": 3}


def proposal(n: int, requested_at: str = NOW) -> dict[str, Any]:
    return {
        "id": f"act-{n}",
        "kind": "rollback",
        "target": "checkout-api",
        "environment": "production",
        "actor": {"kind": "llm", "id": "agent-remediator", "trust": 3},
        "change": {"type": "code", "lines": 0},
        "reversible": True,
        "rollback": {"plan": "redeploy v2.41.0", "tested": True},
        "blast_radius": {"users_share": 0.18, "services": ["checkout-api"]},
        "cost": {"estimated_usd": 0},
        "justification": {"signal": "slo_burn", "ref": "ALERT-20931"},
        "requested_at": requested_at,
    }


def timed(call: Callable[[int], Any], count: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU microseconds of each call (CPU time: this process's own, in user
    and kernel mode, so other processes on a busy machine barely move it)."""
    for i in range(min(200, count)):  # warm-up
        call(-1 - i)
    wall, cpu = [], []
    for i in range(count):
        started, started_cpu = time.perf_counter_ns(), time.process_time_ns()
        call(i)
        cpu.append((time.process_time_ns() - started_cpu) / 1000)
        wall.append((time.perf_counter_ns() - started) / 1000)
    return wall, cpu


def gate_setup(workdir: Path, name: str, clock: FakeClock) -> Gate:
    workdir.mkdir(parents=True, exist_ok=True)
    if name == "memory ledger, no log":
        return Gate.from_pack(PACK, ledger="sqlite:///:memory:", clock=clock, identity=ACTOR)
    ledger = f"sqlite:///{workdir / (name.replace(' ', '_') + '.db')}"
    if name == "file ledger, no log":
        return Gate.from_pack(PACK, ledger=ledger, clock=clock, identity=ACTOR)
    fsync = "none" if "without fsync" in name else "entry"
    log = DecisionLog(workdir / (name.replace(" ", "_") + ".jsonl"), fsync=fsync, clock=clock)
    return Gate.from_pack(PACK, ledger=ledger, log=log, clock=clock, identity=ACTOR)


SETUPS = (
    "memory ledger, no log",
    "file ledger, no log",
    "file ledger, log without fsync",
    "file ledger, log with fsync per entry",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="timed checks per set-up")
    parser.add_argument("--history", type=int, default=1000, help="past actions in the ledger")
    parser.add_argument("--only", default="", help="only set-ups whose name holds this text")
    parser.add_argument("--rounds", type=int, default=1, help="times each set-up, fresh each time")
    args = parser.parse_args(argv)

    pack = load_pack(PACK)
    usage = {
        "spend_this_month_usd": 1234.5,
        "agent_actions_last_hour": 3,
        "restarts_of_target_last_hour": 0,
    }
    context = {"now": NOW, "actor": ACTOR}
    assert pack.evaluate(proposal(0), context, usage).decision == "allow"
    base, base_cpu = timed(lambda i: pack.evaluate(proposal(i), context, usage), args.checks)
    base_median, base_cpu_median = statistics.median(base), statistics.median(base_cpu)

    print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor()}")
    print(
        f"default pack, {args.checks} checks per set-up, {args.history} past actions in the ledger"
    )
    print(
        f"{'set-up':40} {'median µs':>10} {'p10 µs':>8} {'p90 µs':>10}"
        f" {'overhead µs':>12} {'ratio':>7} {'cpu µs':>8} {'cpu overhead':>13}"
    )
    row = "{:40} {:10.1f} {:8.1f} {:10.1f} {:>12} {:>7} {:8.1f} {:>13}"
    print(
        row.format(
            "pack.evaluate",
            base_median,
            _p10(base),
            _p90(base),
            "-",
            "1.0x",
            base_cpu_median,
            "-",
        )
    )
    setups = [(name, n) for name in SETUPS if args.only in name for n in range(args.rounds)]
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        for name, round_ in setups:
            clock = FakeClock(START)
            gate = gate_setup(Path(tmp) / str(round_), name, clock)

            def check(n: int, gate: Gate = gate, clock: FakeClock = clock) -> Any:
                now = clock.advance(seconds=STEP_SECONDS)
                return gate.check(proposal(n, iso(now)))

            for i in range(args.history):
                check(1_000_000 + i)
            verdict = check(2_000_000)
            assert verdict.decision == "allow" and not verdict.fail_closed, verdict.errors
            samples, cpu = timed(check, args.checks)
            assert clock().month == 3, "the run left the month: lower --history or --checks"
            median, cpu_median = statistics.median(samples), statistics.median(cpu)
            print(
                row.format(
                    name,
                    median,
                    _p10(samples),
                    _p90(samples),
                    f"{median - base_median:.1f}",
                    f"{median / base_median:.1f}x",
                    cpu_median,
                    f"{cpu_median - base_cpu_median:.1f}",
                )
            )
            gate.close()
        body = {"verdict": verdict.to_dict(), "input": verdict.input}
        synced = not args.only or args.only in "fsync per entry"
        for fsync in ("none", "entry") if synced else ("none",):
            log = DecisionLog(Path(tmp) / f"alone-{fsync}.jsonl", fsync=fsync)
            samples, cpu = timed(lambda i, log=log: log.append("decision", body), args.checks)
            log.close()
            median = statistics.median(samples)
            name = f"log append alone, {'no fsync' if fsync == 'none' else 'fsync'}"
            print(
                row.format(
                    name,
                    median,
                    _p10(samples),
                    _p90(samples),
                    "-",
                    "-",
                    statistics.median(cpu),
                    "-",
                )
            )
    return 0


def _p10(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[0]


def _p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


if __name__ == "__main__":
    sys.exit(main())
