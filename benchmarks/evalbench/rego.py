"""The same rules in Rego v1, judged by regopy."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from evalbench.measure import Engine
from evalbench.policy import DEFAULTS, ORDER, BenchRule, Cond, _lit

REGO_ENTRYPOINT = "bench/decision"


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
