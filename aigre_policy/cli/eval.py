"""``aigre-policy eval``: judge one proposed action with a pack."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from aigre_policy.cli.common import (
    DECISION_EXIT,
    EXIT_FAIL_CLOSED,
    EXIT_USAGE,
    UsageError,
    parse_overrides,
    read_eval_input,
)
from aigre_policy.cli.keys import add_verification_arguments, verification_from
from aigre_policy.cli.view import show_verdict
from aigre_policy.diagnostics import CompileError
from aigre_policy.pack import load_pack
from aigre_policy.rego.attach import rego_program, render_modules
from aigre_policy.rego.bundle import BundleError
from aigre_policy.rego.engine import engine_names, register_engine
from aigre_policy.rego.opa_server import (  # importing it registers the `opa` engine
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    OpaOptions,
    opa_engine,
    parse_url,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="evaluate one proposed action",
        description="Evaluate a proposed action and print the verdict with its evidence. "
        "Exit code: 0 allow, 3 escalate, 4 require_approval, 5 deny, 6 failed closed "
        "(invalid input or engine fault), 2 misuse or a pack that does not compile.",
    )
    parser.add_argument("pack", help="the pack directory, or a bundle built from it (.tar.gz)")
    parser.add_argument(
        "--action",
        help="action file (JSON or YAML; a case file with "
        "action/context/usage also works), or - for stdin",
    )
    parser.add_argument("--context", help="context file (overrides a case file's)")
    parser.add_argument("--usage", help="usage values file (overrides a case file's)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--set",
        action="append",
        metavar="ENVELOPE.NAME=VALUE",
        help="override an envelope value (repeatable)",
    )
    parser.add_argument(
        "--emit",
        choices=("python", "rego"),
        help="print the generated evaluator (Python, or the Rego modules) instead of evaluating",
    )
    parser.add_argument(
        "--engine",
        choices=engine_names(),
        help="native: generated Python (the default for a pack directory); rego: the pack "
        "compiled to Rego, run with regopy (the default for a bundle)",
    )
    parser.add_argument(
        "--why-not",
        nargs="?",
        const="allow",
        choices=("allow", "escalate", "require_approval", "deny"),
        metavar="DECISION",
        help="also print the smallest change to the proposal that would give DECISION "
        "(default allow), attested fields held; found with the SMT solver, checked by "
        "evaluating it (docs/proof.md)",
    )
    add_verification_arguments(parser)
    opa = parser.add_argument_group("OPA server (--engine opa)")
    opa.add_argument("--opa-url", metavar="URL", help=f"the OPA server (default {DEFAULT_URL})")
    opa.add_argument(
        "--opa-timeout",
        type=float,
        metavar="SECONDS",
        help=f"wait at most this long per request, then fail closed (default {DEFAULT_TIMEOUT:g})",
    )
    opa.add_argument(
        "--opa-token",
        metavar="TOKEN",
        help=f"bearer token for the server (default: ${OPA_TOKEN_VARIABLE}, if set)",
    )
    opa.add_argument(
        "--opa-push",
        action="store_true",
        help="upload the pack's policies and data to the server before deciding",
    )
    parser.set_defaults(run=run)


OPA_TOKEN_VARIABLE = "AIGRE_OPA_TOKEN"


def _opa_options(args: argparse.Namespace) -> OpaOptions | None:
    """The ``--opa-*`` options as ``OpaOptions``; ``None`` for another engine."""
    given = [args.opa_url, args.opa_timeout, args.opa_token, args.opa_push or None]
    if args.engine != "opa":
        if any(option is not None for option in given):
            raise UsageError("the --opa-* options need --engine opa")
        return None
    url = args.opa_url or DEFAULT_URL
    try:
        parse_url(url)
    except ValueError as exc:
        raise UsageError(f"--opa-url: {exc}") from None
    timeout = DEFAULT_TIMEOUT if args.opa_timeout is None else args.opa_timeout
    if not timeout > 0:
        raise UsageError("--opa-timeout must be a positive number of seconds")
    token = args.opa_token or os.environ.get(OPA_TOKEN_VARIABLE) or None
    return OpaOptions(url=url, timeout=timeout, token=token, push=args.opa_push)


def run(args: argparse.Namespace, console: Console) -> int:
    overrides = parse_overrides(args.set)
    opa = _opa_options(args)
    if opa is not None:
        register_engine("opa", opa_engine(opa))
    key = verification_from(args)
    if key is not None and not Path(args.pack).is_file():
        raise UsageError("--verification-key applies to a bundle, not a pack directory")
    try:
        pack = load_pack(
            args.pack, overrides, engine=args.engine, verification_key=key, scope=args.scope
        )
    except BundleError as exc:
        raise UsageError(str(exc)) from None
    except CompileError as exc:
        errors = Console(stderr=True, soft_wrap=True)  # stdout stays for verdicts and --emit
        errors.print(exc.report(), style="red", markup=False, highlight=False)
        errors.print(
            f"[red]error:[/red] {args.pack} does not compile; run `aigre-policy check {args.pack}`",
            highlight=False,
        )
        return EXIT_USAGE
    if args.emit == "python":
        if not hasattr(pack, "python_source"):
            raise UsageError(f"{args.pack} is a bundle: it holds Rego, not the generated Python")
        sys.stdout.write(pack.python_source)
        return 0
    if args.emit == "rego":
        sys.stdout.write(render_modules(rego_program(pack)))
        return 0
    if not args.action:
        raise UsageError("eval needs --action FILE (or --emit python|rego)")
    given = read_eval_input(args.action, args.context, args.usage)
    verdict = pack.evaluate(given.action, given.context, given.usage)
    if args.why_not:
        from aigre_policy.cli.whynot import show_why_not  # z3 only when asked

        return show_why_not(args, console, pack, given, verdict)
    if args.format == "json":
        sys.stdout.write(verdict.to_json(indent=2) + "\n")
    else:
        show_verdict(console, verdict, given.source)
    if verdict.fail_closed:
        return EXIT_FAIL_CLOSED
    return DECISION_EXIT[verdict.decision]
