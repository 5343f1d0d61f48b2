"""``aigre-policy mcp-proxy`` and ``mcp-approve``: the gate in front of an MCP server.

``mcp-proxy --pack P [options] -- COMMAND ARGS...`` starts the upstream server
COMMAND over stdio (or connects to ``--upstream-url``), and serves its tools over
stdio (or streamable HTTP with ``--listen HOST:PORT``), every call judged by the
pack first. ``--check-upstream`` instead checks the pack's mapping against the
tools the upstream declares and exits: 0 when they agree, 1 when not.
``mcp-approve`` records a person's approval of a call the proxy held.

Exit codes: 0 done, 1 the mapping disagrees with the upstream, 2 misuse, a pack or
mapping that does not compile, or a missing ``mcp`` extra; 4 an approval refused.
The SDK is imported only when a command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from aigre_policy.cli.common import EXIT_APPROVAL, EXIT_FAILURES, EXIT_USAGE, UsageError
from aigre_policy.diagnostics import CompileError, SourceText, render

_INSTALL = 'the MCP gate needs the mcp extra: pip install "aigre-policy[mcp]"'
APPROVE_HINT = (
    "aigre-policy mcp-approve --pack {pack}{ledger}{log}{directory} {{decision_id}} "
    "--by NAME --group {{group}}"
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "mcp-proxy",
        help="put the gate in front of an MCP server",
        description="Serve an upstream MCP server's tools with every tools/call judged by the "
        "pack first: `aigre-policy mcp-proxy --pack P -- COMMAND ARGS...` (stdio upstream) or "
        "`--upstream-url URL` (streamable HTTP upstream).",
    )
    _common(parser)
    parser.add_argument("--upstream-url", metavar="URL", help="a streamable HTTP upstream")
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="with --listen: authenticate HTTP callers with this server configuration's "
        "`auth` section (API keys, JWT); each is attested as its own actor",
    )
    parser.add_argument("--actor", metavar="ID", help="the identity every call is attested as")
    parser.add_argument("--actor-kind", choices=("llm", "human", "automation"), default="llm")
    parser.add_argument("--actor-trust", type=int, default=0, metavar="0-5")
    parser.add_argument(
        "--approver",
        metavar="PERSON:GROUP",
        help="the person at the client, asked to approve held calls when it supports elicitation",
    )
    parser.add_argument(
        "--sampling-judge",
        metavar="TIER",
        help="serve this escalation tier with the client's own model (MCP sampling)",
    )
    parser.add_argument(
        "--hide-refused",
        action="store_true",
        help="leave tools the pack refuses outright out of tools/list",
    )
    parser.add_argument(
        "--upstream-timeout", type=float, default=60.0, metavar="SECONDS", help="per call"
    )
    parser.add_argument(
        "--check-upstream",
        action="store_true",
        help="check the mapping against the upstream's tools, print the problems and exit",
    )
    parser.add_argument("upstream", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS")
    parser.set_defaults(run=run_proxy)


def add_approve_parser(commands: argparse._SubParsersAction) -> None:
    """``mcp-approve`` (its own command module, cli/mcp_approve.py, names this)."""
    approve = commands.add_parser(
        "mcp-approve",
        help="approve a tool call the MCP proxy held for approval",
        description="Record that PERSON of GROUP approves the call the proxy held under "
        "DECISION_ID (the decision log gives the action); the agent's retry then goes through.",
    )
    _common(approve)
    approve.add_argument("decision_id", metavar="DECISION_ID")
    approve.add_argument("--by", required=True, metavar="PERSON")
    approve.add_argument("--group", required=True)
    approve.add_argument("--note", default="")
    approve.set_defaults(run=run_approve)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pack", required=True, metavar="PACK", help="the policy pack")
    parser.add_argument("--mapping", metavar="FILE", help="the mapping (default: PACK/mcp.yaml)")
    parser.add_argument("--ledger", metavar="URL", help="sqlite:///aigre.db: usage, approvals")
    parser.add_argument("--log", metavar="FILE", help="the decision log")
    parser.add_argument("--directory", metavar="FILE", help="approver groups: {group: [people]}")


def _options(args: argparse.Namespace) -> Any:
    from aigre_policy.mcp.setup import ProxyOptions

    actor = None
    if getattr(args, "actor", None):
        if not 0 <= args.actor_trust <= 5:
            raise UsageError("--actor-trust is 0 to 5")
        actor = {"kind": args.actor_kind, "id": args.actor, "trust": args.actor_trust}
    approver = None
    if getattr(args, "approver", None):
        person, _, group = args.approver.partition(":")
        if not person or not group:
            raise UsageError("--approver is PERSON:GROUP")
        approver = (person, group)
    return ProxyOptions(
        pack=args.pack,
        mapping=args.mapping,
        ledger=args.ledger,
        log=args.log,
        actor=actor,
        directory=args.directory,
        approver=approver,
        sampling_judge=getattr(args, "sampling_judge", None),
    )


def _approve_hint(args: argparse.Namespace) -> str:
    def opt(flag: str, value: str | None) -> str:
        return f" {flag} {value}" if value else ""

    return APPROVE_HINT.format(
        pack=args.pack,
        ledger=opt("--ledger", args.ledger),
        log=opt("--log", args.log),
        directory=opt("--directory", args.directory),
    )


def run_proxy(args: argparse.Namespace, console: Console) -> int:
    command = args.upstream[1:] if args.upstream[:1] == ["--"] else list(args.upstream)
    if bool(command) == bool(args.upstream_url):
        raise UsageError("give the upstream either as `-- COMMAND ARGS...` or --upstream-url")
    listen = None
    if args.listen:
        host, _, port = args.listen.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError("--listen is HOST:PORT, e.g. 127.0.0.1:8765")
        listen = (host, int(port))
    try:
        import anyio

        from aigre_policy.mcp import runner
    except ImportError:
        raise UsageError(_INSTALL) from None
    options = _options(args)
    errors = Console(stderr=True, soft_wrap=True, highlight=False)
    auth = None
    if args.config:
        if listen is None:
            raise UsageError("--config authenticates HTTP callers: it needs --listen")
        from aigre_policy.server.config import ConfigError, load_config

        try:
            auth = load_config(args.config).auth
        except ConfigError as exc:
            errors.print(escape(str(exc)))
            return EXIT_USAGE
        if auth is None:
            raise UsageError(f"{args.config} has no `auth` section: no caller could authenticate")
    try:
        if args.check_upstream:
            problems = anyio.run(
                runner.check, options, command, args.upstream_url, args.upstream_timeout
            )
            sources = SourceText(_mapping_text(options))
            for problem in problems:
                console.print(escape(render(problem, sources)), soft_wrap=True)
            if problems:
                return EXIT_FAILURES
            console.print("ok: the mapping agrees with the upstream's tools")
            return 0
        anyio.run(
            runner.serve,
            options,
            command,
            args.upstream_url,
            args.upstream_timeout,
            listen,
            args.hide_refused,
            _approve_hint(args),
            auth,
        )
    except CompileError as exc:
        errors.print(escape(exc.report()))
        return EXIT_USAGE
    except runner.SetupError as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        return EXIT_USAGE
    return 0


def _mapping_text(options: Any) -> dict[str, str]:
    path = options.mapping_path()
    try:
        return {str(path): path.read_text(encoding="utf-8")}
    except OSError:
        return {}


def run_approve(args: argparse.Namespace, console: Console) -> int:
    from aigre_policy.gate.errors import ApprovalRejected, GateError
    from aigre_policy.mcp.setup import approve_logged

    try:
        approval = approve_logged(
            _options(args), args.decision_id, by=args.by, group=args.group, note=args.note
        )
    except CompileError as exc:
        Console(stderr=True).print(escape(exc.report()))
        return EXIT_USAGE
    except (ApprovalRejected, GateError) as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]refused:[/red] {escape(str(exc))}")
        return EXIT_APPROVAL
    console.print(
        f"approved: {escape(approval.by)} ({escape(approval.group)}) for "
        f"{escape(approval.action_digest)}",
        soft_wrap=True,
    )
    return 0
