"""The JSON Schema of a pack's input.

``action`` and ``context`` come from the pack's schema, ``usage`` from its declarations.

Deferred imports: the pydantic models load only when the builtin schema is first read.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

BUILTIN_SCHEMAS = ("builtin:proposed-action/v1",)


@cache
def _builtin() -> dict[str, Any]:
    # the pydantic models load only when a pack reads the built-in schema: a pack loaded
    # from the compile cache, or with its own schema, never needs them
    from aigre_policy.models.action import Context, ProposedAction, json_schema_of

    action = json_schema_of(ProposedAction)
    context = json_schema_of(Context)
    defs = {**action.pop("$defs", {}), **context.pop("$defs", {})}
    for part in (action, context):
        part.pop("$schema", None)
    return {
        "type": "object",
        "properties": {"action": action, "context": context},
        "required": ["action", "context"],
        "$defs": defs,
    }


def builtin_schema(name: str) -> dict[str, Any]:
    """A copy of the built-in schema ``name``: what a caller does to it never reaches the
    next pack (the schema is made once; a shared dict let one edit loosen every pack)."""
    if name not in BUILTIN_SCHEMAS:
        raise KeyError(name)
    return copy.deepcopy(_builtin())


def compose(base: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    """The whole input schema: the pack's ``action``/``context`` plus the ``usage`` object."""
    from aigre_policy.models.action import ATTESTED

    properties = dict(base.get("properties", {}))
    properties["usage"] = {**usage, ATTESTED: True}  # the gate computes it from its ledger
    required = list(dict.fromkeys([*base.get("required", ["action", "context"]), "usage"]))
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    for key in ("$defs", "definitions"):
        if key in base:
            schema[key] = base[key]
    return schema
