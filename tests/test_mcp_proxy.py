"""The MCP proxy, end to end: the SDK's own client against `aigre-policy mcp-proxy` in front
of examples/mcp/ops_server.py, over stdio and over streamable HTTP on 127.0.0.1.

One agent session per transport walks the matrix: allowed, denied with the rule's
reason, held for approval then approved out of band (`mcp-approve`) and retried,
a restart budget exhausted after three calls, malformed arguments, an unmapped
tool, an escalation with no reviewer; then the decision log verifies. A crashing
upstream fails the call closed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import anyio
from mcp import Client, StdioServerParameters

from aigre_policy.cli.main import main
from aigre_policy.gate.log import read_log, verify_log

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "examples" / "mcp" / "ops-tools-pack"
SERVER = ROOT / "examples" / "mcp" / "ops_server.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    message = f"nothing listens on 127.0.0.1:{port}"
    if os.environ.get("AIGRE_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "directory.yaml").write_text("finops: [fay]\nsre-oncall: [sam]\n")
    return tmp_path


def proxy_args(workdir: Path, *more: str) -> list[str]:
    return [
        "-m",
        "aigre_policy.cli.main",
        "mcp-proxy",
        "--pack",
        str(PACK),
        "--ledger",
        f"sqlite:///{workdir / 'aigre.db'}",
        "--log",
        str(workdir / "decisions.jsonl"),
        "--directory",
        str(workdir / "directory.yaml"),
        "--actor",
        "agent-7",
        "--actor-trust",
        "3",
        *more,
    ]


def stdio_proxy(workdir: Path, *more: str, env: dict[str, str] | None = None) -> Any:
    args = proxy_args(workdir, *more, "--", sys.executable, str(SERVER))
    return StdioServerParameters(command=sys.executable, args=args, env=env or ENV)


@pytest.fixture
def http_proxy(workdir: Path) -> Iterator[str]:
    port = _free_port()
    args = proxy_args(workdir, "--listen", f"127.0.0.1:{port}", "--", sys.executable, str(SERVER))
    process = subprocess.Popen([sys.executable, *args], env=ENV, stderr=subprocess.PIPE)
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if hasattr(block, "text"))


async def agent_session(client: Client, workdir: Path) -> list[str]:
    """The matrix, as an agent meets it; returns one line per step."""
    steps: list[str] = []
    listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    assert {"restart", "scale", "rollback", "delete_data", "grant_access"} <= names
    meta = {tool.name: (tool.meta or {}).get("aigre-policy/mapping") for tool in listed.tools}
    assert meta["scale"] == {"gated": True, "kind": "scale"}
    assert meta["status"] == {"gated": True, "refused": "unmapped"}

    allowed = await client.call_tool("restart", {"service": "checkout"})
    assert not allowed.is_error and text(allowed) == "restarted checkout"  # unchanged
    steps.append("allowed: " + text(allowed))

    denied = await client.call_tool("delete_data", {"table": "orders"})
    assert denied.is_error
    assert "agents-keep-off-data-and-access" in text(denied)
    assert "data_deletion on orders is not an agent's to do" in text(denied)
    assert denied.structured_content["decision"] == "deny"
    steps.append("denied: " + ", ".join(denied.structured_content["rules"]))

    held = await client.call_tool("scale", {"service": "search", "replicas": 5})
    assert held.is_error and held.structured_content["decision"] == "require_approval"
    assert held.structured_content["approvers"] == ["finops"]
    assert "scaling search costs 150 USD" in text(held)
    assert "aigre-policy mcp-approve" in text(held)
    decision_id = held.structured_content["decision_id"]
    steps.append(f"held: scale needs {', '.join(held.structured_content['approvers'])}")

    # the agent cannot approve its own call; a person of finops can
    base = ["mcp-approve", "--pack", str(PACK), "--ledger", f"sqlite:///{workdir / 'aigre.db'}"]
    base += ["--log", str(workdir / "decisions.jsonl")]
    base += ["--directory", str(workdir / "directory.yaml")]
    assert (
        await anyio.to_thread.run_sync(
            main, [*base, decision_id, "--by", "agent-7", "--group", "finops"]
        )
        == 4
    )
    assert (
        await anyio.to_thread.run_sync(
            main, [*base, decision_id, "--by", "fay", "--group", "finops"]
        )
        == 0
    )
    retried = await client.call_tool("scale", {"service": "search", "replicas": 5})
    assert not retried.is_error, text(retried)
    assert text(retried) == "scaled search to 5 replicas"
    steps.append("approved, then allowed: " + text(retried))
    again = await client.call_tool("scale", {"service": "search", "replicas": 5})
    assert again.is_error, "the approval was used up by the run it let through"

    for service in ("api", "db"):  # with the first, 3 restarts this hour: the limit
        ok = await client.call_tool("restart", {"service": service})
        assert not ok.is_error, text(ok)
    over = await client.call_tool("restart", {"service": "cache"})
    assert over.is_error and "restart-budget" in text(over)
    assert "3 restarts in the last hour already" in text(over)
    steps.append("budget: " + over.structured_content["rules"][0])

    malformed = await client.call_tool("scale", {"service": "search", "replicas": "many"})
    assert malformed.is_error and "break its input schema" in text(malformed)
    assert "replicas" in text(malformed)
    missing = await client.call_tool("scale", {"service": "search"})
    assert missing.is_error and "'replicas' is a required property" in text(missing)

    unmapped = await client.call_tool("status", {"service": "checkout"})
    assert unmapped.is_error and "has no mapping" in text(unmapped)

    escalated = await client.call_tool("rollback", {"service": "payments", "version": "v41"})
    assert escalated.is_error and "critical-rollback" in text(escalated)
    assert "rolling payments back to v41 touches the payment path" in text(escalated)
    assert "Settled by: no reviewer: the pack's fail-closed decision." in text(escalated)
    steps.append("escalated, no reviewer: " + escalated.structured_content["decision"])
    return steps


def check_log(workdir: Path) -> None:
    report = verify_log(workdir / "decisions.jsonl")
    assert report.ok, report
    kinds = [entry.kind for entry in read_log(workdir / "decisions.jsonl")]
    assert kinds.count("approval") == 2  # the agent's refused, fay's granted
    assert "outcome" in kinds
    # the calls refused before the pack judged them are logged decisions too
    refused = [
        e.body["input"]["action"]["tool"]["name"]
        for e in read_log(workdir / "decisions.jsonl")
        if e.kind == "decision"
        and any(err["path"] == "gate.caller" for err in e.body["verdict"]["errors"])
    ]
    assert refused == ["scale", "scale", "status"]  # wrong type, missing, unmapped


def test_agent_session_over_stdio(workdir: Path) -> None:
    async def run() -> list[str]:
        async with Client(stdio_proxy(workdir)) as client:
            return await agent_session(client, workdir)

    steps = anyio.run(run)
    assert steps[0] == "allowed: restarted checkout"
    check_log(workdir)


def test_agent_session_over_http(workdir: Path, http_proxy: str) -> None:
    async def run() -> list[str]:
        async with Client(http_proxy) as client:
            return await agent_session(client, workdir)

    anyio.run(run)
    check_log(workdir)


def test_a_crashing_upstream_fails_the_call_closed(workdir: Path) -> None:
    env = {**ENV, "OPS_SERVER_CRASH_ON": "restart"}

    async def run() -> tuple[Any, Any]:
        async with Client(stdio_proxy(workdir, "--upstream-timeout", "10", env=env)) as client:
            first = await client.call_tool("restart", {"service": "checkout"})
            second = await client.call_tool("rollback", {"service": "web", "version": "v1"})
            return first, second

    first, second = anyio.run(run)
    assert first.is_error and "failed closed: the upstream server failed" in text(first)
    assert second.is_error  # the upstream is gone: nothing goes through
    outcomes = [e.body for e in read_log(workdir / "decisions.jsonl") if e.kind == "outcome"]
    assert outcomes and all(o["status"] == "failed" for o in outcomes)
    assert verify_log(workdir / "decisions.jsonl").ok


def test_a_streamable_http_upstream(workdir: Path) -> None:
    port = _free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(SERVER), "--http", str(port)], env=ENV, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for(port, upstream)
        args = proxy_args(workdir, "--upstream-url", f"http://127.0.0.1:{port}/mcp")

        async def run() -> tuple[Any, Any]:
            params = StdioServerParameters(command=sys.executable, args=args, env=ENV)
            async with Client(params) as client:
                ok = await client.call_tool("rollback", {"service": "web", "version": "v9"})
                no = await client.call_tool("grant_access", {"principal": "x", "role": "admin"})
                return ok, no

        ok, no = anyio.run(run)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    assert not ok.is_error and text(ok) == "rolled web back to v9"
    assert no.is_error and "iam_grant on admin is not an agent's to do" in text(no)


def test_check_upstream_reports_a_mapping_that_disagrees(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = workdir / "mcp.yaml"
    mapping.write_text(
        "tools:\n"
        "  - tool: restrat\n"
        "    action: {kind: restart, target: {from: arguments.service}}\n"
        "  - tool: scale\n"
        "    action: {kind: scale, target: {from: arguments.svc}}\n"
    )
    base = ["mcp-proxy", "--pack", str(PACK), "--check-upstream"]
    upstream = ["--", sys.executable, str(SERVER)]
    assert main([*base, "--mapping", str(mapping), *upstream]) == 1
    out = capsys.readouterr().out
    assert f"{mapping}:2:11: error[E522]: no tool the upstream declares matches `restrat`" in out
    assert "reads `arguments.svc` of `scale`: the tool's input schema declares no `svc`" in out
    assert main([*base, *upstream]) == 0


def test_the_session_in_the_docs_is_what_the_example_prints(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "agent_session", ROOT / "examples" / "mcp" / "agent_session.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    docs = (ROOT / "docs" / "mcp.md").read_text(encoding="utf-8")
    block = docs.split("<!-- session -->\n```\n")[1].split("```\n<!-- /session -->")[0]
    assert module.run(tmp_path) == block.splitlines()
