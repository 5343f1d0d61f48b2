"""A whole pack as formulas: each rule's condition and failure, and the decision by the lattice.

The decision is the engine's: a failure in any rule's condition, or in the message
of a rule that holds, fails the verdict closed with the pack's ``fail_closed``
decision; otherwise the strongest verdict among the rules that hold
(``lattice.RULE_RANKS``), a ``permit`` counting as ``allow``, and the pack's
default when none decides. ``outcome`` numbers the decisions weakest first, as
``lattice.DECISIONS`` does, and adds ``FAILED_CLOSED`` for a verdict that failed
closed, so a comparison of two packs tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import z3

from aigre_policy import lattice
from aigre_policy.compiler import CheckedPack
from aigre_policy.solver.encode import Encoder
from aigre_policy.solver.inputs import InputSpace, Unencodable
from aigre_policy.solver.values import FALSE, Arithmetic, all_of, any_of

FAILED_CLOSED = len(lattice.DECISIONS)
OUTCOMES = (*lattice.DECISIONS, "failed closed")


@dataclass(frozen=True)
class RuleFormula:
    id: str
    verdict: str
    holds: Any
    fails: Any


@dataclass
class PackFormula:
    checked: CheckedPack
    encoder: Encoder
    rules: tuple[RuleFormula, ...]
    fails: Any  # the verdict fails closed
    rank: Any  # z3 Int: the decision's rank, failed closed included
    outcome: Any  # z3 Int: the rank, or FAILED_CLOSED

    def decision_name(self, rank: int) -> str:
        return lattice.DECISIONS[rank]


def encode_pack(
    checked: CheckedPack,
    space: InputSpace,
    arithmetic: Arithmetic,
    prefix: str = "",
    symbolic_envelopes: bool = False,
) -> PackFormula:
    """Every rule of ``checked`` over ``space``; the decision as the engine makes it."""
    if checked.handwritten:
        raise Unencodable("hand-written Rego modules (policies/*.rego)")
    encoder = Encoder(space, checked.envelopes, arithmetic, prefix, symbolic_envelopes)
    rules = []
    for rule in checked.program.rules:
        holds, fails = encoder.condition(rule.condition)
        message_fails = [encoder.fails(part) for part in rule.message if not isinstance(part, str)]
        if message_fails:
            fails = any_of(fails, all_of(holds, any_of(message_fails)))
        rules.append(RuleFormula(rule.id, rule.verdict, z3.simplify(holds), z3.simplify(fails)))
    any_fails = any_of([r.fails for r in rules]) if rules else FALSE
    policy = checked.policy
    rank: Any = z3.IntVal(lattice.LATTICE[policy.default])
    by_rank: dict[int, list[Any]] = {}
    for r in rules:
        if r.verdict in lattice.RULE_RANKS:
            by_rank.setdefault(lattice.RULE_RANKS[r.verdict], []).append(r.holds)
    for level in sorted(by_rank):  # weakest first: the strongest that holds wins
        rank = z3.If(any_of(by_rank[level]), z3.IntVal(level), rank)
    closed = z3.IntVal(lattice.LATTICE[policy.fail_closed])
    decided = rank
    rank = z3.If(any_fails, closed, decided)
    outcome = z3.If(any_fails, z3.IntVal(FAILED_CLOSED), decided)
    return PackFormula(checked, encoder, tuple(rules), any_fails, rank, outcome)


def outcome_of(verdict: Any) -> int:
    """The outcome number of a native verdict."""
    if verdict.fail_closed:
        return FAILED_CLOSED
    return lattice.LATTICE[verdict.decision]
