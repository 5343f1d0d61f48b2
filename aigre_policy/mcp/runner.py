"""Run the MCP proxy, or check its mapping against the upstream: what the command calls."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

from aigre_policy.diagnostics import Diagnostic
from aigre_policy.gate.errors import GateError
from aigre_policy.mcp.proxy import UpstreamSpec, build_server, connected, serve_http, serve_stdio
from aigre_policy.mcp.setup import ProxyOptions, build_gate
from aigre_policy.mcp.toolgate import Approver, SamplingJudge, ToolGate
from aigre_policy.mcp.upstream_check import check_upstream


class SetupError(Exception):
    """The proxy cannot start: the upstream is unreachable, the directory unreadable, ..."""


def _spec(command: Sequence[str], url: str | None, timeout_s: float) -> UpstreamSpec:
    return UpstreamSpec(command=tuple(command), url=url, timeout_s=timeout_s)


async def check(
    options: ProxyOptions, command: Sequence[str], url: str | None, timeout_s: float
) -> list[Diagnostic]:
    """E522 for each disagreement between the pack's mapping and the upstream's tools."""
    try:
        gate, mapping = build_gate(options)
    except GateError as exc:
        raise SetupError(str(exc)) from None
    gate.close()
    try:
        async with connected(_spec(command, url, timeout_s)) as upstream:
            return check_upstream(mapping, upstream.schemas)
    except Exception as exc:
        raise SetupError(f"cannot list the upstream's tools: {type(exc).__name__}: {exc}") from None


async def serve(
    options: ProxyOptions,
    command: Sequence[str],
    url: str | None,
    timeout_s: float,
    listen: tuple[str, int] | None,
    hide_refused: bool,
    approve_hint: str,
    auth: Any = None,
) -> None:
    """Serve the upstream's tools behind the gate until the client (or a signal) ends it.

    ``auth``: the server's ``AuthConfig``; over HTTP each caller authenticates with it and
    is attested as its own actor."""
    authenticator = None
    if auth is not None:
        from aigre_policy.server.identity import Authenticator

        try:
            authenticator = Authenticator(auth)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
    reviewers: list[Any] = []
    if options.sampling_judge:
        reviewers.append(SamplingJudge(options.sampling_judge))
    try:
        gate, mapping = build_gate(options, reviewers)
    except GateError as exc:
        raise SetupError(str(exc)) from None
    approver = Approver(*options.approver) if options.approver else None
    toolgate = ToolGate(
        gate, mapping, actor=options.actor, approver=approver, approve_hint=approve_hint
    )
    async with AsyncExitStack() as stack:
        stack.callback(gate.close)
        try:
            upstream = await stack.enter_async_context(connected(_spec(command, url, timeout_s)))
        except Exception as exc:
            raise SetupError(f"cannot start the upstream: {type(exc).__name__}: {exc}") from None
        server = build_server(
            toolgate, upstream, hide_refused=hide_refused, authenticated=authenticator is not None
        )
        try:
            if listen is None:
                await serve_stdio(server)
            else:
                await serve_http(server, *listen, authenticator)
        finally:
            await toolgate.drain()
