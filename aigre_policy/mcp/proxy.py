"""The MCP proxy: an MCP server that puts the gate in front of another MCP server.

The proxy connects to the upstream server as a client (a command it starts over
stdio, or a streamable HTTP URL), serves the upstream's tools to the agent over
stdio or streamable HTTP, and sends every ``tools/call`` through ``ToolGate``:
only an allowed call reaches the upstream. Built on the official ``mcp`` SDK's
low-level ``Server`` and ``Client``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from aigre_policy.mcp.listing import denied_for_every_call
from aigre_policy.mcp.mapping import ToolMapping, ToolRule
from aigre_policy.mcp.toolgate import APPROVE_SCHEMA, Sample, ToolGate, current_sampler


@dataclass(frozen=True)
class UpstreamSpec:
    """Where the upstream server is: a command to start (stdio) or a URL (streamable HTTP)."""

    command: Sequence[str] = ()
    url: str | None = None
    timeout_s: float = 60.0
    env: Mapping[str, str] | None = field(default=None, compare=False)

    def client(self, message_handler: Any = None) -> Client:
        if self.url:
            return Client(
                self.url,
                read_timeout_seconds=self.timeout_s,
                cache=None,
                message_handler=message_handler,
            )
        if not self.command:
            raise ValueError("no upstream: give a command after `--` or --upstream-url")
        env = dict(os.environ if self.env is None else self.env)
        params = StdioServerParameters(
            command=self.command[0], args=list(self.command[1:]), env=env
        )
        return Client(
            params, read_timeout_seconds=self.timeout_s, cache=None, message_handler=message_handler
        )


RELAYED = (
    types.ToolListChangedNotification,
    types.ResourceListChangedNotification,
    types.PromptListChangedNotification,
    types.ResourceUpdatedNotification,
)


class Relay:
    """The upstream's notifications (``list_changed``, ``resources/updated``), passed to
    every client connection the proxy has served, unchanged."""

    def __init__(self) -> None:
        self._peers: dict[int, Any] = {}  # a session of each connection seen, by connection

    def seen(self, ctx: ServerRequestContext[Any]) -> None:
        connection = getattr(ctx.session, "_connection", ctx.session)
        if len(self._peers) > 1000:
            self._peers.clear()
        self._peers[id(connection)] = ctx.session

    async def __call__(self, message: Any) -> None:
        message = getattr(message, "root", message)
        if not isinstance(message, RELAYED):
            return
        for session in list(self._peers.values()):
            try:
                await session.send_notification(message)
            except Exception:  # a connection gone: forget it
                self._peers = {k: v for k, v in self._peers.items() if v is not session}


class Upstream:
    """The connection to the upstream server and the tools it declares."""

    def __init__(self, client: Client, relay: Relay | None = None):
        self.client = client
        self.relay = relay or Relay()
        self.tools: list[types.Tool] = []
        self.schemas: dict[str, Mapping[str, Any] | None] = {}

    async def refresh(self) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(100):  # a server that pages forever is cut off
            page = await self.client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        self.tools = tools
        self.schemas = {t.name: t.input_schema for t in tools}
        return tools

    async def call(self, name: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
        return await self.client.call_tool(name, dict(arguments))


@asynccontextmanager
async def connected(spec: UpstreamSpec) -> AsyncIterator[Upstream]:
    """The upstream, connected and listed, for the life of the block."""
    async with AsyncExitStack() as stack:
        relay = Relay()
        client = await stack.enter_async_context(spec.client(relay))
        upstream = Upstream(client, relay)
        await upstream.refresh()
        yield upstream


def listed(
    tools: Sequence[types.Tool],
    mapping: ToolMapping,
    *,
    hide_refused: bool,
    denied: Callable[[ToolRule, str], bool] | None = None,
) -> list[types.Tool]:
    """The tools the agent sees: annotated with their mapping; with ``hide_refused``,
    without those refused outright (unmapped under ``unmapped: deny``, ``hide: true``,
    or, with ``denied``, those the pack denies whatever the arguments)."""
    out = []
    for tool in tools:
        rule = mapping.match(tool.name)
        refused = (rule is None and mapping.unmapped == "deny") or (rule is not None and rule.hide)
        if hide_refused and not refused and rule is not None and denied is not None:
            refused = denied(rule, tool.name)
        if hide_refused and refused:
            continue
        note: dict[str, Any] = {"gated": rule is not None or mapping.unmapped == "deny"}
        if rule is not None:
            kind = rule.fields.get("kind")
            if isinstance(kind, str):
                note["kind"] = kind
        elif mapping.unmapped == "deny":
            note["refused"] = "unmapped"
        meta = {**(tool.meta or {}), "aigre-policy/mapping": note}
        out.append(tool.model_copy(update={"meta": meta}))
    return out


CALLER = "aigre_policy.caller"  # the ASGI scope key of an HTTP request's authenticated caller


def caller_actor(ctx: ServerRequestContext[Any]) -> tuple[bool, dict[str, Any] | None]:
    """Whether the request carries an authenticated caller, and its actor."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    if not isinstance(scope, Mapping) or CALLER not in scope:
        return False, None
    return True, scope[CALLER].actor


class Authenticated:
    """ASGI middleware: every HTTP request authenticates with the server's identity
    configuration (``aigre_policy.server.identity``); no usable credentials is a 401,
    a caller without the ``check`` scope a 403. The caller rides in the request's scope,
    so each call is attested as whoever sent that very request."""

    def __init__(self, app: Any, authenticator: Any):
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        from aigre_policy.server.identity import Unauthenticated

        try:
            caller = self.authenticator.caller(Headers(scope=scope))
        except Unauthenticated as exc:
            response = JSONResponse(
                {"code": "unauthorized", "message": str(exc)},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        if not caller.may("check"):
            response = JSONResponse(
                {"code": "forbidden", "message": f"{caller.name} lacks the `check` scope"},
                status_code=403,
            )
            await response(scope, receive, send)
            return
        await self.app({**scope, CALLER: caller}, receive, send)


def build_server(
    toolgate: ToolGate,
    upstream: Upstream,
    *,
    hide_refused: bool = False,
    name: str = "",
    authenticated: bool = False,
) -> Server[Any]:
    """The proxy's low-level MCP server over a connected upstream.

    ``authenticated``: served over HTTP behind ``Authenticated``: each call is attested
    as the caller its request authenticated as (a call without one is refused).
    """

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        upstream.relay.seen(ctx)
        tools = await upstream.refresh()
        actor = caller_actor(ctx)[1] if authenticated else toolgate.actor
        pack, mapping = toolgate.gate.pack, toolgate.mapping

        def denied(rule: ToolRule, tool: str) -> bool:
            return denied_for_every_call(pack, mapping, rule, tool, actor)

        return types.ListToolsResult(
            tools=listed(tools, mapping, hide_refused=hide_refused, denied=denied)
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        name, arguments = params.name, params.arguments or {}
        upstream.relay.seen(ctx)
        actor = None
        if authenticated:
            known, actor = caller_actor(ctx)
            if not known:  # only reachable if the middleware is bypassed: fail closed
                return await toolgate.refuse_unjudged(
                    name, arguments, None, "unauthenticated", "the call carries no identity"
                )

        async def forward() -> types.CallToolResult:
            return await upstream.call(name, arguments)

        if name not in upstream.schemas:
            # a tool added upstream since the last listing; an unreachable upstream leaves
            # the tool unknown, and the call fails closed below
            with contextlib.suppress(Exception):
                await upstream.refresh()
        token = current_sampler.set(sampling_for(ctx))
        try:
            result = await toolgate.call(
                name,
                arguments,
                upstream.schemas,
                forward,
                ask=elicitation_for(ctx),
                answers=params.input_responses,
                request_state=params.request_state,
                may_return_question=may_return_question(ctx),
                actor=actor,
            )
        finally:
            current_sampler.reset(token)
        return result

    return Server(
        name or "aigre-policy-mcp-proxy",
        version=_version(),
        instructions="Every tool call passes the aigre-policy gate first; a refusal says why.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        **passed_through(upstream),
    )


def passed_through(upstream: Upstream) -> dict[str, Any]:
    """Handlers relaying what is not a tool call (resources, prompts, completions) to the
    upstream unchanged: only what the upstream declares it serves, so the proxy's
    capabilities are the upstream's. None of it acts, so none of it is judged."""
    try:
        caps = upstream.client.server_capabilities
    except Exception:  # not connected through the SDK's ``Client``: tools only
        return {}
    session = upstream.client.session
    handlers: dict[str, Any] = {}
    if caps.resources is not None:

        async def list_resources(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListResourcesResult:
            return await session.list_resources(params=params)

        async def list_templates(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListResourceTemplatesResult:
            return await session.list_resource_templates(params=params)

        async def read_resource(
            ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
        ) -> types.ReadResourceResult | types.InputRequiredResult:
            return await session.read_resource(
                str(params.uri),
                input_responses=params.input_responses,
                request_state=params.request_state,
                allow_input_required=True,
            )

        handlers.update(
            on_list_resources=list_resources,
            on_list_resource_templates=list_templates,
            on_read_resource=read_resource,
        )
    if caps.prompts is not None:

        async def list_prompts(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListPromptsResult:
            return await session.list_prompts(params=params)

        async def get_prompt(
            ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
        ) -> types.GetPromptResult | types.InputRequiredResult:
            return await session.get_prompt(
                params.name,
                params.arguments,
                input_responses=params.input_responses,
                request_state=params.request_state,
                allow_input_required=True,
            )

        handlers.update(on_list_prompts=list_prompts, on_get_prompt=get_prompt)
    if caps.completions is not None:

        async def complete(
            ctx: ServerRequestContext[Any], params: types.CompleteRequestParams
        ) -> types.CompleteResult:
            request = types.CompleteRequest(params=params)
            return await session.send_request(request, types.CompleteResult)

        handlers["on_completion"] = complete
    return handlers


def _version() -> str:
    from aigre_policy.version import __version__

    return __version__


def _can_ask(ctx: ServerRequestContext[Any], capability: str) -> bool:
    caps = ctx.session.client_capabilities
    return (
        caps is not None
        and getattr(caps, capability, None) is not None
        and bool(ctx.session.can_send_request)
    )


def may_return_question(ctx: ServerRequestContext[Any]) -> bool:
    """A 2026-07-28 connection whose client declared elicitation: a held call may answer
    with its approval question (``InputRequiredResult``) for the client to put to a person."""
    caps = ctx.session.client_capabilities
    return (
        ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        and caps is not None
        and caps.elicitation is not None
    )


def elicitation_for(ctx: ServerRequestContext[Any]) -> Any:
    """Elicitation for this call, when the client supports it on this connection."""
    if not _can_ask(ctx, "elicitation"):
        return None

    async def ask(question: str) -> bool:
        answer = await ctx.session.elicit_form(
            question, APPROVE_SCHEMA, related_request_id=ctx.request_id
        )
        return answer.action == "accept" and bool((answer.content or {}).get("approve"))

    return ask


def sampling_for(ctx: ServerRequestContext[Any]) -> Sample | None:
    """The client's model for this call, when the client offers sampling on this connection."""
    if not _can_ask(ctx, "sampling"):
        return None

    async def sample(prompt: str) -> str:
        with warnings.catch_warnings():  # deprecated on 2026-07-28 connections, where it is unused
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            result = await ctx.session.create_message(
                [
                    types.SamplingMessage(
                        role="user", content=types.TextContent(type="text", text=prompt)
                    )
                ],
                max_tokens=200,
                related_request_id=ctx.request_id,
            )
        content = result.content
        return content.text if isinstance(content, types.TextContent) else ""

    return sample


async def serve_stdio(server: Server[Any]) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(server: Server[Any], host: str, port: int, authenticator: Any = None) -> None:
    import uvicorn

    app: Any = server.streamable_http_app(host=host)
    if authenticator is not None:
        app = Authenticated(app, authenticator)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()


__all__ = [
    "Authenticated",
    "Upstream",
    "UpstreamSpec",
    "build_server",
    "connected",
    "listed",
    "serve_http",
    "serve_stdio",
]
