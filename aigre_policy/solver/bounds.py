"""How many items each input list holds in the solver: enough for every length a pack compares.

A list's items are solver variables up to a bound: the ``--list-bound`` default, raised
for a list whose ``len`` a pack compares with a number (``len(x) > 8`` needs nine items
to hold, so the bound becomes nine), never past the schema's ``maxItems``. A length
compared where the list cannot be named (inside an ``any``/``all`` over an item) raises
the bound of every list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aigre_policy import ir

EVERY_LIST = ""  # the key of a length every list must reach


def length_hints(
    conditions: Iterable[ir.Node], envelopes: Mapping[str, Mapping[str, Any]]
) -> dict[str, int]:
    """``{"action.blast_radius.services": 9, ...}``: items each list needs, by its path."""
    hints: dict[str, int] = {}
    for condition in conditions:
        for node in ir.walk(condition):
            if not isinstance(node, ir.Compare):
                continue
            for side, other in ((node.left, node.right), (node.right, node.left)):
                path = _length_of(side)
                count = _number(other, envelopes)
                if path is None or count is None:
                    continue
                needed = int(count) + 1
                hints[path] = max(hints.get(path, 0), needed)
    return hints


def _length_of(node: ir.Node) -> str | None:
    if not (isinstance(node, ir.Call) and node.function == "len"):
        return None
    (argument,) = node.args
    if isinstance(argument, ir.Default):
        argument = argument.path
    if isinstance(argument, ir.Path) and not argument.local:
        return argument.dotted
    return EVERY_LIST


def _number(node: ir.Node, envelopes: Mapping[str, Mapping[str, Any]]) -> float | None:
    value: Any = None
    if isinstance(node, ir.Const):
        value = node.value
    elif isinstance(node, ir.EnvelopeRef):
        value = envelopes[node.envelope][node.name]
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 10_000:
        return value
    return None


def conditions_of(program: ir.Program) -> list[ir.Node]:
    found = [rule.condition for rule in program.rules]
    found += [inv.condition for inv in program.invariants if inv.condition is not None]
    return found
