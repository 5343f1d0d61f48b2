"""What the adversarial suite shares: its size, packs on disk, and one verdict shape per engine.

``AIGRE_ADVERSARIAL_SCALE`` multiplies every example count (default 1, sized for CI:
the whole suite in well under a minute on a shared 2-CPU machine); ``=20`` for a long
local run. ``AIGRE_ADVERSARIAL_SEED`` picks another fixed sample (default: the
derandomized one CI sees). A failing example is reported as found, not shrunk (shrinking
a pack can take minutes); ``AIGRE_ADVERSARIAL_SHRINK=1`` shrinks it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import write_pack
from hypothesis import HealthCheck, Phase, seed, settings

from aigre_policy import interpreter, ir
from aigre_policy.pack import Pack, load_pack
from aigre_policy.verdict import LATTICE

SCALE = float(os.environ.get("AIGRE_ADVERSARIAL_SCALE", "1"))
SEED = os.environ.get("AIGRE_ADVERSARIAL_SEED")
SHRINK = os.environ.get("AIGRE_ADVERSARIAL_SHRINK") == "1"


def count(base: int) -> int:
    """``base`` examples, scaled by ``AIGRE_ADVERSARIAL_SCALE``; at least one."""
    return max(1, round(base * SCALE))


def bounded(base: int):
    """Hypothesis settings for ``count(base)`` examples: a fixed sample unless a seed is set."""
    chosen = settings(
        max_examples=count(base),
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if SHRINK else [])],
    )

    def apply(test):
        test = chosen(test)
        return seed(int(SEED))(test) if SEED is not None else test

    return apply


@contextmanager
def pack_on_disk(spec: dict[str, Any]) -> Iterator[Path]:
    """A generated pack (``strategies_packs.packs``) written to a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="aigre-adv-") as tmp:
        files = {"schema.json": spec["schema"]}
        if "exemptions" in spec:
            files["exemptions.yaml"] = spec["exemptions"]
        yield write_pack(
            Path(tmp) / "generated", spec["source"], manifest=spec["manifest"], files=files
        )


def plain(value: Any) -> Any:
    """A value as its JSON round trip (envelope lists may be held as tuples)."""
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------- one shape for every engine


def from_verdict(verdict: Any) -> dict[str, Any]:
    """What a ``Verdict`` decides and why, rule by rule in pack order."""
    records = [*verdict.fired, *verdict.warnings]
    return {
        "decision": verdict.decision,
        "fail_closed": verdict.fail_closed,
        "rules": [
            (r["id"], r["verdict"], r["message"], plain(r["bindings"]))
            for r in sorted(records, key=lambda r: r["location"]["line"])
        ],
    }


def comparable(verdict: Any) -> dict[str, Any]:
    """Everything two engines' verdicts must share (``comparisons`` are native-only)."""

    def records(items):
        return [{k: v for k, v in r.items() if k != "comparisons"} for r in items]

    if verdict.fail_closed:  # engines word their faults differently; the kind is shared
        return {
            "decision": verdict.decision,
            "fail_closed": True,
            "errors": [e["kind"] for e in verdict.errors],
        }
    return plain(
        {
            "decision": verdict.decision,
            "fail_closed": verdict.fail_closed,
            "default_applied": verdict.default_applied,
            "fired": records(verdict.fired),
            "warnings": records(verdict.warnings),
            "approvers": verdict.approvers,
            "escalate_to": verdict.escalate_to,
            "exempted": verdict.exempted,
        }
    )


def reference(pack: Pack, document: dict[str, Any]) -> dict[str, Any]:
    """The reference interpreter's verdict: fired rules, messages and the values each read."""
    args = (pack.envelopes, document["action"], document["context"], document["usage"])
    try:
        indices = interpreter.fired(pack.program, *args)
        rules = [
            (
                pack.rules[i].id,
                pack.rules[i].verdict,
                interpreter.message(pack.rules[i], *args),
                plain(bindings(pack, pack.rules[i], document)),
            )
            for i in indices
        ]
    except Exception:
        return {"decision": pack.fail_closed, "fail_closed": True, "rules": []}
    verdicts = {rule[1] for rule in rules}
    worst = max((v for v in verdicts if v in LATTICE), key=LATTICE.__getitem__, default=None)
    if worst is None:
        worst = "allow" if pack.default == "allow" or "permit" in verdicts else "deny"
    return {"decision": worst, "fail_closed": False, "rules": rules}


def bindings(pack: Pack, rule: ir.Rule, document: dict[str, Any]) -> dict[str, Any]:
    """Every input path (present) and envelope value the rule's condition reads."""
    scope = {root: document[root] for root in ("action", "context", "usage")}
    found: dict[str, Any] = {}
    for node in ir.walk(rule.condition):
        if isinstance(node, ir.Path) and not node.local:
            value = interpreter.read(node, scope, absent_ok=True)
            if value is not None:
                found.setdefault(node.dotted, value)
        elif isinstance(node, ir.EnvelopeRef):
            found.setdefault(node.dotted, pack.envelopes[node.envelope][node.name])
    return dict(sorted(found.items()))


def engines(root: Path) -> tuple[Pack, Pack]:
    """The pack on the native engine and on rego (regopy)."""
    return load_pack(root), load_pack(root, engine="rego")


def built(root: Path, engine: str = "rego") -> Any:
    """The pack built as a bundle, loaded on ``engine``: its Rego alone decides, and lists
    what it exempted (no interpreter behind it)."""
    from aigre_policy.rego.bundle import build_pack_bundle  # only the bundle tests build

    archive = root.parent / "pack.tar.gz"
    archive.write_bytes(build_pack_bundle(root).archive)
    return load_pack(archive, engine=engine)
