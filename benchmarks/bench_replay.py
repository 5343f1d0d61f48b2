"""Write a large decision log, then time ``replay`` over it.

Run by hand, not in CI::

    python benchmarks/bench_replay.py                       # 1,000,000 entries, jobs 1 and 2
    python benchmarks/bench_replay.py --entries 100000 --jobs 1,2,4 --keep /tmp/big.jsonl

The log is made of the labelled fixtures (``fixtures/actions/*.yaml``) judged by
the default pack, cycled to ``--entries`` decisions with fresh decision ids, and
written through ``DecisionLog`` (``fsync="none"``), so the append rate is measured
too. The candidate is the default pack with a lower per-action cost cap, so some
decisions change. For each ``--jobs`` value it prints decisions per second and
the equivalent command line.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# This checkout's aigre_policy, not an installed copy that may be older.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aigre_policy import load_pack  # noqa: E402
from aigre_policy.gate.log import DecisionLog  # noqa: E402
from aigre_policy.gate.replay import replay_log  # noqa: E402
from aigre_policy.yamlio import read_document  # noqa: E402

DEFAULT_PACK = REPO / "policy_packs" / "aigre-baseline"
FIXTURES = REPO / "fixtures" / "actions"
CANDIDATE_OVERRIDE = {"cost": {"max_action_usd": 100}}


def fixture_inputs() -> list[dict]:
    inputs = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        doc, _ = read_document(path)
        if doc is None or not isinstance(doc.data, dict) or "action" not in doc.data:
            continue
        data = doc.data
        inputs.append(
            {
                "action": data["action"],
                "context": data.get("context") or {},
                "usage": data.get("usage") or {},
            }
        )
    return inputs


def write_log(path: Path, entries: int) -> float:
    """Append ``entries`` decisions; returns the seconds it took."""
    pack = load_pack(DEFAULT_PACK)
    bodies = []
    for document in fixture_inputs():
        verdict = pack.evaluate(document["action"], document["context"], document["usage"])
        bodies.append({"verdict": verdict.to_dict(), "input": document})
    started = time.perf_counter()
    with DecisionLog(path, fsync="none") as log:
        for i in range(entries):
            template = bodies[i % len(bodies)]
            verdict = {**template["verdict"], "decision_id": f"bench-{i:08d}"}
            log.append("decision", {"verdict": verdict, "input": template["input"]})
            if i and i % 100_000 == 0:
                print(f"  ... {i:,} written", flush=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--jobs", default="1,2", help="comma-separated worker counts to time")
    parser.add_argument("--keep", metavar="PATH", help="write the log here and keep it")
    args = parser.parse_args()
    jobs = [int(j) for j in args.jobs.split(",")]

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.keep) if args.keep else Path(scratch) / "decisions.jsonl"
        if path.exists():
            path.unlink()
        print(f"writing {args.entries:,} decisions to {path}")
        seconds = write_log(path, args.entries)
        size = path.stat().st_size
        print(
            f"wrote {size / 1e6:,.1f} MB in {seconds:.1f} s: "
            f"{args.entries / seconds:,.0f} appends/s (fsync none)"
        )
        for count in jobs:
            report = replay_log(DEFAULT_PACK, path, envelopes=CANDIDATE_OVERRIDE, jobs=count)
            print(
                f"replay --jobs {count}: {report.replayed:,} decisions in "
                f"{report.elapsed_seconds:.1f} s = {report.rate:,.0f} decisions/s; "
                f"changed {report.changed:,} ({report.stricter:,} stricter, "
                f"{report.looser:,} looser)"
            )
            print(
                f"  aigre-policy replay {DEFAULT_PACK.relative_to(REPO)} --log {path} "
                f"--set cost.max_action_usd=100 --jobs {count}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
