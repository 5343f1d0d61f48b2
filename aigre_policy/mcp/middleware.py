"""The MCP gate in-process: a middleware for servers built with the ``mcp`` SDK.

    from mcp.server import MCPServer
    from aigre_policy.mcp.middleware import guard_server

    server = MCPServer("ops-tools")
    ...  # @server.tool() functions
    guard_server(server, gate, mapping, actor={"kind": "llm", "id": "agent-7", "trust": 3})

Every ``tools/call`` the server receives goes through the same ``ToolGate`` as the
proxy's (mapping, argument validation against the tool's input schema, the gate,
elicitation and sampling where the client offers them) before the tool runs; a
refusal is answered as a tool result with ``isError: true``. Other messages pass
untouched. It is an SDK ``ServerMiddleware`` (``server.middleware``), which the SDK
marks provisional.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, ServerRequestContext

from aigre_policy.gate.gate import Gate
from aigre_policy.mcp.mapping import ToolMapping
from aigre_policy.mcp.proxy import elicitation_for, may_return_question, sampling_for
from aigre_policy.mcp.toolgate import Approver, ToolGate, current_sampler

ListTools = Callable[[], Awaitable[Iterable[types.Tool]]]


class GateMiddleware:
    """A ``ServerMiddleware`` judging each ``tools/call`` with a ``ToolGate``.

    ``list_tools``: the server's own tools (their input schemas validate each call).
    """

    def __init__(self, toolgate: ToolGate, list_tools: ListTools):
        self.toolgate = toolgate
        self.list_tools = list_tools

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        if ctx.method != "tools/call" or ctx.request_id is None:
            return await call_next(ctx)
        params: Mapping[str, Any] = ctx.params or {}
        name = params.get("name")
        if not isinstance(name, str):
            return await call_next(ctx)  # the SDK answers a malformed request itself
        declared = {tool.name: tool.input_schema for tool in await self.list_tools()}

        async def forward() -> Any:
            return await call_next(ctx)

        token = current_sampler.set(sampling_for(ctx))
        try:
            result = await self.toolgate.call(
                name,
                params.get("arguments"),
                declared,
                forward,
                ask=elicitation_for(ctx),
                answers=params.get("inputResponses"),
                request_state=params.get("requestState"),
                may_return_question=may_return_question(ctx),
            )
        finally:
            current_sampler.reset(token)
        if isinstance(result, types.CallToolResult | types.InputRequiredResult):
            # a refusal or a question: the wire form is ours to give
            return result.model_dump(by_alias=True, mode="json", exclude_none=True)
        return result


def guard_server(
    server: Any,
    gate: Gate,
    mapping: ToolMapping,
    *,
    actor: Mapping[str, Any] | None = None,
    approver: Approver | None = None,
    list_tools: ListTools | None = None,
) -> ToolGate:
    """Put the gate in front of every tool of ``server`` (an ``MCPServer``, or a low-level
    ``Server`` with ``list_tools`` given); returns the ``ToolGate`` it installed."""
    toolgate = ToolGate(gate, mapping, actor=actor, approver=approver)
    if list_tools is None:
        list_tools = server.list_tools  # MCPServer: its registered tools
    server.middleware.append(GateMiddleware(toolgate, list_tools))
    return toolgate
