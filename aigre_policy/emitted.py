"""The generated Python of one pack as data (``codegen`` writes it, ``native`` loads it).

A module of its own so that a pack revived from the compile cache (``aigre_policy.cache``)
is loaded without importing the code generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EmittedModule:
    source: str
    envelope_names: dict[str, str]  # "cost.max_action_usd" -> "E0"
    # rule index -> the dotted paths its bindings hold, in the order explain_N returns them
    bindings: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # rules recorded as (index, *locals): their explain_N runs when the verdict is read
    deferred: frozenset[int] = frozenset()
