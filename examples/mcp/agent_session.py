"""An agent session through the MCP gate: denied, held and approved, allowed.

Run it from the repository root (needs `pip install "aigre-policy[mcp]"`):

    python examples/mcp/agent_session.py [WORKDIR]

It starts `aigre-policy mcp-proxy` over stdio in front of examples/mcp/ops_server.py
with the example pack, connects the MCP SDK's client to it as an agent would, and
prints each step: a restart (allowed), a table deletion (denied, with the rule's
reason), a costly scale-up (held for FinOps; fay approves it with `aigre-policy
mcp-approve`; the agent's retry goes through). The ledger, the approver directory
and the hash-chained decision log land in WORKDIR; the log is verified at the end.
docs/mcp.md shows this output, and a test checks that the two agree.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from aigre_policy.cli.main import main as aigre_policy
from aigre_policy.gate.log import verify_log

ROOT = Path(__file__).resolve().parent.parent.parent
PACK = ROOT / "examples" / "mcp" / "ops-tools-pack"
SERVER = ROOT / "examples" / "mcp" / "ops_server.py"


def gate_options(workdir: Path) -> list[str]:
    return [
        "--pack", str(PACK),
        "--ledger", f"sqlite:///{workdir / 'aigre.db'}",
        "--log", str(workdir / "decisions.jsonl"),
        "--directory", str(workdir / "directory.yaml"),
    ]  # fmt: skip


def text(result: Any) -> str:
    return " / ".join(block.text for block in result.content if hasattr(block, "text"))


async def session(workdir: Path) -> list[str]:
    proxy = StdioServerParameters(
        command=sys.executable,
        args=[
            *("-m", "aigre_policy.cli.main", "mcp-proxy", *gate_options(workdir)),
            *("--actor", "agent-7", "--actor-kind", "llm", "--actor-trust", "3"),
            *("--", sys.executable, str(SERVER)),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = []
    async with Client(proxy) as agent:
        tools = await agent.list_tools()
        lines.append("tools:    " + ", ".join(tool.name for tool in tools.tools))

        done = await agent.call_tool("restart", {"service": "checkout"})
        lines.append(f"allowed:  restart -> {text(done)}")

        refused = await agent.call_tool("delete_data", {"table": "orders"})
        lines.append(f"denied:   delete_data -> {refused.content[0].text.splitlines()[1]}")

        held = await agent.call_tool("scale", {"service": "search", "replicas": 5})
        answer = held.structured_content
        lines.append(f"held:     scale -> {answer['decision']} by {', '.join(answer['approvers'])}")
        lines.append(f"          {held.content[0].text.splitlines()[1]}")

        approve = [*gate_options(workdir), answer["decision_id"]]
        approve += ["--by", "fay", "--group", "finops"]
        code = await anyio.to_thread.run_sync(aigre_policy, ["mcp-approve", *approve])
        lines.append(f"approved: fay (finops), exit {code}")

        retried = await agent.call_tool("scale", {"service": "search", "replicas": 5})
        lines.append(f"allowed:  scale -> {text(retried)}")
    report = verify_log(workdir / "decisions.jsonl")
    lines.append(f"log:      {report.entries} entries, chain {'intact' if report.ok else 'BROKEN'}")
    return lines


def run(workdir: Path) -> list[str]:
    (workdir / "directory.yaml").write_text("finops: [fay]\n", encoding="utf-8")
    return anyio.run(session, workdir)


def main(argv: list[str]) -> int:
    workdir = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="mcp-session-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for line in run(workdir):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
