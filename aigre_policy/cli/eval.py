"""``aigre-policy eval``: judge one proposed action with a pack.

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from aigre_policy.cli import output
from aigre_policy.cli.common import (
    DECISION_EXIT,
    EXIT_FAIL_CLOSED,
    EXIT_USAGE,
    Once,
    UsageError,
    add_cache_argument,
    compile_cache,
    eval_inputs,
    parse_overrides,
)
from aigre_policy.cli.eval_from import add_from_arguments, run_from
from aigre_policy.cli.keys import add_verification_arguments, verification_from
from aigre_policy.cli.view import show_profile, show_silent, show_summary, show_verdict
from aigre_policy.diagnostics import CompileError
from aigre_policy.lattice import DECISIONS
from aigre_policy.pack import load_pack

# The OPA client (aiohttp), regopy and the Rego emitter load only for the options that use
# them: `eval PACK --action A` starts without them. The names below are the defaults the
# help text shows, kept equal to rego.opa_server's by tests/test_cli_start.py.
ENGINES = ("native", "opa", "rego", "regorus")
DEFAULT_URL = "http://127.0.0.1:8181"
DEFAULT_TIMEOUT = 2.0


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="evaluate one proposed action",
        description="Evaluate proposed actions and print each verdict with its evidence (many "
        "at once: a summary table). Exit code, of the most restrictive verdict: 0 allow, "
        "3 escalate, 4 require_approval, 5 deny, 6 failed closed (invalid input or engine "
        "fault); 2 misuse or a pack that does not compile.",
    )
    parser.add_argument("pack", help="the pack directory, or a bundle built from it (.tar.gz)")
    parser.add_argument(
        "--action",
        action="append",
        metavar="FILE",
        help="action file (JSON or YAML; a case file with action/context/usage also works), "
        "- for stdin, a directory of such files, or a .jsonl file of one per line; "
        "repeat it to judge several",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time each rule's condition over the input(s) (the reference interpreter's "
        "time: read the ranking), costliest first",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also show each rule that stayed silent, with the comparisons that kept it so",
    )
    parser.add_argument("--context", action=Once, help="context file (overrides a case file's)")
    parser.add_argument("--usage", action=Once, help="usage values file (overrides a case file's)")
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
        choices=ENGINES,
        help="native: generated Python (the default for a pack directory); rego: the pack "
        "compiled to Rego, run with regopy (the default for a bundle)",
    )
    add_from_arguments(parser)
    parser.add_argument(
        "--why-not",
        nargs="?",
        const="allow",
        choices=DECISIONS,
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
    add_cache_argument(parser)
    parser.set_defaults(run=run)


OPA_TOKEN_VARIABLE = "AIGRE_OPA_TOKEN"


def _opa_options(args: argparse.Namespace) -> Any:
    """The ``--opa-*`` options as ``rego.opa_server.OpaOptions``; ``None`` for another engine."""
    given = [args.opa_url, args.opa_timeout, args.opa_token, args.opa_push or None]
    if args.engine != "opa":
        if any(option is not None for option in given):
            raise UsageError("the --opa-* options need --engine opa")
        return None
    from aigre_policy.rego.opa_server import OpaOptions, parse_url

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
        from aigre_policy.rego.engine import register_engine
        from aigre_policy.rego.opa_server import opa_engine

        register_engine("opa", opa_engine(opa))
    if args.engine not in (None, "native"):
        from aigre_policy.rego.engine import engine_names

        if args.engine not in engine_names():
            raise UsageError(f"--engine {args.engine} is not installed here")
    key = verification_from(args)
    if key is not None and not Path(args.pack).is_file():
        raise UsageError("--verification-key applies to a bundle, not a pack directory")
    bundle_errors: tuple[type[Exception], ...] = ()
    if Path(args.pack).is_file():  # the bundle reader (and its JWT library) only for a bundle
        from aigre_policy.rego.bundle import BundleError

        bundle_errors = (BundleError,)
    try:
        pack = load_pack(
            args.pack,
            overrides,
            engine=args.engine,
            verification_key=key,
            scope=args.scope,
            cache=compile_cache(args),
        )
    except bundle_errors as exc:
        raise UsageError(str(exc)) from None
    except CompileError as exc:
        if args.format == "json":
            output.json_error(
                f"{args.pack} does not compile",
                EXIT_USAGE,
                diagnostics=[d.to_dict() for d in exc.diagnostics],
            )
        errors = output.console(stderr=True)  # stdout stays for verdicts and --emit
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
        from aigre_policy.rego.attach import rego_program, render_modules

        sys.stdout.write(render_modules(rego_program(pack)))
        return 0
    if args.from_format:
        return run_from(args, pack, console)
    if not args.action:
        raise UsageError("eval needs --action FILE, --from FORMAT FILE, or --emit python|rego")
    inputs = eval_inputs(args.action, args.context, args.usage)
    pack_dir = None if Path(args.pack).is_file() else args.pack
    judged = []
    for given in inputs:
        verdict = pack.evaluate(given.action, given.context, given.usage)
        silent = _silent(pack, verdict, given) if args.explain else None
        judged.append((given, verdict, silent))
    if args.profile and not hasattr(pack, "program"):
        raise UsageError("--profile needs the pack's source: a bundle holds Rego only")
    if args.why_not:
        if len(inputs) != 1:
            raise UsageError("--why-not judges one input: give one --action file")
        from aigre_policy.cli.whynot import show_why_not  # z3 only when asked

        given, verdict, _ = judged[0]
        return show_why_not(args, console, pack, given, verdict)
    if args.format == "json":
        documents = [_document(verdict, silent) for _, verdict, silent in judged]
        if args.profile:
            from aigre_policy.profile import rule_times

            for document, (given, _, _) in zip(documents, judged, strict=True):
                times = rule_times(pack, [(given.action, given.context, given.usage)])
                document["profile"] = [t.to_dict() for t in times]
        if len(judged) == 1:
            sys.stdout.write(json.dumps(documents[0], indent=2) + "\n")
        else:
            sources = [given.source for given, _, _ in judged]
            many = [
                {"input": source, "verdict": document}
                for source, document in zip(sources, documents, strict=True)
            ]
            sys.stdout.write(json.dumps(many, indent=2) + "\n")
    elif len(judged) == 1:
        given, verdict, silent = judged[0]
        show_verdict(console, verdict, given.source, pack_dir)
        if silent is not None:
            show_silent(console, silent)
    else:
        show_summary(console, [(g.source, v) for g, v, _ in judged])
        for given, _, silent in judged:
            if silent is not None:
                console.print(f"{given.source}:", highlight=False, markup=False)
                show_silent(console, silent)
    if args.profile and args.format != "json":
        from aigre_policy.profile import rule_times

        show_profile(console, rule_times(pack, [(g.action, g.context, g.usage) for g in inputs]))
    return max(_exit_code(verdict) for _, verdict, _ in judged)


def _exit_code(verdict: Any) -> int:
    """A verdict's exit code; the largest is the most restrictive (fail-closed above deny)."""
    return EXIT_FAIL_CLOSED if verdict.fail_closed else DECISION_EXIT[verdict.decision]


def _silent(pack: Any, verdict: Any, given: Any) -> list[Any]:
    if not hasattr(pack, "program"):
        raise UsageError("--explain needs the pack's source: a bundle holds Rego only")
    from aigre_policy.explain import silent_rules

    return silent_rules(pack, verdict.rule_ids, given.action, given.context, given.usage)


def _document(verdict: Any, silent: list[Any] | None) -> dict[str, Any]:
    document = verdict.to_dict()
    if silent is not None:
        document["silent"] = [s.to_dict() for s in silent]
    return document
