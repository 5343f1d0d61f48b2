"""Hosts racing one budget: checks per second on a SQLite and on a PostgreSQL ledger.

Run by hand, not in CI::

    python benchmarks/bench_ledger_race.py
    python benchmarks/bench_ledger_race.py --checks 20000 --processes 3 --stores postgresql

Each of ``--processes`` processes checks its share of ``--checks`` actions (0.5 USD
each) through a gate of its own (its own ledger connection or pool, its own decision
log, fsync per entry unless ``--no-fsync``) against one budget that half the demand
fills. Then, as the tests do, it checks that the admitted spend is exactly the budget,
that the ledger holds one row per check with the allowed spend equal to what was
admitted, and that every process's log verifies; and prints checks/s per store.

PostgreSQL: the server named by ``AIGRE_TEST_POSTGRES_URL``, else a throwaway cluster
started with initdb/pg_ctl (``tests/postgres_cluster.py``; settings for tests: fsync
off), in a fresh schema. SQLite: a file in a temporary directory (WAL, synchronous
normal). What it flatters: one machine, so a PostgreSQL round trip is a loopback one;
small actions; one usage declaration.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent.parent), str(Path(__file__).parent.parent / "tests")]

from budget_race import POLICIES, gate_worker, race, settle  # noqa: E402
from postgres_cluster import Cluster, Server, with_options  # noqa: E402

COST = 0.5


def run(store: str, processes: int, checks: int, fsync: bool, server: Server | None) -> None:
    each = checks // processes
    budget = each * processes * COST / 2
    with tempfile.TemporaryDirectory(prefix="aigre-race-") as scratch:
        root = Path(scratch)
        pack = root / "pack"
        (pack / "policies").mkdir(parents=True)
        (pack / "pack.yaml").write_text(
            'name: race\nversion: "1.0.0"\ndefault: allow\nfail_closed: deny\n'
        )
        (pack / "policies" / "main.aigre").write_text(POLICIES.format(budget=budget))
        if store == "sqlite":
            ledger = f"sqlite:///{root / 'ledger.db'}"
        else:
            assert server is not None
            ledger = server.create_ledger()
        logs = [str(root / f"host-{i}.jsonl") for i in range(processes)]
        options = None if fsync else {"fsync": "none"}
        workers = [
            gate_worker(
                str(pack), with_options(ledger, timeout=60), logs[i], i, each, COST, options
            )
            for i in range(processes)
        ]
        result = race(workers, timeout=3600)
        settle(result, cost=COST, budget=budget, ledger=ledger, logs=logs)
        print(
            f"{store:<10} {processes} processes x {each} checks = {result.checks}: "
            f"{result.seconds:.1f} s, {result.per_second:.0f} checks/s; "
            f"admitted {result.counts.get('allow', 0)} ({budget:g} of {budget:g} USD); "
            "ledger totals exact; every log verifies"
        )
        if server is not None and store == "postgresql":
            server.drop_ledger(ledger)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--no-fsync", action="store_true", help="logs not synced per entry")
    args = parser.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    cluster = server = None
    if "postgresql" in stores:
        import os

        given = os.environ.get("AIGRE_TEST_POSTGRES_URL")
        if given:
            server = Server(given, None)
        else:
            cluster = Cluster.start()
            server = Server(cluster.url, cluster)
    try:
        for store in stores:
            run(store, args.processes, args.checks, not args.no_fsync, server)
    finally:
        if server is not None:
            server.close()
        if cluster is not None:
            cluster.stop("immediate")
            cluster.remove()


if __name__ == "__main__":
    main()
