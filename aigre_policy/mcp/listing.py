"""Which tools ``--hide-refused`` leaves out of ``tools/list`` for an actor.

A tool is hidden only when every call of it is refused, whatever its arguments:
unmapped under ``unmapped: deny``, marked ``hide: true``, or denied by the pack in a
way no argument can change. That last is decided conservatively, without the
arguments: the pack judges the tool's action with each field the mapping reads from
the arguments given a placeholder, and the tool is hidden only when

- the decision is ``deny`` and did not fail closed (a fault is not a decision);
- every path the denying rules read (their evidence's ``bindings``) is the attested
  actor (``context.actor...``), an envelope, or an action field the mapping fills
  with a constant: none filled from the arguments, none of ``action.tool``, ``id``,
  ``requested_at`` or the actor's claim, no ``usage`` (it changes with every call)
  and no other ``context`` (the clock, freezes, approvals).

Evaluation is deterministic and a rule that fired reads the same paths again when
they hold the same values, so such a rule fires for every call: ``deny`` is the top of
the lattice and no approval or reviewer loosens it. Anything else (an error, a path
outside that list, a decision other than ``deny``) shows the tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aigre_policy.gate.clock import iso, system_clock
from aigre_policy.gate.intake import attested_fields
from aigre_policy.mcp.mapping import Source, ToolMapping, ToolRule
from aigre_policy.pack import Pack

_PLACEHOLDER = "aigre-policy:listing"
_CLAIMS = frozenset({"tool", "id", "requested_at", "actor"})


def _placeholders(fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Source):
            if value.has_default:
                out[name] = value.default
            elif value.times is not None or value.plus is not None:
                out[name] = 0
            else:
                out[name] = _PLACEHOLDER
        elif isinstance(value, Mapping):
            out[name] = _placeholders(value)
        else:
            out[name] = value
    return out


def _fixed(path: str, rule: ToolRule, envelopes: frozenset[str]) -> bool:
    """Whether a path a rule read holds the same value for every call of the tool."""
    parts = tuple(path.split("."))
    if parts[0] in envelopes:
        return True
    if parts[:2] == ("context", "actor"):
        return True
    if parts[0] != "action" or len(parts) < 2 or parts[1] in _CLAIMS:
        return False
    read = parts[1:]
    for source_path, _ in rule.sources():
        shorter = min(len(source_path), len(read))
        if source_path[:shorter] == read[:shorter]:
            return False  # the field, or part of it, comes from the arguments
    return True


def denied_for_every_call(
    pack: Pack,
    mapping: ToolMapping,
    rule: ToolRule,
    tool: str,
    actor: Mapping[str, Any] | None,
) -> bool:
    """Whether the pack denies every call of ``tool`` by ``actor``, whatever the arguments."""
    try:
        action = _placeholders(rule.fields)
        action.update(id=f"mcp-{tool}-listing", requested_at=iso(system_clock()))
        if mapping.with_tool:
            action["tool"] = {"name": tool, "arguments": {}}
        context: dict[str, Any] = {"now": action["requested_at"]}
        if actor is not None and "actor" in attested_fields(pack):
            context["actor"] = dict(actor)
        usage = {u.name: 0 for u in pack.program.usages}
        verdict = pack.evaluate(action, context, usage).to_dict()
        if verdict.get("decision") != "deny" or verdict.get("fail_closed"):
            return False
        envelopes = frozenset(pack.envelopes)
        denying = [f for f in verdict.get("fired", []) if f.get("verdict") == "deny"]
        return bool(denying) and all(
            all(_fixed(path, rule, envelopes) for path in f.get("bindings", {})) for f in denying
        )
    except Exception:  # when unsure, show
        return False
