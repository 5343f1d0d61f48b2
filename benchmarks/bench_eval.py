"""Time one decision per engine: aigre's evaluator against a Python floor, regopy and cedarpy.

Run by hand, not in CI::

    python benchmarks/bench_eval.py
    python benchmarks/bench_eval.py --sizes 10,100 --engines native,floor --inputs 500

For each workload (a generated pack of N rules, then the default pack) it checks
that every engine reaches the same decision on every input, then times each
call with ``perf_counter_ns`` (warm-up first, ``gc`` left on) and prints the
median and p90 microseconds per decision and the ratio to the Python floor.

The generated rules are data (``BenchRule``); one emitter per language writes
them out, so the four engines judge exactly the same logic. See README.md.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# This checkout's aigre_policy, not an installed copy that may be older.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aigre_policy  # noqa: E402
from aigre_policy import CompileError, load_pack  # noqa: E402
from aigre_policy.models.action import (  # noqa: E402
    ActionKind,
    ActorKind,
    ChangeType,
    Environment,
)

ENGINES = ("native", "floor", "regopy", "cedarpy")
DEFAULT_PACK = REPO / "policy_packs" / "aigre-baseline"
FIXTURES = REPO / "fixtures" / "actions"
NOW = "2026-11-20T10:00:00Z"
LATTICE = {"allow": 0, "escalate": 1, "require_approval": 2, "deny": 3}
ORDER = ("deny", "require_approval", "escalate")  # most restrictive first
FLOAT_FIELDS = {"cost.estimated_usd", "blast_radius.users_share"}
DEFAULTS = {"change.lines": 0}  # optional in ProposedAction, read with a default
REGO_ENTRYPOINT = "bench/decision"

Decide = Callable[..., Any]


# ------------------------------------------------------------------ the rules, as data
@dataclass(frozen=True)
class Cond:
    """``action.<path> <op> <value>``; op ``not`` is ``not action.<path>``."""

    path: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class BenchRule:
    id: str
    verdict: str
    groups: tuple[str, ...]
    conds: tuple[Cond, ...]


def target_pool(n_rules: int) -> list[str]:
    return [f"svc-{j}" for j in range(max(2, n_rules // 5))]


def generate_rules(n_rules: int, seed: int) -> list[BenchRule]:
    """N distinct rules: a per-target limit of one of five shapes (target x shape is unique)."""
    rng = random.Random(seed)
    targets = target_pool(n_rules)
    kinds = [k.value for k in ActionKind]
    envs = [e.value for e in Environment]
    rules = []
    for i in range(n_rules):
        target = Cond("target", "==", targets[i % len(targets)])
        shape = (i // len(targets)) % 5
        if shape == 0:
            verdict, groups = "deny", ()
            conds = (target, Cond("cost.estimated_usd", ">", round(rng.uniform(300, 950), 2)))
        elif shape == 1:
            verdict, groups = "require_approval", ("sre",)
            conds = (
                Cond("environment", "==", "production"),
                target,
                Cond("blast_radius.users_share", ">", round(rng.uniform(0.05, 0.6), 2)),
            )
        elif shape == 2:
            verdict, groups = "escalate", ("platform",)
            conds = (target, Cond("change.lines", ">", rng.randint(200, 700)))
        elif shape == 3:
            verdict, groups = "deny", ()
            conds = (
                target,
                Cond("actor.kind", "==", "llm"),
                Cond("actor.trust", "<", rng.randint(2, 5)),
                Cond("kind", "==", rng.choice(kinds)),
            )
        else:
            verdict, groups = "require_approval", ("sre",)
            conds = (target, Cond("reversible", "not"), Cond("environment", "==", rng.choice(envs)))
        rules.append(BenchRule(f"r{i}", verdict, groups, conds))
    return rules


def _lit(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


# ------------------------------------------------------------------ emitters
def aigre_source(rules: Sequence[BenchRule]) -> str:
    out = []
    for r in rules:
        cond = " and ".join(
            f"not action.{c.path}" if c.op == "not" else f"action.{c.path} {c.op} {_lit(c.value)}"
            for c in r.conds
        )
        groups = ", ".join(json.dumps(g) for g in r.groups)
        head = {
            "deny": "deny",
            "require_approval": f"require_approval by [{groups}]",
            "escalate": f"escalate to [{groups}]",
        }[r.verdict]
        out.append(
            f"rule {r.id} {{\n  category: risk\n  severity: high\n"
            f'  {head} when {cond}\n  because "{r.id} holds for {{action.target}}"\n}}\n'
        )
    return "\n".join(out)


def floor_source(rules: Sequence[BenchRule]) -> str:
    """A plain function: fields read once into locals, conditions inlined, early return."""
    paths = sorted({c.path for r in rules for c in r.conds})
    local = {p: f"v{i}" for i, p in enumerate(paths)}
    lines = ["def decide(action, context, usage):"]
    for p in paths:
        *parents, leaf = p.split(".")
        base = "action" + "".join(f"[{k!r}]" for k in parents)
        read = f"{base}.get({leaf!r}, {DEFAULTS[p]!r})" if p in DEFAULTS else f"{base}[{leaf!r}]"
        lines.append(f"    {local[p]} = {read}")
    for verdict in ORDER:
        for r in rules:
            if r.verdict == verdict:
                cond = " and ".join(
                    f"not {local[c.path]}"
                    if c.op == "not"
                    else f"{local[c.path]} {c.op} {_lit(c.value)}"
                    for c in r.conds
                )
                lines.append(f"    if {cond}:\n        return {verdict!r}")
    lines.append("    return 'allow'")
    return "\n".join(lines) + "\n"


def rego_source(rules: Sequence[BenchRule]) -> str:
    def cond(c: Cond) -> str:
        ref = "input.action." + c.path
        if c.op == "not":
            return f"not {ref}"
        if c.path in DEFAULTS:
            *parents, leaf = c.path.split(".")
            parent = ".".join(parents)
            ref = f"object.get(input.action.{parent}, {json.dumps(leaf)}, {DEFAULTS[c.path]})"
        return f"{ref} {c.op} {_lit(c.value)}"

    out = ["package bench", ""]
    for r in rules:
        body = "\n".join(f"  {cond(c)}" for c in r.conds)
        out.append(f'{r.verdict} contains "{r.id}" if {{\n{body}\n}}\n')
    present = [v for v in ORDER if any(r.verdict == v for r in rules)]
    chain = " else := ".join(f'"{v}" if {{\n  count({v}) > 0\n}}' for v in present)
    out.append(f'decision := {chain} else := "allow"' if present else 'decision := "allow"')
    return "\n".join(out) + "\n"


def cedar_source(rules: Sequence[BenchRule]) -> str:
    """One ``forbid`` per rule (policy ids policy0..N-1 in order) over a ``permit`` base."""

    def cond(c: Cond) -> str:
        ref = "context." + c.path
        if c.op == "not":
            return f"!{ref}"
        if c.path in FLOAT_FIELDS:
            method = {">": "greaterThan", "<": "lessThan"}[c.op]
            return f'{ref}.{method}(decimal("{c.value!r}"))'
        if c.path in DEFAULTS:  # absent reads as the default, and no limit is below it
            *parents, leaf = c.path.split(".")
            return f"(context.{'.'.join(parents)} has {leaf} && {ref} {c.op} {_lit(c.value)})"
        return f"{ref} {c.op} {_lit(c.value)}"

    out = [
        f'@id("{r.id}")\nforbid (principal, action, resource)\nwhen {{ '
        + " && ".join(cond(c) for c in r.conds)
        + " };"
        for r in rules
    ]
    out.append("permit (principal, action, resource);")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ inputs
def random_action(rng: random.Random, i: int, targets: list[str]) -> dict[str, Any]:
    actor_kind = rng.choice([a.value for a in ActorKind])
    actor: dict[str, Any] = {
        "kind": actor_kind,
        "id": f"{actor_kind}-{rng.randint(1, 40)}",
        "trust": rng.randint(0, 5),
    }
    if actor_kind == "llm":
        actor["model"] = "model-x"
    target = rng.choice(targets) if rng.random() < 0.9 else f"other-{rng.randint(1, 99)}"
    change: dict[str, Any] = {
        "type": rng.choice([c.value for c in ChangeType]),
        "files": rng.randint(0, 30),
    }
    if rng.random() < 0.8:
        change["lines"] = rng.randint(0, 900)
    action: dict[str, Any] = {
        "id": f"act-{i:06x}",
        "kind": rng.choice([k.value for k in ActionKind]),
        "target": target,
        "environment": rng.choice([e.value for e in Environment]),
        "actor": actor,
        "change": change,
        "reversible": rng.random() < 0.7,
        "blast_radius": {"users_share": round(rng.random(), 4), "services": [target]},
        "cost": {"estimated_usd": 0 if rng.random() < 0.2 else round(rng.uniform(0, 1000), 2)},
        "requested_at": NOW,
    }
    if action["reversible"]:
        action["rollback"] = {"plan": "revert", "tested": rng.random() < 0.5}
    return action


def cedar_value(value: Any, path: str = "") -> Any:
    """The action as a Cedar record: floats become ``decimal`` extension values."""
    if isinstance(value, dict):
        return {k: cedar_value(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [cedar_value(v, path) for v in value]
    if path in FLOAT_FIELDS:
        return {"__extn": {"fn": "decimal", "arg": f"{float(value):.4f}"}}
    return value


def fixture_inputs(usage_names: list[str], n: int, seed: int) -> tuple[list[tuple], str, list]:
    """Fixture cases cycled to ``n`` inputs (and their expected decisions), or random actions."""
    cases, expected = [], []
    if FIXTURES.is_dir():
        try:
            from aigre_policy.yamlio import parse_document

            def load(p: Path) -> Any:
                doc, _ = parse_document(p.read_text(encoding="utf-8"), str(p))
                return doc.data if doc else None
        except ImportError:  # pragma: no cover - the reader moved
            import yaml

            def load(p: Path) -> Any:
                return yaml.safe_load(p.read_text(encoding="utf-8"))

        for path in sorted(FIXTURES.glob("*.yaml")):
            data = load(path)
            if isinstance(data, dict) and "action" in data:
                usage = {k: data.get("usage", {}).get(k, 0) for k in usage_names}
                cases.append((data["action"], data.get("context") or {"now": NOW}, usage))
                expected.append((data.get("expect") or {}).get("decision"))
    if cases:
        cycled = [cases[i % len(cases)] for i in range(n)]
        return cycled, f"{len(cases)} fixtures cycled", list(zip(cases, expected, strict=True))
    rng = random.Random(seed)
    targets = [f"svc-{j}" for j in range(20)]
    usage = {k: 0 for k in usage_names}
    return (
        [(random_action(rng, i, targets), {"now": NOW}, usage) for i in range(n)],
        "random actions (no fixtures)",
        [],
    )


# ------------------------------------------------------------------ engines
@dataclass
class Engine:
    """One way of deciding: ``call(*args)`` is timed; ``decision`` maps its result."""

    name: str
    call: Decide
    args: list[tuple]
    decision: Callable[[Any], str] = lambda result: result
    note: str = ""
    decides: bool = True  # False: a part of an engine, timed but not a decision to compare


def native_engines(pack: Any, inputs: list[tuple], breakdown: bool) -> list[Engine]:
    rules = pack.rules
    rules_only = pack._compiled.namespace["evaluate"]

    def from_indices(indices: list[int]) -> str:
        worst, permitted = "allow", False
        for i in indices:
            verdict = rules[i].verdict
            if verdict == "permit":
                permitted = True
            elif verdict != "warn" and LATTICE[verdict] > LATTICE[worst]:
                worst = verdict
        if worst == "allow" and pack.default == "deny" and not permitted:
            return "deny"
        return worst

    engines = [
        Engine(
            "native",
            pack.evaluate,
            inputs,
            lambda v: v.decision,
            "Pack.evaluate: validation + rules + evidence + Verdict",
        ),
        Engine(
            "native (rules only)",
            rules_only,
            inputs,
            from_indices,
            "generated evaluate(): fired indices, no validation or evidence",
        ),
    ]
    # The other two stages of Pack.evaluate, timed alone through its private parts. They
    # are internals and may move: then the breakdown is left out, not the benchmark.
    is_valid, decide = getattr(pack, "_is_valid", None), getattr(pack, "_decide", None)
    if breakdown and is_valid and decide:
        documents = [{"action": a, "context": c, "usage": u} for a, c, u in inputs]
        engines.append(
            Engine(
                "  validation only",
                is_valid,
                [(d,) for d in documents],
                decides=False,
                note="Pack._is_valid(document): the input schema check",
            )
        )
        fired = [(d, rules_only(d["action"], d["context"], d["usage"]), 0) for d in documents]
        engines.append(
            Engine(
                "  evidence + verdict",
                decide,
                fired,
                lambda v: v.decision,
                "Pack._decide(document, fired, t0): explain fired rules, build the Verdict",
            )
        )
    return engines


def floor_engine(rules: list[BenchRule], inputs: list[tuple]) -> Engine:
    namespace: dict[str, Any] = {}
    exec(compile(floor_source(rules), "<floor>", "exec"), namespace)  # our own generated text
    return Engine("floor", namespace["decide"], inputs, note="hand-shaped Python, early return")


def regopy_engine(rules: list[BenchRule], inputs: list[tuple], limit: int | None) -> Engine:
    from regopy import Input, Interpreter

    builder = Interpreter()
    builder.add_module("bench.rego", rego_source(rules))
    bundle = builder.build(None, [REGO_ENTRYPOINT])
    rego = Interpreter()
    query = rego.query_bundle_entrypoint
    set_input = rego.set_input

    def decide(document: dict[str, Any]) -> str:
        set_input(Input(document))
        output = query(bundle, REGO_ENTRYPOINT)
        return output[0].expressions[0]

    docs = [({"action": a, "context": c, "usage": u},) for a, c, u in inputs[:limit]]
    note = "compiled bundle, query_bundle_entrypoint; set_input(Input(dict)) per call"
    return Engine("regopy", decide, docs, note=note)


def cedarpy_engine(rules: list[BenchRule], inputs: list[tuple]) -> Engine:
    import cedarpy

    policies = cedarpy.PolicySet.from_str(cedar_source(rules))
    entities = cedarpy.Entities.from_json_str("[]")
    verdict_of = {f"policy{i}": r.verdict for i, r in enumerate(rules)}
    is_authorized, deny = cedarpy.is_authorized, cedarpy.Decision.Deny

    def decide(request: dict[str, Any]) -> str:
        result = is_authorized(request, policies, entities)
        if result.decision != deny:
            return "allow"
        worst = "allow"
        for reason in result.diagnostics.reasons:
            verdict = verdict_of[reason]
            if LATTICE[verdict] > LATTICE[worst]:
                worst = verdict
        return worst

    requests = [
        (
            {
                "principal": 'User::"bench"',
                "action": 'Action::"propose"',
                "resource": 'Resource::"bench"',
                "context": cedar_value(a),
            },
        )
        for a, _, _ in inputs
    ]
    note = (
        "is_authorized with pre-parsed PolicySet and Entities handles; "
        "verdict = most restrictive over the determining forbid policies"
    )
    return Engine("cedarpy", decide, requests, note=note)


# ------------------------------------------------------------------ measuring
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
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for engine in workload.engines:
            result = time_round(engine, min(warmup, len(engine.args)))
            if engine.name not in best or result < best[engine.name]:
                best[engine.name] = result
    for engine in workload.engines:
        median, p90 = best[engine.name]
        rows.append(Row(workload.name, engine.name, len(engine.args), median, p90))
    rows.extend(skipped)


def generated_workload(n: int, args: argparse.Namespace, tmp: Path) -> Workload:
    rules = generate_rules(n, args.seed)
    rng = random.Random(args.seed + n)
    targets = target_pool(n)
    inputs = [(random_action(rng, i, targets), {"now": NOW}, {}) for i in range(args.inputs)]
    workload = Workload(f"generated-{n}", n)
    timings = []
    if "native" in args.engines:
        pack_dir = tmp / f"bench-{n}"
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


# ------------------------------------------------------------------ report
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


def print_table(rows: list[Row]) -> None:
    floor = {r.workload: r.median_us for r in rows if r.engine == "floor" and r.median_us}
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
    native = {r.workload: r for r in rows if r.engine == "native" and r.median_us}
    floor = {r.workload: r.median_us for r in rows if r.engine == "floor" and r.median_us}
    if not native:
        return
    print("\ntargets: native within 3x of the floor per size; under 20 us on the default pack")
    for workload, r in native.items():
        if workload in floor:
            ratio = r.median_us / floor[workload]
            verdict = "met" if ratio <= 3 else "MISSED"
            print(f"  {workload:<30} {ratio:6.1f}x floor  {verdict}")
        elif workload.startswith("default"):
            verdict = "met" if r.median_us < 20 else "MISSED"
            print(f"  {workload:<30} {r.median_us:6.1f} us     {verdict}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10,100,1000",
        help="rule counts of the generated packs (comma-separated)",
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
    if not args.no_default_pack and "native" in args.engines:
        workload = default_workload(args)
        if workload is not None:
            run_workload(workload, args.warmup, args.repeat, rows)
    print_table(rows)
    print_targets(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
