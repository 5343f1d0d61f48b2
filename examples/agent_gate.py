"""A scripted remediation agent whose every tool call goes through the gate.

Run it from the repository root:

    python examples/agent_gate.py [WORKDIR]

The agent restarts a service (allowed), scales another past the per-action cost
cap (held for FinOps, approved by a person, then run), rolls back a release
(allowed) and tries to delete a table (denied: outside what an LLM agent may do).
The ledger and the hash-chained decision log land in WORKDIR (a temporary
directory by default); the script prints each step and verifies the log.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from aigre_policy import ApprovalRequired, Denied, Gate
from aigre_policy.gate import FakeClock, StaticContext, StaticDirectory
from aigre_policy.gate.log import verify_log

PACK = Path(__file__).resolve().parent.parent / "policy_packs" / "aigre-baseline"

AGENT = {"kind": "llm", "id": "agent-remediator", "model": "claude-sonnet-4", "trust": 3}
# the alert the agent cites, as the monitoring system reports it firing: attested
STATIC_CONTEXT = StaticContext(
    error_budget_remaining=0.4, alerts_firing=({"id": "ALERT-20931", "service": "checkout-api"},)
)


def build_gate(workdir: Path) -> Gate:
    return Gate.from_pack(
        PACK,
        ledger=f"sqlite:///{workdir / 'aigre.db'}",
        log=workdir / "decisions.jsonl",
        context=STATIC_CONTEXT,
        clock=FakeClock("2025-03-11T14:03:00Z"),  # a fixed time keeps the script repeatable
        directory=StaticDirectory({"finops": ["fay.finops"], "sre-oncall": ["sam.sre"]}),
        # who the agent is, as this tool authenticated it: attested as context.actor,
        # since packs never take the proposal's word for who proposes it (docs/packs.md)
        identity={k: AGENT[k] for k in ("kind", "id", "trust")},
        defaults={
            "environment": "production",
            "actor": AGENT,
            "reversible": True,
            "blast_radius": {"users_share": 0.1},
            "cost": {"estimated_usd": 0},
            "justification": {"signal": "alert", "ref": "ALERT-20931"},
            "requested_at": "2025-03-11T14:02:50Z",
        },
    )


def tools(gate: Gate) -> dict[str, Any]:
    """The agent's tools; the decorators turn each call into a proposed action."""

    @gate.guard(kind="restart", target=lambda service: service, change={"type": "config"})
    def restart(service: str) -> str:
        return f"restarted {service}"

    @gate.guard(
        kind="scale",
        target=lambda service, nodes: service,
        change={"type": "infra"},
        cost=lambda service, nodes: {"estimated_usd": 25.0 * nodes},
    )
    def scale(service: str, nodes: int) -> str:
        return f"scaled {service} to {nodes} nodes"

    @gate.guard(
        kind="rollback",
        target=lambda service, version: service,
        change={"type": "code"},
        rollback={"plan": "redeploy the current version", "tested": True},
    )
    def roll_back(service: str, version: str) -> str:
        return f"rolled {service} back to {version}"

    @gate.guard(
        kind="data_deletion",
        target=lambda table: table,
        change={"type": "data"},
        reversible=False,
        data={"classification": "internal", "records": 120_000},
    )
    def delete(table: str) -> str:
        return f"deleted {table}"

    return {"restart": restart, "scale": scale, "roll_back": roll_back, "delete": delete}


def run(workdir: Path) -> list[str]:
    """Play the script; returns one line per step, as printed."""
    lines: list[str] = []
    with build_gate(workdir) as gate:
        agent = tools(gate)
        lines.append("allowed:  " + agent["restart"]("checkout-api"))
        try:
            agent["scale"]("search-indexer", 16)
        except ApprovalRequired as held:
            verdict = held.verdict
            lines.append(
                f"held:     scale needs {', '.join(verdict.approvers)} ({verdict.rule_ids[0]})"
            )
            gate.approve(verdict, by="fay.finops", group="finops", note="sale traffic")
            lines.append("approved: by fay.finops")
            lines.append("allowed:  " + agent["scale"]("search-indexer", 16))
        lines.append("allowed:  " + agent["roll_back"]("checkout-api", "v2.40.3"))
        try:
            agent["delete"]("orders_archive")
        except Denied as refused:
            lines.append(f"denied:   delete ({', '.join(refused.verdict.rule_ids)})")
    report = verify_log(workdir / "decisions.jsonl")
    lines.append(f"log:      {report.entries} entries, chain {'intact' if report.ok else 'BROKEN'}")
    return lines


def main(argv: list[str]) -> int:
    workdir = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="agent-gate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for line in run(workdir):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
