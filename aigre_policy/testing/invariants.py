"""Invariant checking: search the input space for a breach of each ``invariant`` block.

For each invariant, hypothesis draws whole input documents from the pack's input
schema (``strategies.documents``), keeps those that meet the ``when`` condition,
evaluates them with the compiled pack and checks the decision against the
invariant's relation. The inputs lean toward the values the condition compares
against (``strategies.documents`` with the condition as its focus), and a breach
is shrunk to a minimal counterexample. The same seed and example count give the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as fix_seed
from hypothesis.errors import Unsatisfiable

from aigre_policy import interpreter, ir
from aigre_policy.pack import Pack
from aigre_policy.testing.strategies import Hints, collect_hints, documents
from aigre_policy.verdict import LATTICE, Verdict

DEFAULT_EXAMPLES = 100
DEFAULT_SEED = 0

RELATIONS: dict[str, Callable[[str, str], bool]] = {
    "is": lambda got, want: got == want,
    "not": lambda got, want: got != want,
    "at least": lambda got, want: LATTICE[got] >= LATTICE[want],
    "at most": lambda got, want: LATTICE[got] <= LATTICE[want],
}


@dataclass(frozen=True)
class InvariantResult:
    """The outcome of one invariant: ``held``, ``broken``, ``vacuous`` or ``proved``.

    ``vacuous`` means no generated input met the ``when`` condition, so the
    search says nothing about the invariant. ``applicable`` counts the inputs
    that met it. A broken invariant carries its shrunk counterexample and the
    verdict the pack gave it.
    """

    invariant: ir.Invariant
    status: str
    examples: int
    applicable: int
    counterexample: dict[str, Any] | None = None
    decision: str | None = None
    fired: tuple[str, ...] = ()
    method: str = "search"  # or "proof": settled by the solver (aigre_policy.solver)
    fallback: str = ""  # searched although proofs were asked for: why the solver did not settle it

    @property
    def expectation(self) -> str:
        relation = "" if self.invariant.relation == "is" else f"{self.invariant.relation} "
        return f"{relation}{self.invariant.decision}"


class _Breach(Exception):
    def __init__(self, document: dict[str, Any], verdict: Verdict):
        super().__init__(verdict.decision)
        self.document = document
        self.verdict = verdict


def holds(invariant: ir.Invariant, decision: str) -> bool:
    """Whether ``decision`` satisfies the invariant's expectation."""
    return RELATIONS[invariant.relation](decision, invariant.decision)


def applies(invariant: ir.Invariant, document: dict[str, Any], envelopes: Any) -> bool:
    """Whether the invariant's ``when`` condition holds for a (valid) input document."""
    if invariant.condition is None:
        return True
    try:
        return bool(interpreter.evaluate(invariant.condition, document, envelopes))
    except Exception:  # the pack fails closed on such an input; the invariant says nothing
        return False


def check_invariant(
    pack: Pack,
    invariant: ir.Invariant,
    *,
    seed: int = DEFAULT_SEED,
    examples: int = DEFAULT_EXAMPLES,
    hints: Hints | None = None,
) -> InvariantResult:
    """Search for an input that meets the invariant's condition and breaks its expectation."""
    envelopes = pack.envelopes
    hints = hints or collect_hints(pack.program, envelopes)
    focus = None
    if invariant.condition is not None:
        focus = collect_hints(ir.Program((), {}, ()), envelopes, [invariant.condition])
    strategy = documents(pack.input_schema, hints, focus)
    counts = {"examples": 0, "applicable": 0}
    is_valid = pack.validator.is_valid

    @fix_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @given(strategy)
    def search(document: dict[str, Any]) -> None:
        counts["examples"] += 1
        if not is_valid(document):
            return  # invalid input fails closed by construction; invariants speak of valid ones
        if not applies(invariant, document, envelopes):
            return
        counts["applicable"] += 1
        verdict = pack.evaluate(document["action"], document["context"], document["usage"])
        if not holds(invariant, verdict.decision):
            raise _Breach(document, verdict)

    try:
        search()
    except Unsatisfiable:  # the schema admits (next to) no document: nothing met the condition
        return InvariantResult(invariant, "vacuous", counts["examples"], 0)
    except _Breach as breach:
        verdict = breach.verdict
        return InvariantResult(
            invariant,
            "broken",
            counts["examples"],
            counts["applicable"],
            breach.document,
            verdict.decision,
            tuple(verdict.rule_ids),
        )
    status = "held" if counts["applicable"] else "vacuous"
    return InvariantResult(invariant, status, counts["examples"], counts["applicable"])


def check_invariants(
    pack: Pack, *, seed: int = DEFAULT_SEED, examples: int = DEFAULT_EXAMPLES
) -> list[InvariantResult]:
    """Every invariant of the pack, in pack order, each searched with its own run."""
    hints = collect_hints(pack.program, pack.envelopes)
    return [
        check_invariant(pack, inv, seed=seed, examples=examples, hints=hints)
        for inv in pack.program.invariants
    ]
