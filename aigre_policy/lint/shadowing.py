"""L103: a rule shadowed by a stronger rule with a weaker condition.

Rule A is shadowed by rule B when every input that fires A also fires B, and
B's verdict is at least as restrictive on the lattice deny > require_approval >
escalate > permit: A then never changes the decision. ``warn`` rules never
decide, so they neither shadow nor are reported; rules that never or always
hold are left to L101 and L102. When two rules of one verdict
hold on exactly the same inputs, only the later one is reported.
"""

from __future__ import annotations

from collections.abc import Iterator

from aigre_policy import ir
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lattice import RULE_RANKS
from aigre_policy.lint.context import PackView, finding
from aigre_policy.lint.formula import And, Formula, Not, Undecided, find

RANK = RULE_RANKS


def implies(a: Formula, b: Formula) -> bool:
    """Whether every input making ``a`` true makes ``b`` true (``Undecided`` past the budget)."""
    return find(And((a, Not(b))), True) is None


def check(view: PackView) -> Iterator[Diagnostic]:
    deciding = [r for r in view.rules if r.verdict in RANK]
    # rules that never or always hold are L101/L102 already: no echo of them here
    live = [r for r in deciding if not _settled(view.formulas[r.id])]
    for shadowed in live:
        for stronger in live:
            if stronger is shadowed or RANK[stronger.verdict] < RANK[shadowed.verdict]:
                continue
            if shadows(view, stronger, shadowed):
                yield finding(
                    "L103",
                    f"rule `{shadowed.id}` never changes the decision: whenever it fires, "
                    f"`{stronger.id}` ({stronger.verdict}) fires too",
                    shadowed.span,
                    f"narrow `{stronger.id}`, drop `{shadowed.id}`, or make it a `warn`",
                )
                break


def shadows(view: PackView, stronger: ir.Rule, shadowed: ir.Rule) -> bool:
    a, b = view.formulas[shadowed.id], view.formulas[stronger.id]
    try:
        if not implies(a, b):
            return False
        same_rank = RANK[stronger.verdict] == RANK[shadowed.verdict]
        # equivalent rules of one rank: report the later one only
        return not (same_rank and stronger.index > shadowed.index and implies(b, a))
    except Undecided:
        return False


def _settled(formula: Formula) -> bool:
    try:
        return find(formula, True) is None or find(formula, False) is None
    except Undecided:
        return False
