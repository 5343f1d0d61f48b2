"""Engines as timed callables, the agreement check, and the timing rounds."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evalbench.policy import ORDER

Decide = Callable[..., Any]


@dataclass
class Engine:
    """One way of deciding: ``call(*args)`` is timed; ``decision`` maps its result."""

    name: str
    call: Decide
    args: list[tuple]
    decision: Callable[[Any], str] = lambda result: result
    note: str = ""
    decides: bool = True  # False: a part of an engine, timed but not a decision to compare
    paired: bool = False  # the evaluator and the floor: timed in rounds of their own


@dataclass
class Row:
    workload: str
    engine: str
    inputs: int
    median_us: float | None = None
    p90_us: float | None = None
    status: str = ""


@dataclass
class Workload:
    name: str
    rules: int
    engines: list[Engine] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # engine -> why
    notes: list[str] = field(default_factory=list)


def check_agreement(workload: Workload) -> tuple[int, list[str]]:
    """Decisions of every engine on every input; count inputs where any engine differs."""
    decisions: dict[str, list[str]] = {}
    for engine in workload.engines:
        if not engine.decides:
            continue
        out = []
        for args in engine.args:
            try:
                out.append(engine.decision(engine.call(*args)))
            except Exception as exc:  # reported as a disagreement
                out.append(f"error: {type(exc).__name__}: {exc}"[:120])
        decisions[engine.name] = out
    reference = next(iter(decisions))
    notes, bad = [], 0
    for i in range(max(len(d) for d in decisions.values())):
        seen = {name.strip(): d[i] for name, d in decisions.items() if i < len(d)}
        if len(set(seen.values())) > 1:
            bad += 1
            if len(notes) < 5:
                notes.append(f"    input {i}: {seen}")
    counts = Counter(decisions[reference])
    mix = ", ".join(f"{k} {counts[k]}" for k in ("allow", *reversed(ORDER)) if counts[k])
    notes.insert(0, f"  decisions ({reference}): {mix}")
    return bad, notes


def time_round(engine: Engine, warmup: int) -> tuple[float, float]:
    """One pass over the inputs, one sample per call: (median, p90) in microseconds."""
    call, args, clock = engine.call, engine.args, time.perf_counter_ns
    for a in args[:warmup]:
        call(*a)
    samples = []
    append = samples.append
    for a in args:
        t0 = clock()
        call(*a)
        append(clock() - t0)
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.9)] / 1000


def timer_overhead_ns() -> int:
    def noop(*_: Any) -> None:
        return None

    clock, samples = time.perf_counter_ns, []
    for _ in range(20000):
        t0 = clock()
        noop(1, 2, 3)
        samples.append(clock() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def run_workload(workload: Workload, warmup: int, repeat: int, rows: list[Row]) -> None:
    print(f"\n== {workload.name}: {workload.rules} rules")
    for note in workload.notes:
        print(f"  {note}")
    skipped = [
        Row(workload.name, name, 0, status=why.split(";")[0])
        for name, why in workload.skipped.items()
    ]
    for name, why in workload.skipped.items():
        print(f"  {name}: {why}")
    for engine in workload.engines:
        if engine.note:
            print(f"  {engine.name}: {engine.note}")
    started = time.perf_counter()
    bad, notes = check_agreement(workload)
    print("\n".join(notes))
    deciders = sum(1 for e in workload.engines if e.decides)
    print(
        f"  correctness: {bad} disagreement(s) across {deciders} engine(s) "
        f"({time.perf_counter() - started:.1f} s)"
    )
    if bad:
        print("  timing skipped for this workload: the engines disagree")
        rows.extend(
            Row(workload.name, e.name, len(e.args), status="disagree") for e in workload.engines
        )
        rows.extend(skipped)
        return
    # Rounds go round-robin over the engines so a burst of load elsewhere on the machine
    # hits every engine alike; each engine keeps its quietest round (lowest median).
    # The pair the bar compares (the evaluator and the floor) alternate only with each
    # other, before the rest: a heavier row between them leaves the allocator and the
    # caches in a state that slows the evaluator's next round by a third at 10 rules.
    best: dict[str, tuple[float, float]] = {}
    for phase in (True, False):
        engines = [e for e in workload.engines if e.paired is phase]
        for _ in range(repeat):
            for engine in engines:
                result = time_round(engine, min(warmup, len(engine.args)))
                if engine.name not in best or result < best[engine.name]:
                    best[engine.name] = result
    for engine in workload.engines:
        median, p90 = best[engine.name]
        rows.append(Row(workload.name, engine.name, len(engine.args), median, p90))
    rows.extend(skipped)
