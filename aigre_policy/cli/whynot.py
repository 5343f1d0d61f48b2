"""``aigre-policy eval --why-not [DECISION]``: the verdict, then what would change it.

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console

from aigre_policy.cli.common import DECISION_EXIT, EXIT_FAIL_CLOSED, EXIT_USAGE, UsageError
from aigre_policy.cli.view import show_verdict


def show_why_not(
    args: argparse.Namespace, console: Console, pack: Any, given: Any, verdict: Any
) -> int:
    from aigre_policy.cli.prove import solver_or_exit

    if getattr(pack, "checked", None) is None:
        raise UsageError("--why-not needs the pack directory, not a bundle")
    if not solver_or_exit(console):
        return EXIT_USAGE
    from aigre_policy.solver.whynot import ATTESTED, counterfactual

    answer = counterfactual(pack, given.action, given.context, given.usage, args.why_not)
    if args.format == "json":
        document = {"verdict": verdict.to_dict(), "why_not": answer.to_dict()}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        show_verdict(console, verdict, given.source, args.pack)  # paths as eval gives them
        held = ", ".join(".".join(prefix) for prefix in ATTESTED)
        title = f"why not {answer.target}?"
        if answer.status == "already":
            console.print(f"{title} it is {answer.target} already", highlight=False)
        elif answer.status == "found":
            count = len(answer.changes)
            console.print(
                f"{title} change {count} field{'s' if count != 1 else ''} of the proposal "
                f"({held} held as attested):",
                highlight=False,
            )
            for change in answer.changes:
                old = "(absent)" if change.old is None else json.dumps(change.old)
                new = "(absent)" if change.new is None else json.dumps(change.new)
                console.print(f"  {change.path}: {old} -> {new}", markup=False)
            fired = ", ".join(answer.fired) or "no rule fires"
            console.print(
                f"  checked: the pack then decides {answer.target} ({fired})", highlight=False
            )
        else:
            console.print(f"{title} {answer.status}: {answer.reason}", markup=False)
    if verdict.fail_closed:
        return EXIT_FAIL_CLOSED
    return DECISION_EXIT[verdict.decision]
