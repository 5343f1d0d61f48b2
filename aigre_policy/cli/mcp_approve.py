"""``aigre-policy mcp-approve``: record a person's approval of a call the MCP proxy held.

The command lives with ``mcp-proxy`` (cli/mcp_proxy.py); this module names it for the
CLI's table of commands.
"""

from __future__ import annotations

from aigre_policy.cli.mcp_proxy import add_approve_parser as add_parser

__all__ = ["add_parser"]
