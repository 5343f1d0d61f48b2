"""The verdict vocabulary and the lattice every engine decides by: its one definition.

A rule gives one of ``RULE_VERDICTS``. Those that decide rank on the lattice
(``RULE_RANKS``: a ``permit`` holds the rank of ``allow``; a ``warn`` does not
decide). A decision is the strongest rank among the rules that held, named by
``DECISIONS``; when no rule decided (rank ``NO_RULE``) it is the pack's default.
The checker, native code generation, the Rego target's merge, the gate and the
linters read these names; none spells the lattice out again.
"""

from __future__ import annotations

from collections.abc import Iterable

DECISIONS = ("allow", "escalate", "require_approval", "deny")  # weakest first
LATTICE = {decision: rank for rank, decision in enumerate(DECISIONS)}
RULE_VERDICTS = ("deny", "require_approval", "escalate", "warn", "permit")
RULE_RANKS = {"permit": LATTICE["allow"], **{d: LATTICE[d] for d in DECISIONS[1:]}}
RESTRICTIVE = frozenset(v for v, rank in RULE_RANKS.items() if rank > LATTICE["allow"])
NO_RULE = -1  # the rank when no rule decided: the pack's default applies


def rank_of(verdicts: Iterable[str]) -> int:
    """The strongest rank among rule verdicts; ``NO_RULE`` when none of them decides."""
    return max((RULE_RANKS[v] for v in verdicts if v in RULE_RANKS), default=NO_RULE)


def decision_of(rank: int, default: str) -> str:
    """The decision a rank stands for; the pack's default when no rule decided."""
    return default if rank == NO_RULE else DECISIONS[rank]
