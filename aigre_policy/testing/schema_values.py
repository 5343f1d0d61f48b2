"""Values from a pack's input schema: the sub-schema at a path, a minimal valid instance.

Used to build test inputs for coverage gaps: fields are filled from the
schema's ``default``, ``enum``, ``examples`` and bounds, in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ANCHOR_TIME = "2025-03-10T12:00:00Z"  # a Monday, mid-day UTC: no weekday or hour rule trips


def resolve(schema: dict[str, Any], node: Any) -> dict[str, Any]:
    """``node`` with local ``$ref``s followed (``#/$defs/Name``)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 32:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return {}
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        seen += 1
    if isinstance(node, dict):
        for key in ("anyOf", "oneOf"):
            options = [o for o in node.get(key, []) if resolve(schema, o).get("type") != "null"]
            if options and "type" not in node:
                return resolve(
                    schema, {**options[0], **{k: v for k, v in node.items() if k != key}}
                )
        return node
    return {}


def at_path(schema: dict[str, Any], steps: Sequence[str | int]) -> dict[str, Any]:
    """The sub-schema at ``steps`` (``["action", "cost", "estimated_usd"]``); {} if unknown."""
    node = resolve(schema, schema)
    for step in steps:
        if isinstance(step, int):
            node = resolve(schema, node.get("items", {}))
        else:
            node = resolve(schema, node.get("properties", {}).get(step, {}))
        if not node:
            return {}
    return node


def minimal(schema: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """A small instance of ``node``: required fields only, each from default/enum/examples."""
    node = resolve(schema, node)
    if depth > 12:
        return None
    if "default" in node:
        return node["default"]
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    if node.get("examples"):
        return node["examples"][0]
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in node:
        properties = node.get("properties", {})
        return {
            name: minimal(schema, properties.get(name, {}), depth + 1)
            for name in node.get("required", [])
        }
    if kind == "array":
        count = node.get("minItems", 0)
        return [minimal(schema, node.get("items", {}), depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum"))
        if low is None:
            return 0
        return low + (1 if "exclusiveMinimum" in node and "minimum" not in node else 0)
    if kind == "boolean":
        return False
    if kind == "string":
        if node.get("format") == "date-time":
            return ANCHOR_TIME
        return "x" * max(1, node.get("minLength", 1))
    return None


def choices(node: dict[str, Any]) -> list[Any]:
    """The values a field can take when it is an enum or a boolean; else []."""
    if node.get("enum"):
        return list(node["enum"])
    if node.get("type") == "boolean":
        return [True, False]
    return []
