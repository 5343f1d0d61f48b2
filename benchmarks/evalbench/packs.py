"""Packs whose compile cost is measured: the value-list repro and N generated rules.

Shared by ``bench_compile.py`` and the tests that bound compile cost; standard
library only, plus ``policy`` for the generated rules ``bench_eval.py`` also times.
"""

from __future__ import annotations

import json
from pathlib import Path

from evalbench.policy import aigre_source, generate_rules

MANIFEST = "name: {name}\nversion: 1.0.0\ndefault: allow\nfail_closed: deny\n"


def write_pack(directory: Path, source: str, name: str = "bench") -> Path:
    """A pack at ``directory``: ``pack.yaml`` and ``policies/bench.aigre`` holding ``source``."""
    (directory / "policies").mkdir(parents=True, exist_ok=True)
    (directory / "pack.yaml").write_text(MANIFEST.format(name=name), encoding="utf-8")
    (directory / "policies" / "bench.aigre").write_text(source, encoding="utf-8")
    return directory


def repro_targets(n: int) -> list[str]:
    return [f"svc-{i:03d}" for i in range(n)]


def repro_actors(n: int) -> list[str]:
    return [f"bot-{i:03d}" for i in range(n)]


def repro_source(n: int, rules: int = 3) -> str:
    """``rules`` rules, each ``action.target in [n strings] and action.actor.id in [n strings]
    and ...``: every rule can be indexed by two paths with ``n`` values each.

    Rule ``r`` lists the targets and actors from ``r * n // 4`` on, so the lists overlap
    but differ, and its last conjuncts differ per rule.
    """
    out = []
    tails = (
        'action.environment == "production"',
        "action.cost.estimated_usd > 100",
        "not action.reversible",
    )
    pool_targets, pool_actors = repro_targets(2 * n), repro_actors(2 * n)
    for r in range(rules):
        start = r * n // 4
        targets = json.dumps(pool_targets[start : start + n])
        actors = json.dumps(pool_actors[start : start + n])
        verdict = ("deny", 'require_approval by ["sre"]', 'escalate to ["platform"]')[r % 3]
        out.append(
            f"rule listed_{r} {{\n"
            f"  {verdict} when action.target in {targets}\n"
            f"    and action.actor.id in {actors}\n"
            f"    and {tails[r % len(tails)]}\n"
            f'  because "{{action.actor.id}} on {{action.target}}"\n'
            "}\n"
        )
    return "\n".join(out)


def generated_source(n: int, seed: int = 7) -> str:
    """The ``generated-N`` workload of ``bench_eval.py``: N per-service limits of five shapes."""
    return aigre_source(generate_rules(n, seed))
