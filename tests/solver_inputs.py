"""Random inputs for checking what the solver claims: values near the constants packs use."""

from __future__ import annotations

import random
from typing import Any

COSTS = [0, 1, 99, 100, 101, 250, 250.5, 251, 4999.5, 5000, 1e6]
LINES = [0, 1, 2, 5, 10, 11, 400, 401]
TIMES = [
    "2025-03-14T15:59:59Z",
    "2025-03-14T16:00:00Z",
    "2025-03-14T16:15:00Z",
    "2025-03-14T16:15:01Z",
    "2025-03-15T09:00:00Z",
    "2025-03-10T12:00:00Z",
]
WORDS = ["payments", "admin-panel", "Admin", "web", "api", "db", "me", "you"]


def random_input(rng: random.Random, usage_names: list[str]) -> dict[str, Any]:
    """An input the builtin schema admits, fields drawn from small palettes."""
    action: dict[str, Any] = {
        "id": "act-1",
        "kind": rng.choice(["deploy", "rollback", "scale", "restart", "iam_grant"]),
        "target": rng.choice(WORDS),
        "environment": rng.choice(["production", "staging", "development", "sandbox"]),
        "actor": {"kind": rng.choice(["llm", "human", "automation"]), "id": "x", "trust": 3},
        "change": {"type": rng.choice(["code", "config", "infra"])},
        "reversible": rng.random() < 0.5,
        "blast_radius": {"users_share": rng.choice([0, 0.25, 0.5, 1])},
        "cost": {"estimated_usd": rng.choice(COSTS)},
        "requested_at": rng.choice(TIMES),
    }
    if rng.random() < 0.7:
        action["change"]["lines"] = rng.choice(LINES)
    if rng.random() < 0.6:
        count = rng.randint(0, 4)
        action["blast_radius"]["services"] = [rng.choice(WORDS) for _ in range(count)]
    if rng.random() < 0.5:
        action["rollback"] = {"plan": "redeploy"}
        if rng.random() < 0.6:
            action["rollback"]["tested"] = rng.random() < 0.5
    context: dict[str, Any] = {"now": rng.choice(TIMES)}
    if rng.random() < 0.6:
        context["actor"] = {"kind": "llm", "id": rng.choice(["me", "you"]), "trust": 2}
    if rng.random() < 0.5:
        context["error_budget_remaining"] = rng.choice([0.05, 0.1, 0.5, 1])
    if rng.random() < 0.6:
        context["approvals"] = [
            {
                "by": rng.choice(["me", "you"]),
                "group": rng.choice(["sre", "finops"]),
                "at": rng.choice(TIMES),
            }
            for _ in range(rng.randint(0, 3))
        ]
    usage = {name: rng.choice(COSTS) for name in usage_names}
    return {"action": action, "context": context, "usage": usage}


def outcome(verdict: Any) -> tuple[str, bool]:
    return verdict.decision, verdict.fail_closed


def disagreements(old: Any, new: Any, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Random inputs on which ``old`` and ``new`` decide differently (the first few)."""
    from aigre_policy.solver.diff import usage_for

    names = sorted(
        {
            *old.input_schema["properties"]["usage"].get("properties", {}),
            *new.input_schema["properties"]["usage"].get("properties", {}),
        }
    )
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        doc = random_input(rng, names)
        a = old.evaluate(doc["action"], doc["context"], usage_for(old, doc["usage"]))
        b = new.evaluate(doc["action"], doc["context"], usage_for(new, doc["usage"]))
        assert not (a.fail_closed and a.errors[0]["kind"] == "input"), a.errors
        if outcome(a) != outcome(b):
            found.append(doc)
            if len(found) >= 3:
                break
    return found
