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
    ("regopy / cedarpy", "the same rules in Rego / Cedar, see the notes of each workload"),
)


def print_table(rows: list[Row]) -> None:
    floor = {r.workload: r.median_us for r in rows if r.engine == "floor" and r.median_us}
    print("\nrows (each a median of its own distribution, so they do not add up):")
    for name, what in LEGEND:
        print(f"  {name:<17} {what}")
    print("\nmedian and p90 microseconds per decision; x floor = median / floor median\n")
    header = (
        f"{'workload':<32} {'engine':<20} {'inputs':>6} {'median us':>11} "
        f"{'p90 us':>11} {'x floor':>8}"
    )
    print(header)
    print("-" * len(header))
    last = None
    for r in rows:
        if last is not None and r.workload != last:
            print()
        last = r.workload
        if r.median_us is None:
            print(f"{r.workload:<32} {r.engine:<20} {r.inputs or '':>6} {r.status:>32}")
            continue
        base = floor.get(r.workload)
        ratio = f"{r.median_us / base:.1f}x" if base else "n/a"
        print(
            f"{r.workload:<32} {r.engine:<20} {r.inputs:>6} {r.median_us:>11,.2f} "
            f"{r.p90_us:>11,.2f} {ratio:>8}"
        )


def print_targets(rows: list[Row]) -> None:
    """The bar: the evaluator (evidence included, no validation) within 3x of the floor, which
    validates nothing; the full call, validation included, under 20 us on the default pack."""
    by = {(r.workload, r.engine): r.median_us for r in rows if r.median_us}
    floor = {w: us for (w, e), us in by.items() if e == "floor"}
    if not any(e == "native" for _, e in by):
        return
    print(
        "\ntargets: evaluator (rules + evidence + decision, no validation) within 3x of the "
        "floor;\n         native (Pack.evaluate, validation included) under 20 us on the "
        "default pack"
    )
    for (workload, engine), us in by.items():
        if engine == "evaluator" and workload in floor:
            ratio = us / floor[workload]
            verdict = "met" if ratio <= 3 else "MISSED"
            print(f"  {workload:<30} evaluator {ratio:5.1f}x floor  {verdict}")
        elif engine == "native" and workload.startswith("default"):
            verdict = "met" if us < 20 else "MISSED"
            print(f"  {workload:<30} native   {us:6.1f} us     {verdict}")
