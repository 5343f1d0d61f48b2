"""Checking a pack's ``sensitive:`` paths against its input schema.

``sensitive`` in ``pack.yaml`` maps input paths (``action.data.subject_regions``) to
``mask`` or ``drop``; the decision log applies them (``gate.redact``). A path that
names no field of the input schema would silently protect nothing, so it is an
error (E506) at compile time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aigre_policy.diagnostics import Diagnostic, Span, error
from aigre_policy.typecheck import did_you_mean
from aigre_policy.types import ListType, ObjectType, Type


def check_sensitive_paths(
    sensitive: Mapping[str, str],
    input_type: ObjectType,
    span_of: Callable[[str], Span | None],
) -> list[Diagnostic]:
    """One E506 per path that does not name a field of the input."""
    diagnostics: list[Diagnostic] = []
    for path in sensitive:
        problem = _unknown_part(path, input_type)
        if problem is not None:
            message, hint = problem
            diagnostics.append(error("E506", message, span_of(path), hint))
    return diagnostics


def _unknown_part(path: str, root: ObjectType) -> tuple[str, str | None] | None:
    node: Type = root
    walked: list[str] = []
    for part in path.split("."):
        while isinstance(node, ListType):  # lists on the way are walked into
            node = node.item
        if not isinstance(node, ObjectType):
            where = ".".join(walked)
            return f"sensitive path `{path}`: `{where}` is a {node}, it has no fields", None
        if not node.fields and walked:
            return None  # an open object: any field may appear
        field = node.fields.get(part)
        if field is None:
            where = ".".join(walked) or "the input"
            known = sorted(node.fields)
            hint = did_you_mean(part, known) or (
                "known: " + ", ".join(f"`{k}`" for k in known) if known else None
            )
            return f"sensitive path `{path}`: {where} has no field `{part}`", hint
        walked.append(part)
        node = field.type
    return None
