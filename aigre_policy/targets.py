"""What each engine can express, checked once, by the check stage, for every backend.

``schema_diagnostics``: the input schema keywords every engine checks alike (the Rego
target emits a check for each; see ``rego.schema``); any other is refused on every
engine (E604). ``target_diagnostics``: what one target cannot run exactly (nothing
today), carried by the ``CheckedPack`` to the backend that needs it, so no backend runs
checks of its own.
"""

from __future__ import annotations

from typing import Any

from aigre_policy import ir
from aigre_policy.diagnostics import Diagnostic, error

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


# ------------------------------------------------------------------ the checks


def schema_diagnostics(schema: Any) -> list[Diagnostic]:
    """E604 for the input schema, on every engine: a keyword (or ``$ref``) the Rego
    engines cannot check would let them judge inputs native refuses."""
    found: list[Diagnostic] = []
    _schema(schema, schema, [], found)
    return found


def target_diagnostics(
    program: ir.Program, envelopes: dict[str, dict[str, Any]]
) -> dict[str, tuple[Diagnostic, ...]]:
    """What each target cannot run exactly, by target: ``{"rego": ...}``.

    Nothing today: every engine runs every construct with native's meaning. ``%`` and
    ``/`` were refused on Rego (E601, E602, retired); the Rego emitter now computes them
    as native does and fails the decision closed where native fails (a zero divisor,
    an overflow; see ``rego.expr.Translator.faults``). The seam stays: a construct a
    target cannot express is reported here, for that target, never approximated.
    """
    del program, envelopes  # read by the checks a target may need again
    return {"rego": ()}


def _schema(root: Any, schema: Any, refs: list[str], found: list[Diagnostic]) -> None:
    """E604 for each keyword (or ``$ref``) of the input schema not every engine checks."""
    if not isinstance(schema, dict):
        return
    for keyword in schema:
        if keyword not in CHECKED and keyword not in ANNOTATIONS:
            found.append(
                error(
                    "E604",
                    f"the input schema keyword `{keyword}` is not checked alike by every engine",
                    hint="supported: " + ", ".join(sorted(CHECKED)),
                )
            )
    if "$ref" in schema:
        ref = schema["$ref"]
        target = local_ref(root, ref)
        if target is None:
            found.append(error("E604", f"the input schema reference `{ref}` cannot be resolved"))
        elif ref in refs:
            found.append(
                error(
                    "E604",
                    f"the input schema reference `{ref}` is recursive: not every "
                    "engine can check it",
                )
            )
        else:
            _schema(root, target, [*refs, ref], found)
    for part in schema.get("allOf", []):
        _schema(root, part, refs, found)
    for sub in (schema.get("properties") or {}).values():
        _schema(root, sub, refs, found)
    extra = schema.get("additionalProperties", True)
    if isinstance(extra, dict):
        _schema(root, extra, refs, found)
    if "items" in schema:
        _schema(root, schema["items"], refs, found)
