"""The header (machine, libraries, load), the table and the targets."""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import platform
import sys
from pathlib import Path

import aigre_policy
from evalbench.measure import Row, timer_overhead_ns


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_header(args: argparse.Namespace) -> None:
    import os

    print("aigre-policy evaluation benchmark")
    print(
        f"python   {sys.version.split()[0]} ({platform.python_implementation()}), "
        f"{platform.platform()}"
    )
    print(f"cpu      {cpu_model()} ({os.cpu_count()} logical CPUs)")
    libs = ["aigre-policy", "regopy", "cedarpy", "jsonschema-rs", "fastjsonschema", "jsonschema"]
    print("libs     " + ", ".join(f"{d} {version_of(d)}" for d in libs))
    print(f"aigre    {Path(aigre_policy.__file__).parent}")
    print(
        f"inputs   {args.inputs} per workload, seed {args.seed}; {args.repeat} interleaved "
        f"round(s) per engine after {args.warmup} warm-up calls each, quietest round kept"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"timing   perf_counter_ns per call, gc {'on' if gc.isenabled() else 'off'}, timer "
        f"overhead ~{timer_overhead_ns()} ns per sample (not subtracted); load average {load}"
    )


# What each row's timed call does, printed above the table.
LEGEND = (
    (
        "native",
        "Pack.evaluate(action, context, usage): input document, schema validation, the "
        "rules, evidence of every rule that held (values read and message values, captured; "
        "comparisons of or/any/all rules recorded as they run), the decision and the Verdict; "
        "records not rendered",
    ),
    ("native + records", "the same, then verdict.fired and .warnings rendered as dicts"),
    ("native + to_dict", "the same, then Verdict.to_dict(): the whole published verdict"),
    (
        "evaluator",
        "the rules, the same evidence, the decision and the Verdict (pack.evaluator.decide), given "
        "the input document Pack.evaluate builds for validation; no validation. Compared "
        "with the floor",
    ),
    ("validation only", "pack.validator.is_valid(document): the input schema check alone"),
    (
        "floor",
        "a plain Python function of the same rules: each field read once into a local, "
        "an if chain most restrictive first, return at the first hit; no validation, no evidence",
    ),
    (
        "indexed floor",
        "the floor as a person writes it who indexes by hand: a dict from the target to a "
        "function of that target's rules",
    ),
    ("regopy / cedarpy", "the same rules in Rego / Cedar, see the notes of each workload"),
)


def print_table(rows: list[Row]) -> None:
    def by_engine(name: str) -> dict[str, float]:
        return {r.workload: r.median_us for r in rows if r.engine == name and r.median_us}

    floor, indexed, native = by_engine("floor"), by_engine("indexed floor"), by_engine("native")
    print("\nrows (each a median of its own distribution, so they do not add up):")
    for name, what in LEGEND:
        print(f"  {name:<17} {what}")
    print(
        "\nmedian and p90 microseconds per decision; x floor, x idx floor, x native = median / "
        "that row's median (native: Pack.evaluate, the headline)\n"
    )
    header = (
        f"{'workload':<24} {'engine':<20} {'inputs':>6} {'median us':>10} "
        f"{'p90 us':>10} {'x floor':>8} {'x idx floor':>11} {'x native':>9}"
    )
    print(header)
    print("-" * len(header))
    last = None

    def ratio(value: float, base: float | None) -> str:
        return f"{value / base:.1f}x" if base else "n/a"

    for r in rows:
        if last is not None and r.workload != last:
            print()
        last = r.workload
        if r.median_us is None:
            print(f"{r.workload:<24} {r.engine:<20} {r.inputs or '':>6} {r.status:>32}")
            continue
        print(
            f"{r.workload:<24} {r.engine:<20} {r.inputs:>6} {r.median_us:>10,.2f} "
            f"{r.p90_us:>10,.2f} {ratio(r.median_us, floor.get(r.workload)):>8} "
            f"{ratio(r.median_us, indexed.get(r.workload)):>11} "
            f"{ratio(r.median_us, native.get(r.workload)):>9}"
        )


# The goals of the evaluation path, in microseconds (medians): Pack.evaluate with
# validation at 10 generated rules and on the default pack, and Verdict.to_dict() on it.
GOAL_EVALUATE_10 = 2.0
GOAL_EVALUATE_DEFAULT = 5.0
GOAL_TO_DICT_DEFAULT = 10.0


def print_targets(rows: list[Row]) -> None:
    """The goals: ``Pack.evaluate`` (validation included) <= 2 us at 10 rules and <= 5 us on
    the default pack, ``Verdict.to_dict()`` <= 10 us there (the ``native + to_dict`` row
    minus ``native``); and the evaluator (evidence included, no validation) within 3x of
    the floor, which validates nothing."""
    by = {(r.workload, r.engine): r.median_us for r in rows if r.median_us}
    if not any(e == "native" for _, e in by):
        return
    print("\ngoals (medians):")

    def line(what: str, value: float, goal: float, unit: str) -> None:
        verdict = "met" if value <= goal else "MISSED"
        print(f"  {what:<52} {value:7.2f}{unit:<3} goal <= {goal:g}{unit:<3} {verdict}")

    for (workload, engine), us in by.items():
        if engine != "native":
            continue
        if workload == "generated-10":
            line(f"{workload}: Pack.evaluate", us, GOAL_EVALUATE_10, " us")
        elif workload.startswith("default"):
            line(f"{workload}: Pack.evaluate", us, GOAL_EVALUATE_DEFAULT, " us")
            whole = by.get((workload, "native + to_dict"))
            if whole:
                line(f"{workload}: Verdict.to_dict()", whole - us, GOAL_TO_DICT_DEFAULT, " us")
    for (workload, engine), us in by.items():
        if engine == "evaluator" and (workload, "floor") in by:
            line(f"{workload}: evaluator / floor", us / by[(workload, "floor")], 3, "x")
        if engine == "evaluator" and (workload, "indexed floor") in by:
            ratio = us / by[(workload, "indexed floor")]
            print(f"  {workload + ': evaluator / indexed floor':<52} {ratio:7.2f}x  (no goal)")
