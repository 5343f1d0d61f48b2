"""Time one decision per engine: aigre's evaluator against a Python floor, regopy and cedarpy.

Run by hand, not in CI::

    python benchmarks/bench_eval.py
    python benchmarks/bench_eval.py --sizes 10,100 --engines native,floor --inputs 500

For each workload (a generated pack of N rules whose rules aigre can index, the same
rules written so that it cannot, then the default pack on its fixtures) it checks that
every engine reaches the same decision on every input, then times each call with
``perf_counter_ns`` (warm-up first, ``gc`` left on) and prints the median and p90
microseconds per decision, the ratio to the Python floor, to the hand-indexed floor and
to ``Pack.evaluate`` (the headline row: validation included), and the goals.

The generated rules are data (``BenchRule``); one emitter per language writes
them out, so the engines judge exactly the same logic. See README.md.

What it flatters (README.md says more): each row keeps its quietest of ``--repeat``
rounds; the inputs are warm in the caches (the same 2000 dicts, time after time); the
generated actions carry one or two date-times and no optional lists; the default pack's
fixtures are cycled, so 70-odd distinct inputs repeat; the floors validate nothing and
collect no evidence, so a ratio to them counts aigre's validation and evidence as cost.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# This checkout's aigre_policy, not an installed copy that may be older.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evalbench.cedar import cedarpy_engine  # noqa: E402
from evalbench.floor import floor_engine, indexed_floor_engine  # noqa: E402
from evalbench.measure import Row, Workload, run_workload  # noqa: E402
from evalbench.native import native_engines  # noqa: E402
from evalbench.policy import (  # noqa: E402
    DEFAULT_PACK,
    NOW,
    aigre_source,
    fixture_inputs,
    generate_rules,
    random_action,
    target_pool,
)
from evalbench.rego import regopy_engine  # noqa: E402
from evalbench.report import print_header, print_table, print_targets  # noqa: E402

from aigre_policy import CompileError, load_pack  # noqa: E402

ENGINES = ("native", "floor", "regopy", "cedarpy")


def generated_workload(
    n: int, args: argparse.Namespace, tmp: Path, indexed: bool = True
) -> Workload:
    rules = generate_rules(n, args.seed, indexed)
    rng = random.Random(args.seed + n)
    targets = target_pool(n)
    inputs = [(random_action(rng, i, targets), {"now": NOW}, {}) for i in range(args.inputs)]
    name = f"generated-{n}" if indexed else f"unindexed-{n}"
    workload = Workload(name, n)
    timings = []
    if "native" in args.engines:
        pack_dir = tmp / name
        (pack_dir / "policies").mkdir(parents=True)
        (pack_dir / "pack.yaml").write_text(
            f"name: bench-{n}\nversion: 1.0.0\ndefault: allow\nfail_closed: deny\n"
        )
        (pack_dir / "policies" / "bench.aigre").write_text(aigre_source(rules))
        t0 = time.perf_counter()
        pack = load_pack(pack_dir)
        timings.append(f"aigre compile {1000 * (time.perf_counter() - t0):.0f} ms")
        workload.engines += native_engines(pack, inputs, args.breakdown)
    if "floor" in args.engines:
        workload.engines.append(floor_engine(rules, inputs))
        workload.engines.append(indexed_floor_engine(rules, inputs))
    if "regopy" in args.engines:
        try:
            t0 = time.perf_counter()
            limit = args.regopy_inputs or None
            workload.engines.append(regopy_engine(rules, inputs, limit))
            timings.append(f"regopy build {1000 * (time.perf_counter() - t0):.0f} ms")
            if limit and limit < len(inputs):
                workload.engines[
                    -1
                ].note += (
                    f"; LIMITED to the first {limit} of {len(inputs)} inputs (--regopy-inputs)"
                )
        except ImportError:
            workload.skipped["regopy"] = "not installed"
    if "cedarpy" in args.engines:
        try:
            t0 = time.perf_counter()
            workload.engines.append(cedarpy_engine(rules, inputs))
            timings.append(f"cedarpy parse {1000 * (time.perf_counter() - t0):.0f} ms")
        except ImportError:
            workload.skipped["cedarpy"] = "not installed"
    if timings:
        workload.notes.append(f"setup: {', '.join(timings)}")
    return workload


def default_workload(args: argparse.Namespace) -> Workload | None:
    name = f"default ({DEFAULT_PACK.name})"
    try:
        pack = load_pack(DEFAULT_PACK)
    except CompileError as exc:
        first = str(exc).strip().splitlines()[:3]
        print(f"\n== {name}: does not compile yet, skipped\n  " + "\n  ".join(first))
        return None
    except Exception as exc:  # the pack is in progress: report it
        print(f"\n== {name}: cannot be loaded ({type(exc).__name__}: {exc}), skipped")
        return None
    usage_names = list(pack.input_schema["properties"]["usage"].get("required", []))
    inputs, source, cases = fixture_inputs(usage_names, args.inputs, args.seed)
    workload = Workload(name, len(pack.rules))
    workload.engines = native_engines(pack, inputs, args.breakdown)
    why = "n/a; no hand translation of this pack (only generated packs run on every engine)"
    for engine in ("floor", "regopy", "cedarpy"):
        if engine in args.engines:
            workload.skipped[engine] = why
    workload.notes.append(f"inputs: {source}; usage fields: {', '.join(usage_names) or '-'}")
    failed = sum(1 for a in inputs if pack.evaluate(*a).fail_closed)
    if failed:
        workload.notes.append(f"warning: {failed} of {len(inputs)} inputs fail closed")
    judged = [(case, want) for case, want in cases if want]
    if judged:
        off = sum(1 for case, want in judged if pack.evaluate(*case).decision != want)
        workload.notes.append(
            f"fixtures: {len(judged) - off} of {len(judged)} reach the decision "
            "their `expect` names (informative; the pack is in progress)"
        )
    return workload


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10,100,1000",
        help="rule counts of the generated packs (comma-separated)",
    )
    parser.add_argument(
        "--unindexed-sizes",
        default="10,100,1000",
        help="rule counts of the packs aigre cannot index (comma-separated; '' for none)",
    )
    parser.add_argument("--inputs", type=int, default=2000, help="inputs per workload")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)}",
    )
    parser.add_argument(
        "--regopy-inputs",
        type=int,
        default=0,
        help="check and time regopy on only the first N inputs (0: all)",
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls before each round")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="timed rounds per engine, interleaved; the quietest round is kept",
    )
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="leave out the native validation-only and evidence-only rows",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-default-pack", action="store_true", help=f"skip {DEFAULT_PACK.relative_to(REPO)}"
    )
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.unindexed_sizes = [int(s) for s in args.unindexed_sizes.split(",") if s.strip()]
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print_header(args)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="aigre-bench-") as tmp:
        for n in args.sizes:
            workload = generated_workload(n, args, Path(tmp))
            run_workload(workload, args.warmup, args.repeat, rows)
        for n in args.unindexed_sizes:
            workload = generated_workload(n, args, Path(tmp), indexed=False)
            run_workload(workload, args.warmup, args.repeat, rows)
    if not args.no_default_pack and "native" in args.engines:
        workload = default_workload(args)
        if workload is not None:
            run_workload(workload, args.warmup, args.repeat, rows)
    print_table(rows)
    print_targets(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
