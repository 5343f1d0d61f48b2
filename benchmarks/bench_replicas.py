"""Server replicas racing one budget on one PostgreSQL ledger: checks/s, latency, exactness.

Run by hand, not in CI::

    python benchmarks/bench_replicas.py                       # 3 replicas, 20,000 checks
    python benchmarks/bench_replicas.py --checks 5000 --clients 12 --kill-after 1000

It starts ``--replicas`` ``aigre-policy serve`` processes (127.0.0.1, a free port each,
each with its own decision log, synced per entry) on one PostgreSQL ledger, and posts
``--checks`` actions (0.5 USD each) to ``/v1/check`` from ``--clients`` keep-alive
client threads, round-robin over the replicas, against one budget that half the demand
fills. ``--kill-after N`` kills the first replica with SIGKILL once N checks are
answered; its clients send the check they were sending again to the next replica.

Then, as ``tests/test_server_replicas.py`` does (``tests/replica_fleet.settle``), it
checks that the admitted spend is exactly the budget, that the ledger (read directly)
holds one current row per answered check with the allowed spend equal to what was
admitted, that every answer is in the log of the replica that gave it and that every
log verifies; and prints checks/s, p50/p99 and those figures.

PostgreSQL: the server named by ``AIGRE_TEST_POSTGRES_URL``, else a throwaway cluster
started with initdb/pg_ctl (``tests/pg_throwaway.py``; settings for tests: fsync off),
in a fresh schema. What it flatters: one machine, so every HTTP and PostgreSQL round
trip is a loopback one and no network partitions; PostgreSQL without fsync; small
actions and one usage declaration; anonymous callers (no key or JWT to check). What it
does not flatter: the replicas, the clients and PostgreSQL share the same two CPUs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent.parent), str(Path(__file__).parent.parent / "tests")]

from budget_race import POLICIES, race_action  # noqa: E402
from postgres_cluster import Cluster, Server, with_options  # noqa: E402
from replica_fleet import Answer, drive, replicas, settle  # noqa: E402

COST = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--kill-after", type=int, metavar="N", help="SIGKILL replica 0 then")
    parser.add_argument("--progress", type=int, default=1000, help="a line every N answers")
    args = parser.parse_args()
    given = os.environ.get("AIGRE_TEST_POSTGRES_URL")
    cluster = None if given else Cluster.start()
    server = Server(given or cluster.url, cluster)  # type: ignore[union-attr]
    budget = args.checks * COST / 2
    try:
        base = server.create_ledger()
        with tempfile.TemporaryDirectory(prefix="aigre-replicas-") as scratch:
            root = Path(scratch)
            pack = root / "pack"
            (pack / "policies").mkdir(parents=True)
            (pack / "pack.yaml").write_text(
                'name: race\nversion: "1.0.0"\ndefault: allow\nfail_closed: deny\n'
            )
            (pack / "policies" / "main.aigre").write_text(POLICIES.format(budget=budget))
            ledger = with_options(base, timeout=60, pool_max=2)
            logs = [root / f"replica-{i}.jsonl" for i in range(args.replicas)]
            actions = [race_action(n % args.clients, n, COST) for n in range(args.checks)]
            with replicas(str(pack), ledger, logs) as fleet:
                done = [0]
                guard = threading.Lock()
                began = time.perf_counter()

                def answered(_answer: Answer) -> None:
                    with guard:
                        done[0] += 1
                        n = done[0]
                        if args.kill_after and n == args.kill_after:
                            fleet[0].kill()
                            print(f"  killed replica 0 (SIGKILL) after {n} answers", flush=True)
                        if n % args.progress == 0:
                            rate = n / (time.perf_counter() - began)
                            print(f"  {n:>6} / {args.checks} answered, {rate:.0f}/s", flush=True)

                result = drive([r.url for r in fleet], actions, args.clients, answered)
                settled = settle(
                    result,
                    actions=args.checks,
                    cost=COST,
                    budget=budget,
                    ledger=base,
                    fleet=fleet,
                    killed=[0] if args.kill_after else [],
                )
            per = result.by_replica()
            print(
                f"\n{args.replicas} replicas, {args.clients} clients, {len(result.answers)} checks"
                f" in {result.seconds:.1f} s: {result.per_second:.0f} checks/s,"
                f" p50 {result.quantile_ms(50):.1f} ms, p99 {result.quantile_ms(99):.1f} ms"
            )
            print(
                f"admitted {settled.admitted} checks = {settled.spend:g} USD of a"
                f" {budget:g} USD budget; ledger: {settled.current} current rows"
                f" ({settled.rows} in all; {settled.resent} checks sent again), allowed"
                f" spend {settled.spend:g} USD: exact"
            )
            print("replica  answered  log entries  log")
            for replica in fleet:
                print(
                    f"{replica.index:>7}  {len(per.get(replica.index, [])):>8}"
                    f"  {settled.logged[replica.index]:>11}  {settled.verified[replica.index]}"
                )
        server.drop_ledger(base)
    finally:
        server.close()
        if cluster is not None:
            cluster.stop("immediate")
            cluster.remove()


if __name__ == "__main__":
    main()
