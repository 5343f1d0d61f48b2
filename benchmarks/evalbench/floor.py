"""The floor: the same rules as a hand-shaped Python function (no validation, no evidence)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalbench.measure import Engine
from evalbench.policy import DEFAULTS, ORDER, BenchRule, _lit, targets_of


def floor_source(rules: Sequence[BenchRule], name: str = "decide") -> str:
    """A plain function: fields read once into locals, conditions inlined, early return."""
    paths = sorted({c.path for r in rules for c in r.conds})
    local = {p: f"v{i}" for i, p in enumerate(paths)}
    lines = [f"def {name}(action, context, usage):"]
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


def indexed_floor_source(rules: Sequence[BenchRule]) -> str:
    """What a person writes who knows every rule is about one service or a few: a dict from
    the target to a function of that target's rules (the target test dropped), the way
    aigre's generated code indexes rules by a field they test for equality."""
    by_target: dict[str, list[BenchRule]] = {}
    for r in rules:
        for target in targets_of(r):
            kept = tuple(c for c in r.conds if c.path != "target")
            by_target.setdefault(target, []).append(BenchRule(r.id, r.verdict, r.groups, kept))
    parts, table = [], []
    for i, (target, chosen) in enumerate(sorted(by_target.items())):
        parts.append(floor_source(chosen, f"t{i}"))
        table.append(f"    {_lit(target)}: t{i},")
    parts.append("TABLE = {\n" + "\n".join(table) + "\n}\n")
    parts.append(
        "def decide(action, context, usage):\n"
        "    chosen = TABLE.get(action['target'])\n"
        "    return 'allow' if chosen is None else chosen(action, context, usage)\n"
    )
    return "\n".join(parts)


def indexed_floor_engine(rules: list[BenchRule], inputs: list[tuple]) -> Engine:
    namespace: dict[str, Any] = {}
    exec(compile(indexed_floor_source(rules), "<indexed floor>", "exec"), namespace)
    return Engine(
        "indexed floor",
        namespace["decide"],
        inputs,
        note="hand-indexed Python: a dict of target -> that target's rules, early return",
        paired=True,
    )


def floor_engine(rules: list[BenchRule], inputs: list[tuple]) -> Engine:
    namespace: dict[str, Any] = {}
    exec(compile(floor_source(rules), "<floor>", "exec"), namespace)  # our own generated text
    return Engine(
        "floor",
        namespace["decide"],
        inputs,
        note="hand-shaped Python, early return",
        paired=True,
    )
