"""Time the solver on the default pack: prove its invariants, diff it against a copy with one
threshold moved, and ask why-not (allow) of every fixture; then check what the solver calls
equivalent on 10 000 random inputs.

Run by hand, not in CI::

    python benchmarks/bench_prove.py
    python benchmarks/bench_prove.py --samples 10000 --timeout 10

Each figure is wall time in this process after the pack is loaded. The goal is each under
5 s on the machine it runs on. See README.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

# This checkout's aigre_policy, not an installed copy that may be older.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from conftest import write_pack  # noqa: E402
from solver_inputs import disagreements  # noqa: E402
from test_solver_soundness import MUTATED  # noqa: E402

from aigre_policy import load_pack  # noqa: E402
from aigre_policy.solver.diff import diff_packs  # noqa: E402
from aigre_policy.solver.prove import prove_pack  # noqa: E402
from aigre_policy.solver.whynot import counterfactual  # noqa: E402
from aigre_policy.testing.mutation import MutantEvaluator, mutants  # noqa: E402
from aigre_policy.testing.runner import PackEvaluator  # noqa: E402

BASELINE = REPO / "policy_packs" / "aigre-baseline"
FIXTURES = REPO / "fixtures" / "actions"
GOAL_S = 5.0


def moved_copy(where: Path, envelope: str, name: str, value: float) -> Path:
    root = where / "moved"
    shutil.copytree(BASELINE / "policies", root / "policies")
    manifest = yaml.safe_load((BASELINE / "pack.yaml").read_text(encoding="utf-8"))
    manifest["envelopes"] = {envelope: {name: value}}
    (root / "pack.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return root


def mark(seconds: float) -> str:
    return "ok" if seconds < GOAL_S else "OVER"


class Clock:
    """Wall and CPU seconds of a step: on a shared machine the CPU time is the steadier."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:6.2f} s ({self.cpu:5.2f} s CPU)  {mark(self.cpu)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    pack = load_pack(BASELINE)

    with Clock() as proving:
        report = prove_pack(pack.checked, pack, timeout_s=args.timeout)
    statuses = [r.status for r in report.results]
    print(
        f"prove    {proving}  {len(statuses)} invariants: "
        + ", ".join(f"{statuses.count(s)} {s}" for s in ("proved", "refuted", "unknown"))
    )

    with tempfile.TemporaryDirectory() as tmp:
        value = pack.envelopes["cost"]["max_action_usd"]
        moved = load_pack(moved_copy(Path(tmp), "cost", "max_action_usd", value + 50))
        with Clock() as diffing:
            diff = diff_packs(pack.checked, pack, moved.checked, moved, timeout_s=args.timeout)
        classes = ", ".join(f"{c.old}->{c.new}" for c in diff.changes)
        print(f"diff     {diffing}  {diff.status}: {classes}")
        with Clock() as itself:
            same = diff_packs(pack.checked, pack, pack.checked, pack, timeout_s=args.timeout)
        print(f"diff =   {itself}  {same.status} (the pack and itself)")

        times, outcomes = [], {}
        for fixture in sorted(FIXTURES.glob("*.yaml")):
            case = yaml.safe_load(fixture.read_text(encoding="utf-8"))
            if not isinstance(case, dict) or not isinstance(case.get("action"), dict):
                continue
            with Clock() as one:
                answer = counterfactual(
                    pack,
                    case["action"],
                    case.get("context"),
                    case.get("usage"),
                    timeout_s=args.timeout,
                )
            times.append((one.cpu, one.wall))
            outcomes[answer.status] = outcomes.get(answer.status, 0) + 1
        cpu, wall = max(times)
        print(
            f"why-not  {wall:6.2f} s ({cpu:5.2f} s CPU)  {mark(cpu)}  slowest of {len(times)} "
            f"fixtures (median {statistics.median(c for c, _ in times):.2f} s CPU, "
            f"total {sum(w for _, w in times):.1f} s): "
            + ", ".join(f"{n} {s}" for s, n in sorted(outcomes.items()))
        )

        found = disagreements(pack, pack, args.samples) if same.status == "equivalent" else []
        print(f"sound    the pack and itself: {len(found)} of {args.samples} inputs disagree")
        mutated = load_pack(write_pack(Path(tmp) / "guard", MUTATED))
        base = PackEvaluator(mutated)
        equivalent = disagreeing = 0
        with Clock() as checking:
            for mutant in mutants(mutated):
                other = MutantEvaluator(base, mutated, mutant.replacement).pack_for(None)
                verdict = diff_packs(mutated.checked, mutated, other.checked, other)
                if verdict.status == "equivalent":
                    equivalent += 1
                    disagreeing += bool(disagreements(mutated, other, args.samples))
        print(
            f"sound    {checking.wall:6.2f} s  {equivalent} mutants called equivalent, "
            f"{disagreeing} of them disagree on {args.samples} random inputs"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
