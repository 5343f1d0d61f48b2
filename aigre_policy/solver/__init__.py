"""Proof by SMT solver: a checked pack encoded for z3, from the same IR every engine reads.

The encoding (``inputs``, ``values``, ``encode``, ``decision``) turns a ``CheckedPack``
into formulas over the inputs its schema admits; ``prove`` proves or refutes each
invariant, ``diff`` compares two packs, ``whynot`` finds the smallest change that
turns a verdict. Every witness the solver gives is evaluated again natively
(``Pack.evaluate``) and must reproduce. z3 is imported by these modules only: the
command line imports them inside the commands that use them.
"""

from __future__ import annotations

DEFAULT_LIST_BOUND = 3  # items per input list when the schema's maxItems is larger
DEFAULT_TIMEOUT_S = 10.0


class SolverMissing(RuntimeError):
    """z3 is not installed: the `prove` extra is needed."""


def require_z3() -> None:
    try:
        import z3  # noqa: F401
    except ImportError:
        raise SolverMissing('the solver needs z3: pip install "aigre-policy[prove]"') from None
