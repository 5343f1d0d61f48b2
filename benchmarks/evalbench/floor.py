"""The floor: the same rules as a hand-shaped Python function (no validation, no evidence)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalbench.measure import Engine
from evalbench.policy import DEFAULTS, ORDER, BenchRule, _lit


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
