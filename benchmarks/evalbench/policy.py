"""The generated workload: rules as data, their aigre source, and random valid inputs."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigre_policy.models.action import ActionKind, ActorKind, ChangeType, Environment

REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_PACK = REPO / "policy_packs" / "aigre-baseline"
FIXTURES = REPO / "fixtures" / "actions"
NOW = "2026-11-20T10:00:00Z"
LATTICE = {"allow": 0, "escalate": 1, "require_approval": 2, "deny": 3}
ORDER = ("deny", "require_approval", "escalate")  # most restrictive first
FLOAT_FIELDS = {"cost.estimated_usd", "blast_radius.users_share"}
DEFAULTS = {"change.lines": 0}  # optional in ProposedAction, read with a default


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


UNINDEXED_SPAN = 5  # targets per rule in the unindexed workload: past what aigre indexes


def generate_rules(n_rules: int, seed: int, indexed: bool = True) -> list[BenchRule]:
    """N distinct rules: a per-target limit of one of five shapes (target x shape is unique).

    ``indexed=False``: each rule names its target in a list with the next
    ``UNINDEXED_SPAN - 1`` targets (``action.target in [...]``), longer than the lists
    aigre's code generator copies into an index (``codegen._MAX_COPIES``), so every rule
    runs in one plain chain; decisions stay per service, as varied as the indexed ones."""
    rng = random.Random(seed)
    targets = target_pool(n_rules)
    kinds = [k.value for k in ActionKind]
    envs = [e.value for e in Environment]
    rules = []
    for i in range(n_rules):
        own = i % len(targets)
        if indexed:
            target = Cond("target", "==", targets[own])
        else:
            span = tuple(targets[(own + k) % len(targets)] for k in range(UNINDEXED_SPAN))
            target = Cond("target", "in", span)
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
    if isinstance(value, tuple):  # a list of strings: the same text in every language
        return json.dumps(list(value))
    return json.dumps(value) if isinstance(value, str) else repr(value)


def targets_of(rule: BenchRule) -> tuple[str, ...]:
    """The targets a rule can hold for (its first condition is on ``target``)."""
    first = rule.conds[0] if rule.conds[0].path == "target" else rule.conds[1]
    return first.value if first.op == "in" else (first.value,)


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
