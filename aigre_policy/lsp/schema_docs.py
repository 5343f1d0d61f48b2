"""What a pack's JSON Schema says about a field: its description, title and markers.

The language's types (``schema_types``) keep what rules are checked by; the prose a
schema author wrote for people stays in the schema, and is read from it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigre_policy.models.action import ATTESTED
from aigre_policy.validation import local_ref_target

CLAIM = "x-aigre-claim"
ATTESTED_AS = "x-aigre-attested-as"
_DEPTH = 32  # $ref chains followed before giving up (a recursive schema)


@dataclass(frozen=True, slots=True)
class FieldDoc:
    description: str | None
    claim: bool  # the proposer writes it: it may not loosen a verdict
    attested: bool  # the gate fills it from its own sources
    attested_as: str | None  # where the attested version of a claim is read


def field_doc(schema: dict[str, Any], path: tuple[str, ...]) -> FieldDoc | None:
    """The documentation of the field at ``path`` (``("action", "actor", "trust")``)."""
    node: Any = schema
    attested = False
    property_node: Any = None
    for segment in path:
        node = _resolved(schema, node)
        properties = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(properties, dict) or segment not in properties:
            return None
        property_node = properties[segment]
        attested = attested or _flag(property_node, ATTESTED)
        node = property_node
    if not isinstance(property_node, dict):
        return None
    target = _resolved(schema, property_node)
    description = _text(property_node, "description") or _text(target, "description")
    attested_as = property_node.get(ATTESTED_AS)
    return FieldDoc(
        description,
        _flag(property_node, CLAIM),
        attested or _flag(target, ATTESTED),
        attested_as if isinstance(attested_as, str) else None,
    )


def _resolved(root: dict[str, Any], node: Any) -> Any:
    """``node`` with local ``$ref``s followed and a nullable ``anyOf``/``oneOf`` unwrapped."""
    for _ in range(_DEPTH):
        if not isinstance(node, dict):
            return {}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            try:
                node = local_ref_target(root, ref)
            except LookupError:
                return {}
            continue
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if isinstance(options, list):
                real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                if len(real) == 1:
                    node = real[0]
                    break
        else:
            items = node.get("allOf")
            if isinstance(items, list) and len(items) == 1:
                node = items[0]
                continue
            return node
    return {}


def _text(node: Any, key: str) -> str | None:
    value = node.get(key) if isinstance(node, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _flag(node: Any, key: str) -> bool:
    return isinstance(node, dict) and node.get(key) is True
