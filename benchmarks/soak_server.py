"""A soak of ``aigre-policy serve`` on SQLite: many checks, no log entry lost, totals exact.

Run by hand, not in CI::

    python benchmarks/soak_server.py                  # 100,000 checks
    python benchmarks/soak_server.py --checks 50000 --minutes 10

It starts one ``aigre-policy serve`` process (127.0.0.1, a free port) on a fresh SQLite
ledger with a decision log synced per entry, and posts ``--checks`` actions (0.5 USD
each) to ``/v1/check`` from ``--clients`` keep-alive client threads against one budget
that half of them fill (``--minutes`` stops the clients early; the checks below then
hold for those answered). Every ``--progress`` answers it prints the rate of that stretch
and the server's resident memory, so a slowdown or a leak over the run shows.

At the end (``tests/replica_fleet.settle``): every answer a 200 that did not fail
closed; admitted spend never over the budget, and exactly it when demand exceeds it;
the ledger, read directly, holds one current row per answered check, the one the client
received, with the allowed spend equal to what was admitted; the log holds exactly one
``decision`` entry per answer (none lost, none extra) and its chain verifies.

What it flatters: loopback clients; one small action with one usage declaration;
anonymous callers. The clients share the machine's CPUs with the server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent.parent), str(Path(__file__).parent.parent / "tests")]

from budget_race import POLICIES, race_action  # noqa: E402
from replica_fleet import Answer, drive, replicas, settle  # noqa: E402

COST = 0.5


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--minutes", type=float, help="stop sending after this long")
    parser.add_argument("--progress", type=int, default=5000, help="a line every N answers")
    args = parser.parse_args()
    budget = args.checks * COST / 2
    with tempfile.TemporaryDirectory(prefix="aigre-soak-") as scratch:
        root = Path(scratch)
        pack = root / "pack"
        (pack / "policies").mkdir(parents=True)
        (pack / "pack.yaml").write_text(
            'name: soak\nversion: "1.0.0"\ndefault: allow\nfail_closed: deny\n'
        )
        (pack / "policies" / "main.aigre").write_text(POLICIES.format(budget=budget))
        ledger = f"sqlite:///{root / 'ledger.db'}"
        actions = [race_action(n % args.clients, n, COST) for n in range(args.checks)]
        stop = threading.Event()
        with replicas(str(pack), ledger, [root / "decisions.jsonl"]) as fleet:
            pid = fleet[0].process.pid
            rss = [_rss_mib(pid)]
            rates: list[float] = []
            done = [0]
            guard = threading.Lock()
            began = time.perf_counter()
            mark = [began]

            def answered(_answer: Answer) -> None:
                with guard:
                    done[0] += 1
                    now = time.perf_counter()
                    if args.minutes and now - began > args.minutes * 60:
                        stop.set()
                    if done[0] % args.progress == 0:
                        rates.append(args.progress / (now - mark[0]))
                        mark[0] = now
                        rss.append(_rss_mib(pid))
                        print(
                            f"  {done[0]:>7} / {args.checks} answered, {rates[-1]:.0f}/s"
                            f" this stretch, server RSS {rss[-1]:.0f} MiB",
                            flush=True,
                        )

            result = drive([fleet[0].url], actions, args.clients, answered, stop)
            answered_checks = len(result.answers)
            started_verify = time.perf_counter()
            settled = settle(
                result,
                actions=answered_checks,
                cost=COST,
                budget=budget,
                ledger=ledger,
                fleet=fleet,
            )
            verify_seconds = time.perf_counter() - started_verify
        stretch = f"; first stretch {rates[0]:.0f}/s, last {rates[-1]:.0f}/s" if rates else ""
        print(
            f"\n{answered_checks} checks from {args.clients} clients in {result.seconds:.1f} s:"
            f" {result.per_second:.0f} checks/s, p50 {result.quantile_ms(50):.1f} ms,"
            f" p99 {result.quantile_ms(99):.1f} ms{stretch}"
        )
        print(f"server RSS {rss[0]:.0f} MiB at the start, {rss[-1]:.0f} MiB at the end")
        print(
            f"admitted {settled.admitted} = {settled.spend:g} USD of a {budget:g} USD budget;"
            f" ledger: {settled.current} current rows, allowed spend {settled.spend:g} USD: exact"
        )
        print(
            f"log: {settled.logged[0]} decision entries for {answered_checks} answers,"
            f" chain {settled.verified[0]} (checked in {verify_seconds:.1f} s)"
        )


if __name__ == "__main__":
    main()
