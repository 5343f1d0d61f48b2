"""What every engine can express, checked once for all of them.

The native evaluator, the reference interpreter and the Rego engines must accept the
same packs. What one of them cannot run exactly is therefore part of the language's
limits, not of one backend: the check stage reports it, so no backend refuses a pack
the others run. This module holds those limits: the input schema keywords every
engine checks alike (the Rego target emits a check for each; see ``rego.schema``).
"""

from __future__ import annotations

from typing import Any

# keywords that only annotate: no engine checks them
ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$comment", "$defs", "definitions", "title", "description",
        "default", "examples", "deprecated", "readOnly", "writeOnly",
        "contentEncoding", "contentMediaType",
        "x-aigre-claim", "x-aigre-attested", "x-aigre-attested-as",
    }
)  # fmt: skip
# keywords every engine checks with the meaning ``aigre_policy.validation`` gives them
CHECKED = frozenset(
    {
        "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "minLength", "maxLength", "minItems", "maxItems", "pattern", "format", "required",
        "properties", "additionalProperties", "items", "$ref", "allOf",
    }
)  # fmt: skip


def local_ref(root: Any, ref: Any) -> Any:
    """What the local ``$ref`` ``#/a/b`` points at in ``root``; ``None`` when it is not
    local or points at nothing."""
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
