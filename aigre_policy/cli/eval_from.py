"""``aigre-policy eval PACK --from FORMAT FILE``: judge what an operations tool emitted.

FORMAT is ``terraform-plan`` (``terraform show -json``), ``k8s-admission`` (an
AdmissionReview request) or ``github-deployment`` (a ``deployment_protection_rule``
delivery). The behaviour lives in ``aigre_policy.adapters``; this parses the options.

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from aigre_policy.cli.common import (
    DECISION_EXIT,
    EXIT_FAIL_CLOSED,
    UsageError,
    read_input_file,
)

FORMATS = ("terraform-plan", "k8s-admission", "github-deployment")


def add_from_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="from_format",
        nargs=2,
        metavar=("FORMAT", "FILE"),
        help="judge a tool's own output instead of --action: FORMAT is one of "
        + ", ".join(FORMATS),
    )
    group = parser.add_argument_group("--from options (docs/adapters.md)")
    group.add_argument(
        "--environment",
        metavar="NAME",
        help="terraform-plan: the environment of every resource; k8s-admission: the "
        "environment when the object has no environment label (default: production)",
    )
    group.add_argument("--workspace", metavar="NAME", help="terraform-plan: the workspace")
    group.add_argument(
        "--costs", metavar="FILE", help="terraform-plan: Infracost JSON with monthly cost deltas"
    )
    group.add_argument(
        "--reviews",
        metavar="FILE",
        help="github-deployment: the pull requests' reviews as the REST API lists them "
        "(a list for every pull request, or an object keyed by pull request number)",
    )
    group.add_argument(
        "--reviewer-groups",
        metavar="FILE",
        help="github-deployment: approver groups by reviewer login (YAML or JSON mapping)",
    )


def _read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def run_from(args: argparse.Namespace, pack: Any, console: Console) -> int:
    """Judge ``--from FORMAT FILE`` with the pack; the exit code of the decision."""
    form, path = args.from_format
    if form not in FORMATS:
        raise UsageError(f"--from {form!r}: choose one of {', '.join(FORMATS)}")
    if args.action:
        raise UsageError("--from replaces --action: give one of them")
    payload = _read_bytes(path)
    context = read_input_file(args.context) if args.context else None
    usage = read_input_file(args.usage) if args.usage else None
    if context is not None and not isinstance(context, dict):
        raise UsageError(f"{args.context}: the context must be a mapping")
    if form == "terraform-plan":
        return _plan(args, pack, payload, context, usage, console)
    if form == "k8s-admission":
        return _admission(args, pack, payload, context, usage, console)
    return _deployment(args, pack, payload, context, usage, console)


def _exit(decision: str, fail_closed: bool) -> int:
    return EXIT_FAIL_CLOSED if fail_closed else DECISION_EXIT[decision]


def _plan(args: Any, pack: Any, payload: bytes, context: Any, usage: Any, console: Console) -> int:
    from aigre_policy.adapters import terraform
    from aigre_policy.adapters.common import AdapterError, declared_action_fields, pack_judge

    costs: dict[str, float] = {}
    if args.costs:
        try:
            costs = terraform.costs_from_infracost(_read_bytes(args.costs))
        except AdapterError as exc:
            raise UsageError(f"{args.costs}: {exc}") from None
    options = terraform.PlanOptions(
        environment=args.environment,
        workspace=args.workspace,
        monthly_costs=costs,
        action_fields=declared_action_fields(pack),
    )
    ref = {"name": pack.name, "version": pack.version, "digest": pack.digest}
    verdict = terraform.judge_plan(
        payload, pack_judge(pack, context, usage), fail_closed=pack.fail_closed, pack=ref,
        options=options,
    )  # fmt: skip
    plan_failed = bool(verdict.errors) and not verdict.resources
    if args.format == "json":
        sys.stdout.write(json.dumps(verdict.to_dict(), indent=2) + "\n")
    elif not plan_failed:
        sys.stdout.write(verdict.summary + "\n")
        for r in verdict.resources:
            rules = ", ".join(r.fired) or r.problem or "-"
            sys.stdout.write(f"  {r.address}  {r.actions}  {r.decision}  {rules}\n")
    if plan_failed:
        message = verdict.errors[0]["message"]
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] {escape(args.from_format[1])}: {escape(message)}", highlight=False
        )
    return _exit(verdict.decision, verdict.fail_closed)


def _admission(
    args: Any, pack: Any, payload: bytes, context: Any, usage: Any, console: Console
) -> int:
    from aigre_policy.adapters import kubernetes
    from aigre_policy.adapters.common import AdapterError

    options = kubernetes.AdmissionOptions(environment=args.environment)
    try:
        request = kubernetes.read_review(payload, options)
    except AdapterError as exc:
        reply = kubernetes.refusal(payload, f"aigre-policy cannot read the request: {exc}", 400)
        sys.stdout.write(json.dumps(reply, indent=2) + "\n")
        Console(stderr=True).print(
            f"[red]error:[/red] {escape(args.from_format[1])}: {escape(str(exc))}", highlight=False
        )
        return EXIT_FAIL_CLOSED
    verdict = kubernetes.pack_admission_judge(pack, context, usage)(request)
    reply = kubernetes.answer(request, verdict)
    if args.format == "json":
        sys.stdout.write(json.dumps({"review": reply, "verdict": verdict.to_dict()}, indent=2))
        sys.stdout.write("\n")
    else:
        sys.stdout.write(json.dumps(reply, indent=2) + "\n")
    return _exit(verdict.decision, verdict.fail_closed)


def _deployment(
    args: Any, pack: Any, payload: bytes, context: Any, usage: Any, console: Console
) -> int:
    from aigre_policy.adapters import github
    from aigre_policy.adapters.common import AdapterError, read_json

    groups = read_input_file(args.reviewer_groups) if args.reviewer_groups else {}
    if not isinstance(groups, dict):
        raise UsageError(f"{args.reviewer_groups}: expected a mapping of login to groups")
    options = github.DeploymentOptions(reviewer_groups=groups)
    try:
        # eval's caller attests: the delivery's signature is not checked here, so the
        # sender is a claim; the actor the context file gives is the attested one
        deployment = github.deployment_action(payload, options, verified=False)
    except AdapterError as exc:
        Console(stderr=True).print(
            f"[red]error:[/red] {escape(args.from_format[1])}: {escape(str(exc))}", highlight=False
        )
        return EXIT_FAIL_CLOSED
    reviews: dict[int, list[Any]] = {}
    if args.reviews:
        try:
            given = read_json(_read_bytes(args.reviews), "the reviews")
        except AdapterError as exc:
            raise UsageError(f"{args.reviews}: {exc}") from None
        if isinstance(given, list):
            reviews = {p["number"]: given for p in deployment.pull_requests}
        elif isinstance(given, dict):
            reviews = {int(k): v for k, v in given.items() if str(k).isdigit()}
    approvals = github.review_approvals(deployment, reviews, options)
    actor = (context or {}).get("actor")
    verdict = github.pack_deployment_judge(pack, context, usage)(
        deployment.action, actor, list(approvals.counted)
    )
    body = github.callback_body(deployment, verdict)
    if args.format == "json":
        document = {
            "callback": body,
            "approvals": {"counted": approvals.counted, "ignored": approvals.ignored},
            "verdict": verdict.to_dict(),
        }
        sys.stdout.write(json.dumps(document, indent=2, default=list) + "\n")
    else:
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        for ignored in approvals.ignored:
            console.print(
                f"  ignored review by {escape(str(ignored['by']))}: {escape(ignored['reason'])}",
                highlight=False,
            )
    return _exit(verdict.decision, verdict.fail_closed)
