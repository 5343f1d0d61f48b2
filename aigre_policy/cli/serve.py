"""``aigre-policy serve PACK``: the gate as an HTTP policy decision point.

Starlette, uvicorn and the rest of the ``serve`` extra are imported inside ``run``
only, so the CLI starts fast and a missing extra is one line with exit code 2.

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
from pathlib import Path

from rich.console import Console

from aigre_policy.cli.common import EXIT_USAGE, UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8181
DEFAULT_LEDGER = "sqlite:///aigre.db"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve a pack over HTTP (native, OPA Data API, AuthZEN 1.0)",
        description="Run the gate as an HTTP server: POST /v1/check, POST /v1/data/{path}, "
        "AuthZEN 1.0 under /access/v1/, approvals, /healthz, /readyz, /metrics. "
        "Exit code 2 on misuse (a pack that does not compile, a bad config, a missing extra).",
    )
    parser.add_argument("pack", help="the pack directory")
    parser.add_argument(
        "--ledger",
        metavar="URL",
        help=f"the usage ledger and approval store (default: the config's, else {DEFAULT_LEDGER})",
    )
    parser.add_argument("--log", metavar="FILE", help="the hash-chained decision log")
    parser.add_argument("--config", metavar="FILE", help="the server configuration (YAML)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    parser.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    parser.set_defaults(run=run)


def _missing_extra(exc: ImportError) -> UsageError:
    return UsageError(
        f"`aigre-policy serve` needs the serve extra ({exc.name} is missing): "
        'pip install "aigre-policy[serve]"'
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_runtime(args: argparse.Namespace) -> object:
    """The runtime the app serves, from the arguments; ``UsageError`` says what is wrong."""
    from aigre_policy.diagnostics import CompileError
    from aigre_policy.gate.errors import GateError
    from aigre_policy.gate.ledger import LedgerError
    from aigre_policy.server.authzen_mapping import MappingError
    from aigre_policy.server.config import ConfigError, load_config
    from aigre_policy.server.runtime import Runtime

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        first, *rest = str(exc).splitlines()
        more = f" (and {len(rest)} more problem{'s' if len(rest) > 1 else ''})" if rest else ""
        raise UsageError(first + more) from None
    update: dict[str, object] = {}
    if args.ledger:
        update["ledger"] = args.ledger
    elif config.ledger is None:
        update["ledger"] = DEFAULT_LEDGER
    if args.log:
        update["log"] = Path(args.log)
    config = config.model_copy(update=update)
    if config.auth is None and not _loopback(args.host):
        raise UsageError(
            f"refusing to serve on {args.host} without an `auth` section in --config: "
            "every caller would be anonymous; bind to 127.0.0.1 or configure API keys or JWT"
        )
    if not Path(args.pack).exists():
        raise UsageError(f"no pack at {args.pack}")
    if Path(args.pack).is_file():
        raise UsageError(
            f"{args.pack} is a file: serve takes a pack directory (the gate computes usage "
            "from the pack's source; a built bundle runs on OPA)"
        )
    try:
        runtime = Runtime(args.pack, config)
    except CompileError as exc:
        problem = exc.diagnostics[0] if getattr(exc, "diagnostics", None) else exc
        raise UsageError(f"the pack does not compile: {problem}") from None
    except (GateError, LedgerError, MappingError, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    try:
        from aigre_policy.server.telemetry import from_config

        runtime.telemetry = from_config(config.telemetry)
    except ImportError as exc:
        raise UsageError(f'telemetry needs {exc.name}: pip install "aigre-policy[serve]"') from None
    return runtime


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the pack compiles: a port in use is one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _tls_files(args: argparse.Namespace) -> tuple[str, str] | None:
    """The certificate and key files of ``--tls-cert`` and ``--tls-key`` (both, or neither)."""
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--tls-cert and --tls-key go together")
    for name, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise UsageError(f"{name}: no file at {path}")
    try:
        import ssl

        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(f"--tls-cert/--tls-key cannot be used: {exc}") from None
    return cert, key


def run(args: argparse.Namespace, console: Console) -> int:
    try:
        import uvicorn

        from aigre_policy.server.app import create_app
    except ImportError as exc:
        raise _missing_extra(exc) from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    tls = _tls_files(args)
    sock = _listen(args.host, args.port)
    runtime = build_runtime(args)
    try:
        app = create_app(runtime, bound_host=args.host)  # type: ignore[arg-type]
    except ValueError as exc:  # a webhook's secret that cannot be read
        raise UsageError(str(exc)) from None
    port = sock.getsockname()[1]
    status = Console(stderr=True, highlight=False)  # standard output stays the caller's
    scheme = "http" if tls is None else "https"
    status.print(f"serving {args.pack} on {scheme}://{args.host}:{port}")
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


__all__ = ["EXIT_USAGE", "add_parser", "run"]
