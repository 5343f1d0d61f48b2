"""The MCP gate in-process: the middleware on an SDK server, elicitation, sampling, listing.

The SDK's client talks to examples/mcp/ops_server.py in the same process (its
in-memory transport), either guarded by the middleware or behind the proxy's
server object; no subprocess, so these run in well under a second each.
"""

from __future__ import annotations

import importlib.util
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import anyio
import mcp_types as types
from mcp import Client, MCPError

from aigre_policy.gate import FakeClock, Gate, StaticDirectory
from aigre_policy.gate.log import read_log, verify_log
from aigre_policy.mcp.mapping import load_mapping
from aigre_policy.mcp.middleware import guard_server
from aigre_policy.mcp.proxy import Upstream, build_server
from aigre_policy.mcp.toolgate import Approver, SamplingJudge, ToolGate

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "examples" / "mcp" / "ops-tools-pack"
AGENT = {"kind": "llm", "id": "agent-7", "trust": 3}


def ops_server() -> Any:
    """A fresh copy of the example server (its module holds one server object)."""
    path = ROOT / "examples" / "mcp" / "ops_server.py"
    spec = importlib.util.spec_from_file_location("ops_server_copy", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.server


def make_gate(tmp_path: Path, **options: Any) -> Gate:
    options.setdefault("directory", StaticDirectory({"finops": ["fay"]}))
    return Gate.from_pack(
        PACK,
        ledger=f"sqlite:///{tmp_path / 'aigre.db'}",
        log=tmp_path / "decisions.jsonl",
        clock=FakeClock("2025-03-11T14:00:00Z"),
        **options,
    )


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if hasattr(block, "text"))


async def yes(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    assert "scaling search costs 150 USD" in params.message
    return types.ElicitResult(action="accept", content={"approve": True})


async def no(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="decline")


def test_the_middleware_guards_an_sdk_server(tmp_path: Path) -> None:
    server = ops_server()
    with make_gate(tmp_path) as gate:
        guard_server(server, gate, load_mapping(PACK, gate.pack.input_schema), actor=AGENT)

        async def run() -> list[Any]:
            async with Client(server) as client:
                return [
                    await client.call_tool("restart", {"service": "checkout"}),
                    await client.call_tool("delete_data", {"table": "orders"}),
                    await client.call_tool("status", {"service": "checkout"}),
                    await client.call_tool("scale", {"service": "search", "replicas": "x"}),
                    # the actor is the configured identity: arguments cannot claim another
                    await client.call_tool(
                        "grant_access",
                        {"principal": "me", "role": "admin", "actor": {"kind": "human"}},
                    ),
                ]

        allowed, denied, unmapped, malformed, claimed = anyio.run(run)
    assert not allowed.is_error and text(allowed) == "restarted checkout"
    assert denied.is_error and "agents-keep-off-data-and-access" in text(denied)
    assert unmapped.is_error and "has no mapping" in text(unmapped)
    assert malformed.is_error and "break its input schema" in text(malformed)
    assert claimed.is_error and "iam_grant on admin is not an agent's to do" in text(claimed)
    decisions = [e.body for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    assert {d["input"]["context"]["actor"]["id"] for d in decisions} == {"agent-7"}
    assert verify_log(tmp_path / "decisions.jsonl").ok


def test_elicitation_approves_a_held_call_as_the_configured_person(tmp_path: Path) -> None:
    server = ops_server()
    with make_gate(tmp_path) as gate:
        mapping = load_mapping(PACK, gate.pack.input_schema)
        guard_server(server, gate, mapping, actor=AGENT, approver=Approver("fay", "finops"))

        async def run(callback: Any) -> Any:
            async with Client(server, mode="legacy", elicitation_callback=callback) as client:
                return await client.call_tool("scale", {"service": "search", "replicas": 5})

        declined = anyio.run(run, no)
        approved = anyio.run(run, yes)
    assert declined.is_error and declined.structured_content["decision"] == "require_approval"
    assert not approved.is_error and text(approved) == "scaled search to 5 replicas"
    approvals = [e.body for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "approval"]
    assert [(a["by"], a["group"], a["status"]) for a in approvals] == [("fay", "finops", "granted")]


@pytest.mark.parametrize("guarded", ["middleware", "proxy"])
def test_on_a_2026_connection_the_question_is_returned_and_the_answer_approves(
    tmp_path: Path, guarded: str
) -> None:
    with make_gate(tmp_path) as gate:
        mapping = load_mapping(PACK, gate.pack.input_schema)
        approver = Approver("fay", "finops")

        async def run() -> tuple[str, Any, Any]:
            async with AsyncExitStack() as stack:
                if guarded == "middleware":
                    server = ops_server()
                    guard_server(server, gate, mapping, actor=AGENT, approver=approver)
                else:
                    upstream = Upstream(await stack.enter_async_context(Client(ops_server())))
                    await upstream.refresh()
                    toolgate = ToolGate(gate, mapping, actor=AGENT, approver=approver)
                    server = build_server(toolgate, upstream)
                client = await stack.enter_async_context(Client(server, elicitation_callback=yes))
                # an answer the gate did not ask for (a forged request state) is not taken:
                # asked again (an SDK server's own request-state seal refuses it outright)
                try:
                    forged: Any = await client.session.call_tool(
                        "scale",
                        {"service": "search", "replicas": 5},
                        input_responses={
                            "aigre-policy/approval": types.ElicitResult(
                                action="accept", content={"approve": True}
                            )
                        },
                        request_state="0" * 64,
                        allow_input_required=True,
                    )
                except MCPError as refused:
                    forged = refused
                approved = await client.call_tool("scale", {"service": "search", "replicas": 5})
                return client.protocol_version, forged, approved

        version, forged, approved = anyio.run(run)
    assert version == "2026-07-28"
    expected = MCPError if guarded == "middleware" else types.InputRequiredResult
    assert isinstance(forged, expected)  # nothing approved by it
    assert not approved.is_error and text(approved) == "scaled search to 5 replicas"
    approvals = [e.body for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "approval"]
    assert [(a["by"], a["status"]) for a in approvals] == [("fay", "granted")]


def test_the_agent_itself_cannot_approve_through_elicitation(tmp_path: Path) -> None:
    server = ops_server()
    with make_gate(tmp_path, directory=StaticDirectory({"finops": ["agent-7"]})) as gate:
        mapping = load_mapping(PACK, gate.pack.input_schema)
        guard_server(server, gate, mapping, actor=AGENT, approver=Approver("agent-7", "finops"))

        async def run() -> Any:
            async with Client(server, mode="legacy", elicitation_callback=yes) as client:
                return await client.call_tool("scale", {"service": "search", "replicas": 5})

        held = anyio.run(run)
    assert held.is_error and held.structured_content["decision"] == "require_approval"


@pytest.mark.parametrize(
    ("answer", "refused"), [("ALLOW: a routine rollback", False), ("DENY", True)]
)
def test_the_clients_model_judges_an_escalation_through_sampling(
    tmp_path: Path, answer: str, refused: bool
) -> None:
    async def model(context: Any, params: types.CreateMessageRequestParams) -> Any:
        assert "touches the payment path" in params.messages[0].content.text
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=answer), model="m"
        )

    server = ops_server()
    with make_gate(tmp_path, reviewers=[SamplingJudge("llm-judge")]) as gate:
        guard_server(server, gate, load_mapping(PACK, gate.pack.input_schema), actor=AGENT)

        async def run() -> Any:
            async with Client(server, mode="legacy", sampling_callback=model) as client:
                return await client.call_tool("rollback", {"service": "payments", "version": "v4"})

        result = anyio.run(run)
    assert result.is_error is refused
    reviews = [e.body for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "review"]
    assert reviews and reviews[0]["reviewer"]["id"] == "mcp-sampling"


def test_without_sampling_an_escalation_stays_refused(tmp_path: Path) -> None:
    server = ops_server()
    with make_gate(tmp_path, reviewers=[SamplingJudge("llm-judge")]) as gate:
        guard_server(server, gate, load_mapping(PACK, gate.pack.input_schema), actor=AGENT)

        async def run() -> Any:
            async with Client(server) as client:
                return await client.call_tool("rollback", {"service": "payments", "version": "v4"})

        result = anyio.run(run)
    assert result.is_error and result.structured_content["decision"] == "escalate"
    assert "No reviewer settled the case" in text(result)


def _listed(tmp_path: Path, actor: Any, hide: bool, mapping_path: Path = PACK) -> set[str]:
    with make_gate(tmp_path) as gate:
        toolgate = ToolGate(gate, load_mapping(mapping_path, gate.pack.input_schema), actor=actor)

        async def run() -> set[str]:
            async with Client(ops_server()) as upstream_client:
                upstream = Upstream(upstream_client)
                await upstream.refresh()
                proxy = build_server(toolgate, upstream, hide_refused=hide)
                async with Client(proxy) as client:
                    return {tool.name for tool in (await client.list_tools()).tools}

        return anyio.run(run)


ALL_TOOLS = {"restart", "scale", "rollback", "delete_data", "grant_access", "status"}


def test_the_proxy_hides_refused_tools_when_asked(tmp_path: Path) -> None:
    assert _listed(tmp_path, AGENT, False) == ALL_TOOLS
    # status: unmapped; delete_data and grant_access: the pack denies an agent every
    # call of them, reading only the mapping's constant kind and the attested actor
    assert _listed(tmp_path, AGENT, True) == {"restart", "scale", "rollback"}
    # a person may: shown (the same tools, another actor)
    person = {"kind": "human", "id": "ops-person", "trust": 5}
    assert _listed(tmp_path, person, True) == ALL_TOOLS - {"status"}


def test_a_tool_whose_denial_depends_on_its_arguments_is_shown(tmp_path: Path) -> None:
    mapping = tmp_path / "mcp.yaml"
    text = (PACK / "mcp.yaml").read_text()
    # the kind now comes from the call: some call of delete_data might not be denied
    text = text.replace("kind: data_deletion", "kind: {from: arguments.table}")
    mapping.write_text(text)
    assert "delete_data" in _listed(tmp_path, AGENT, True, mapping)
    assert "grant_access" not in _listed(tmp_path, AGENT, True, mapping)


def test_resources_and_prompts_pass_through_the_proxy_unchanged(tmp_path: Path) -> None:
    with make_gate(tmp_path) as gate:
        toolgate = ToolGate(gate, load_mapping(PACK, gate.pack.input_schema), actor=AGENT)

        async def run(client: Client) -> tuple[Any, ...]:
            resources = await client.list_resources()
            read = await client.read_resource("ops://services")
            prompts = await client.list_prompts()
            prompt = await client.get_prompt("incident_triage", {"service": "checkout"})
            return resources, read, prompts, prompt

        async def both() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
            async with Client(ops_server()) as upstream_client:
                direct = await run(upstream_client)
                upstream = Upstream(upstream_client)
                await upstream.refresh()
                async with Client(build_server(toolgate, upstream)) as client:
                    return direct, await run(client)

        direct, proxied = anyio.run(both)
    resources, read, prompts, prompt = proxied
    assert [str(r.uri) for r in resources.resources] == ["ops://services"]
    assert read.contents[0].text == "checkout, search, payments, api, db, cache"
    assert [p.name for p in prompts.prompts] == ["incident_triage"]
    assert "error rates of checkout" in prompt.messages[0].content.text
    for seen, expected in zip(proxied, direct, strict=True):  # unchanged
        assert seen.model_dump(exclude={"meta"}) == expected.model_dump(exclude={"meta"})
    assert not (tmp_path / "decisions.jsonl").exists() or not read_log(tmp_path / "decisions.jsonl")


def test_the_upstreams_list_changed_notifications_reach_the_client(tmp_path: Path) -> None:
    received: list[Any] = []

    async def handler(message: Any) -> None:
        received.append(getattr(message, "root", message))

    with make_gate(tmp_path) as gate:
        toolgate = ToolGate(gate, load_mapping(PACK, gate.pack.input_schema), actor=AGENT)

        async def run() -> None:
            async with Client(ops_server()) as upstream_client:
                upstream = Upstream(upstream_client)
                await upstream.refresh()
                proxy = build_server(toolgate, upstream)
                async with Client(proxy, mode="legacy", message_handler=handler) as client:
                    await client.list_tools()  # the proxy knows this connection
                    # what the upstream's client hands the relay when the server says so
                    await upstream.relay(types.ToolListChangedNotification())
                    await upstream.relay(types.PromptListChangedNotification())
                    await client.list_tools()  # the notifications arrive before its answer

        anyio.run(run)
    kinds = [type(m).__name__ for m in received]
    assert "ToolListChangedNotification" in kinds and "PromptListChangedNotification" in kinds
