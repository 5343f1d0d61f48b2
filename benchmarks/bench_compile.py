"""Time one compile per pack: generated packs of 1k and 10k rules and the value-list repro.

Run by hand, not in CI::

    python benchmarks/bench_compile.py
    python benchmarks/bench_compile.py --sizes 1000,10000 --repro 160,320

Each pack compiles in a fresh child process (``compile_pack``, every stage), after
the grammar is built there; the child reports wall and CPU seconds, the seconds
of each stage, its peak memory and the size of the Python it emitted. The script
prints one row per pack and the ratios that show how cost grows: 10k / 1k rules
and repro 2N / N. See README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any

# This checkout's aigre_policy, not an installed copy that may be older.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from evalbench.packs import generated_source, repro_source, write_pack  # noqa: E402
from evalbench.report import cpu_model, version_of  # noqa: E402

# compiler.py names each stage's function; wrapped in the child to time them
STAGES = {
    "parse": "parse_module",
    "check": "check_pack",
    "emit": "emit_python",
    "load": "load_module",
    "validator": "InputValidator",
}


def source_of(kind: str, n: int, seed: int) -> str:
    return generated_source(n, seed) if kind == "generated" else repro_source(n)


def measure(kind: str, n: int, seed: int, trace: bool) -> dict[str, Any]:
    """In this (fresh) process: compile the pack once and report what it cost."""
    import aigre_policy.compiler as compiler
    from aigre_policy.grammar import parser

    t0 = time.perf_counter()
    parser()  # built once per process; reported apart, it is not the pack's cost
    grammar = time.perf_counter() - t0
    stages: dict[str, float] = {}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                stages[name] = stages.get(name, 0.0) + time.process_time() - start

        return run

    for stage, attribute in STAGES.items():
        setattr(compiler, attribute, timed(stage, getattr(compiler, attribute)))
    source = source_of(kind, n, seed)
    with tempfile.TemporaryDirectory(prefix="aigre-bench-") as tmp:
        pack_dir = write_pack(Path(tmp), source)
        if trace:
            import tracemalloc

            tracemalloc.start()
        before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        wall, cpu = time.perf_counter(), time.process_time()
        report = compiler.compile_pack(pack_dir)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        traced = tracemalloc.get_traced_memory()[1] if trace else None
    problems = [str(d) for d in report.diagnostics if d.severity == "error"][:3]
    return {
        "pack": f"{kind}-{n}",
        "rules": len(report.compiled.program.rules) if report.compiled else None,
        "ok": report.ok,
        "problems": problems,
        "source_bytes": len(source.encode()),
        "python_bytes": len(report.compiled.python.source.encode()) if report.compiled else 0,
        "wall_s": wall,
        "cpu_s": cpu,
        "stages_cpu_s": stages,
        "grammar_s": grammar,
        "peak_rss_mb": peak_rss / 1024,  # ru_maxrss is in KiB on Linux
        "rss_growth_mb": (peak_rss - before_rss) / 1024,
        "traced_peak_mb": traced / 2**20 if traced is not None else None,
    }


def run_child(kind: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", f"{kind}:{n}", "--seed", str(args.seed)]
    if args.tracemalloc:
        command.append("--tracemalloc")
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"pack": f"{kind}-{n}", "failed": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_header(args: argparse.Namespace) -> None:
    import platform

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print("aigre-policy compile benchmark")
    print(f"python   {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"cpu      {cpu_model()} ({os.cpu_count()} logical CPUs); load average {load}")
    print(f"libs     lark {version_of('lark')}, jsonschema {version_of('jsonschema')}")
    print(
        "method   one compile_pack per pack, each in a fresh process after the grammar is "
        f"built; seed {args.seed}; memory: peak RSS of that process"
        + (", and tracemalloc's peak" if args.tracemalloc else "")
    )


def print_rows(results: list[dict[str, Any]], trace: bool) -> None:
    head = (
        f"{'pack':<16}{'rules':>7}{'source KB':>11}{'python KB':>11}{'py/src':>8}"
        f"{'wall s':>8}{'cpu s':>8}{'peak MB':>9}{'+MB':>7}"
        + (f"{'traced MB':>11}" if trace else "")
        + "   cpu s per stage"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        if "failed" in r:
            print(f"{r['pack']:<16} failed: {r['failed']}")
            continue
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages_cpu_s"].items())
        traced = f"{r['traced_peak_mb']:>11.1f}" if trace else ""
        print(
            f"{r['pack']:<16}{r['rules'] or 0:>7}{r['source_bytes'] / 1024:>11.1f}"
            f"{r['python_bytes'] / 1024:>11.1f}{r['python_bytes'] / r['source_bytes']:>8.1f}"
            f"{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}{r['peak_rss_mb']:>9.0f}"
            f"{r['rss_growth_mb']:>7.0f}{traced}   {stages}"
        )
        if not r["ok"]:
            print(f"{'':<16}did not compile: {'; '.join(r['problems'])}")
    grammar = [r["grammar_s"] for r in results if "grammar_s" in r]
    if grammar:
        print(f"(building the grammar, once per process, not counted above: {min(grammar):.2f} s)")


def print_ratios(results: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> None:
    by_pack = {r["pack"]: r for r in results if "failed" not in r}
    lines = []
    for small, large in pairs:
        if small not in by_pack or large not in by_pack:
            continue
        a, b = by_pack[small], by_pack[large]
        size = b["source_bytes"] / a["source_bytes"]
        lines.append(
            f"  {large} / {small}: source x{size:.1f}, python x"
            f"{b['python_bytes'] / a['python_bytes']:.1f}, cpu x{b['cpu_s'] / a['cpu_s']:.1f}, "
            f"wall x{b['wall_s'] / a['wall_s']:.1f}, memory growth x"
            f"{b['rss_growth_mb'] / max(a['rss_growth_mb'], 1):.1f}"
        )
    if lines:
        print("\nratios (linear growth: each close to the source's)")
        print("\n".join(lines))


def print_targets(results: list[dict[str, Any]], largest: str, repro: str) -> None:
    by_pack = {r["pack"]: r for r in results if "failed" not in r}
    print(
        "\ntargets: the 160-string repro well under 1 s; 10k generated rules under 10 s\n"
        "         (judged on cpu s, the compiling process's own time: on a busy machine wall\n"
        "         time also counts the wait for a CPU)"
    )
    for name, limit in ((repro, 1.0), (largest, 10.0)):
        if name in by_pack:
            r = by_pack[name]
            verdict = "met" if r["cpu_s"] < limit and r["ok"] else "MISSED"
            print(f"  {name:<16} cpu {r['cpu_s']:.2f} s, wall {r['wall_s']:.2f} s  {verdict}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="rule counts of generated packs")
    parser.add_argument("--repro", default="160,320", help="list lengths of the repro pack")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace allocations")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per compile")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.repro = [int(s) for s in args.repro.split(",") if s.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        kind, n = args.child.split(":")
        print(json.dumps(measure(kind, int(n), args.seed, args.tracemalloc)))
        return 0
    print_header(args)
    results = [run_child("generated", n, args) for n in args.sizes]
    results += [run_child("repro", n, args) for n in args.repro]
    print_rows(results, args.tracemalloc)
    sizes, repro = sorted(args.sizes), sorted(args.repro)
    pairs = [(f"generated-{a}", f"generated-{b}") for a, b in itertools.pairwise(sizes)]
    pairs += [(f"repro-{a}", f"repro-{b}") for a, b in itertools.pairwise(repro)]
    print_ratios(results, pairs)
    print_targets(
        results,
        "generated-10000",
        "repro-160" if 160 in repro else (f"repro-{repro[0]}" if repro else ""),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
