"""The same rules as Cedar ``forbid`` policies, judged by cedarpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalbench.measure import Engine
from evalbench.policy import DEFAULTS, FLOAT_FIELDS, LATTICE, BenchRule, Cond, _lit


def cedar_source(rules: Sequence[BenchRule]) -> str:
    """One ``forbid`` per rule (policy ids policy0..N-1 in order) over a ``permit`` base."""

    def cond(c: Cond) -> str:
        ref = "context." + c.path
        if c.op == "not":
            return f"!{ref}"
        if c.op == "in":
            return f"{_lit(c.value)}.contains({ref})"
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


def cedar_value(value: Any, path: str = "") -> Any:
    """The action as a Cedar record: floats become ``decimal`` extension values."""
    if isinstance(value, dict):
        return {k: cedar_value(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [cedar_value(v, path) for v in value]
    if path in FLOAT_FIELDS:
        return {"__extn": {"fn": "decimal", "arg": f"{float(value):.4f}"}}
    return value


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
