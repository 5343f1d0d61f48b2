"""An example MCP server of operations tools, to put the aigre-policy gate in front of.

    python examples/mcp/ops_server.py                  # stdio
    python examples/mcp/ops_server.py --http 8765      # streamable HTTP on 127.0.0.1:8765/mcp

Its tools pretend to act (nothing is restarted or deleted) and answer what they did.
`OPS_SERVER_CRASH_ON=TOOL` makes the process exit when TOOL is called: the gate's
tests use it to show that a crashing upstream fails the call closed.
"""

from __future__ import annotations

import os
import sys

from mcp.server import MCPServer

server = MCPServer("ops-tools")


def _maybe_crash(tool: str) -> None:
    if os.environ.get("OPS_SERVER_CRASH_ON") == tool:
        os._exit(3)  # the process dies mid-call, as a crashing server would


@server.tool()
def restart(service: str) -> str:
    """Restart every instance of a service, one at a time."""
    _maybe_crash("restart")
    return f"restarted {service}"


@server.tool()
def scale(service: str, replicas: int) -> str:
    """Set the number of replicas of a service."""
    _maybe_crash("scale")
    return f"scaled {service} to {replicas} replicas"


@server.tool()
def rollback(service: str, version: str) -> str:
    """Roll a service back to an earlier version."""
    _maybe_crash("rollback")
    return f"rolled {service} back to {version}"


@server.tool()
def delete_data(table: str) -> str:
    """Delete every row of a table."""
    _maybe_crash("delete_data")
    return f"deleted {table}"


@server.tool()
def grant_access(principal: str, role: str) -> str:
    """Grant a role to a principal."""
    _maybe_crash("grant_access")
    return f"granted {role} to {principal}"


@server.tool()
def status(service: str) -> str:
    """Read a service's status (the example pack maps no such tool)."""
    return f"{service}: healthy"


@server.resource("ops://services")
def services() -> str:
    """The services these tools act on (a resource: the gate passes it through unjudged)."""
    return "checkout, search, payments, api, db, cache"


@server.prompt()
def incident_triage(service: str) -> str:
    """A prompt to start triaging an incident (passed through the gate unchanged)."""
    return f"Look at the recent deploys and error rates of {service} before acting."


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
