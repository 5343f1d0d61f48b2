"""The invariant and mutation parts of ``aigre-policy test``: flags, runs and text views.

Each part is a (arguments, run, show) triple that ``cli/test.py`` wraps in a
``Section``. ``run`` takes the command's per-pack context (``args``, ``pack``,
``cases``, ``evaluate``) and returns a ``SectionResult``.

Invariants are put to the SMT solver first when z3 is installed (``--no-prove`` opts
out); what it does not settle is searched, and each result says which it was.

Deferred imports: the solver loads only when the invariants are checked.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml
from rich.console import Console
from rich.text import Text

from aigre_policy.testing.invariants import (
    DEFAULT_EXAMPLES,
    DEFAULT_SEED,
    RELATIONS,
    InvariantResult,
)
from aigre_policy.testing.mutation import MutationReport, run_mutants
from aigre_policy.testing.report import SectionResult
from aigre_policy.verdict import LATTICE

# ------------------------------------------------------------------ invariants


def invariant_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-invariants", action="store_true", help="skip the search for invariant breaches"
    )
    parser.add_argument(
        "--prove",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="put each invariant to the SMT solver first, when z3 is installed (the default; "
        "aigre-policy prove): a proof or a refutation stands, and the search takes the "
        "invariants the solver cannot settle. --no-prove searches every invariant",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"seed of the invariant search; the same seed gives the same result "
        f"(default {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--examples",
        type=_positive,
        default=DEFAULT_EXAMPLES,
        metavar="N",
        help=f"inputs generated per invariant (default {DEFAULT_EXAMPLES})",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("give at least 1")
    return value


def invariant_run(ctx: Any) -> SectionResult | None:
    if ctx.args.no_invariants or not ctx.pack.program.invariants:
        return None
    from aigre_policy.solver.search import invariant_results

    results, how = invariant_results(
        ctx.pack,
        seed=ctx.args.seed,
        examples=ctx.args.examples,
        prove=getattr(ctx.args, "prove", True),
    )
    junit = []
    for r in results:
        failure = None
        if r.status == "broken":
            failure = f"expected {r.expectation}, got {r.decision}"
        junit.append((f"invariant: {r.invariant.name}", failure, counterexample_yaml(r) or ""))
    data = {
        "seed": ctx.args.seed,
        "examples": ctx.args.examples,
        "checked_by": how,
        "invariants": [_invariant_dict(r) for r in results],
    }
    ok = all(r.status != "broken" for r in results)
    return SectionResult("invariants", ok, data, junit, view=(results, how))


def _invariant_dict(result: InvariantResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": result.invariant.name,
        "location": result.invariant.span.to_dict(),
        "expect": result.expectation,
        "status": result.status,
        "method": result.method,
        **({"fallback": result.fallback} if result.fallback else {}),
        "examples": result.examples,
        "applicable": result.applicable,
    }
    if result.counterexample is not None:
        out["counterexample"] = result.counterexample
        out["decision"] = result.decision
        out["fired"] = list(result.fired)
    return out


def invariant_detail(result: InvariantResult) -> str:
    """How one invariant was checked, in a few words: proved, refuted, or searched."""
    if result.method == "proof":
        if result.status == "broken":
            return "refuted by the solver"
        return "proved by the solver for every input (`aigre-policy prove` states the bounds)"
    if result.status == "vacuous":
        detail = f"searched {result.examples} inputs, none met its condition; raise --examples"
    else:
        detail = f"searched {result.examples} inputs, {result.applicable} met its condition"
    return detail + (f" ({result.fallback})" if result.fallback else "")


def counterexample_yaml(result: InvariantResult) -> str | None:
    """The counterexample as a test in the runner's YAML format, ready to paste.

    It expects what the invariant asks for: the decision itself for ``expect
    deny``; for ``not``, ``at least`` and ``at most``, the allowed decision
    nearest to the one the pack gave (the comment says which others would do).
    """
    if result.counterexample is None or result.decision is None:
        return None
    wanted = nearest_allowed(result.invariant.relation, result.invariant.decision, result.decision)
    test = {
        "name": f"invariant: {result.invariant.name}",
        **result.counterexample,
        "expect": {"decision": wanted},
    }
    header = (
        f'# breaks invariant "{result.invariant.name}" ({result.invariant.span}): '
        f"expected {result.expectation}, got {result.decision}"
    )
    if result.invariant.relation != "is":
        header += f"\n# any decision that is {result.expectation} passes; {wanted} is the nearest"
    body = yaml.safe_dump({"tests": [test]}, sort_keys=False, width=100, allow_unicode=True)
    return f"{header}\n{body}"


def nearest_allowed(relation: str, decision: str, actual: str) -> str:
    """The decision closest to ``actual`` on the lattice that satisfies the relation."""
    ranked = sorted(LATTICE, key=lambda d: (abs(LATTICE[d] - LATTICE[actual]), LATTICE[d]))
    return next(d for d in ranked if RELATIONS[relation](d, decision))


def invariant_show(console: Console, result: SectionResult, args: argparse.Namespace) -> None:
    results: list[InvariantResult]
    results, how = result.view
    broken = [r for r in results if r.status == "broken"]
    for r in results:
        mark = {
            "held": "[green]held[/green]",
            "broken": "[red]BROKEN[/red]",
            "proved": "[green]proved[/green]",
        }.get(r.status, "[yellow]vacuous[/yellow]")
        detail = invariant_detail(r)
        console.print(
            f"  {mark} {r.invariant.name}  [dim]{r.invariant.span}[/dim]  {detail}",
            highlight=False,
            soft_wrap=True,
        )
        if r.status == "broken":
            fired = ", ".join(r.fired) or "no rule fired"
            console.print(
                f"    expected {r.expectation}, got {r.decision} ({fired})",
                markup=False,
                highlight=False,
            )
    searched = f"seed {args.seed}, {args.examples} inputs each"
    if all(r.method == "proof" for r in results):
        how, searched = how.removesuffix(", 0 searched"), ""  # nothing was searched
    parts = "; ".join(p for p in ("" if how == "searched" else how, searched) if p)
    console.print(
        f"invariants: {len(results) - len(broken)} of {len(results)} hold ({parts})",
        highlight=False,
    )
    for r in broken:
        console.print(
            "\n# minimal counterexample: paste into tests/regressions.yaml of the pack",
            highlight=False,
            markup=False,
        )
        console.print(counterexample_yaml(r), highlight=False, markup=False, soft_wrap=True)


# ------------------------------------------------------------------ mutation


def share(text: str) -> float:
    """``--min-score``: a share from 0 to 1 (``0.9``), not a percentage or a count."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 to 1 (e.g. 0.9 for 90%)")
    return value


def mutation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mutate",
        action="store_true",
        help="mutation testing: plant small faults in the compiled rules and report the "
        "share the tests catch, and each fault they miss",
    )
    parser.add_argument(
        "--min-score",
        type=share,
        default=None,
        metavar="SHARE",
        help="with --mutate, fail (exit 1) when the mutation score is below SHARE (0 to 1)",
    )


def mutation_run(ctx: Any) -> SectionResult | None:
    if not ctx.args.mutate:
        return None
    report = run_mutants(ctx.pack, ctx.cases, evaluate=ctx.evaluate)
    minimum = ctx.args.min_score
    ok = minimum is None or report.score >= minimum
    data = report.to_dict()
    junit: list[tuple[str, str | None, str]] = [
        (
            f"mutant survived: {r.mutant.rule} {r.mutant.change}",
            f"{r.mutant.location}: {r.mutant.change}",
            "",
        )
        for r in report.survivors
    ]
    if minimum is not None:
        failure = None if ok else f"mutation score {report.score:.1%} is below {minimum:.1%}"
        junit.append(("mutation score", failure, ""))
    return SectionResult("mutation", ok, data, junit, view=report)


def mutation_show(console: Console, result: SectionResult, args: argparse.Namespace) -> None:
    report: MutationReport = result.view
    for r in report.survivors:
        console.print(
            f"  [yellow]survived[/yellow] {r.mutant.location}  {r.mutant.rule}:",
            Text(r.mutant.change),
            highlight=False,
            soft_wrap=True,
        )
    style = "green" if result.ok else "red"
    console.print(
        f"mutation score [{style}]{report.score:.1%}[/{style}]: {len(report.killed)} of "
        f"{len(report.results)} mutants killed by {report.tests} tests "
        f"in {report.elapsed_s:.1f} s",
        highlight=False,
    )
