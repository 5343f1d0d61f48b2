"""Time one decision of the default pack on the in-process Rego engine (regopy).

Run by hand, not in CI::

    python benchmarks/bench_rego.py
    python benchmarks/bench_rego.py --pack policy_packs/change-tickets --rounds 5

Each input is a fixture (``fixtures/actions/*.yaml``) as ``{action, context, usage}``.
For both entrypoints, ``checked`` (what ``load_pack(..., engine="rego")`` queries after
the pack's own validator) and ``decision`` (the schema checks in Rego too, as an OPA
server runs it), it times ``RegopyEngine.decide`` with ``perf_counter_ns`` after a
warm-up round and prints the median and p90 microseconds per decision, input setting
included, and the median over fixtures of each one's fastest round: on a shared machine
the other processes slow some rounds, rarely all of them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

# This checkout's aigre_policy, not an installed copy that may be older.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aigre_policy import load_pack  # noqa: E402
from aigre_policy.rego.attach import rego_program  # noqa: E402
from aigre_policy.rego.engine import RegopyEngine  # noqa: E402


def fixture_documents() -> list[dict]:
    documents = []
    for path in sorted((REPO / "fixtures" / "actions").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        documents.append(
            {
                "action": data["action"],
                "context": data.get("context") or {},
                "usage": data.get("usage") or {},
            }
        )
    return documents


def time_engine(engine: RegopyEngine, documents: list[dict], rounds: int) -> list[list[float]]:
    """Microseconds per decision, one list per fixture (one entry per round)."""
    for document in documents:  # warm-up
        engine.decide(document)
    timings: list[list[float]] = [[] for _ in documents]
    for _ in range(rounds):
        for index, document in enumerate(documents):
            started = time.perf_counter_ns()
            engine.decide(document)
            timings[index].append((time.perf_counter_ns() - started) / 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default=str(REPO / "policy_packs" / "aigre-baseline"))
    parser.add_argument("--rounds", type=int, default=3, help="passes over the fixtures")
    args = parser.parse_args(argv)
    program = rego_program(load_pack(args.pack))
    documents = fixture_documents()
    print(f"pack {args.pack}: {len(documents)} fixtures x {args.rounds} rounds")
    print(f"{'entrypoint':<10} {'median us':>10} {'p90 us':>10} {'best us':>10}")
    for name, in_rego in (("checked", False), ("decision", True)):
        per_fixture = time_engine(
            RegopyEngine(program, validate_in_rego=in_rego), documents, args.rounds
        )
        timings = [t for fixture in per_fixture for t in fixture]
        p90 = statistics.quantiles(timings, n=10)[-1]
        best = statistics.median(min(fixture) for fixture in per_fixture)
        print(f"{name:<10} {statistics.median(timings):>10.0f} {p90:>10.0f} {best:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
