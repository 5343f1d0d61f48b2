"""What each engine can express, checked once, by the check stage, for every backend.

``schema_diagnostics``: the input schema keywords every engine checks alike (the Rego
target emits a check for each; see ``rego.schema``); any other is refused on every
engine (E604). ``target_diagnostics``: what one target cannot run exactly (``%`` and a
divisor that may be zero on Rego: E601, E602), carried by the ``CheckedPack`` to the
backend that needs it, so no backend runs checks of its own.
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

Fact = tuple[str, tuple[str, ...], bool]  # a path (root, steps, local) known not to be zero


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

    ``%`` (E601): the Rego engines take the remainder of integers only. ``/`` by a value
    that may be zero (E602): native fails closed on it, a Rego engine would leave the
    rule undefined, which could allow. A divisor is known not to be zero when it is a
    non-zero constant or envelope value, its negation, or a path compared with 0 where
    the division cannot run otherwise: the left of an ``and``
    (``lines > 0 and cost / lines > 2``), the left of an ``or`` that failed, and in a
    ``because`` message the conjuncts of the rule's condition.
    """
    found: list[Diagnostic] = []
    for rule in program.rules:
        _arithmetic(rule.condition, frozenset(), envelopes, found)
        held = _facts(rule.condition)  # a message renders only when the rule holds
        for part in rule.message:
            if not isinstance(part, str):
                _arithmetic(part, held, envelopes, found)
    return {"rego": tuple(found)}


def _arithmetic(
    node: ir.Node,
    facts: frozenset[Fact],
    envelopes: dict[str, dict[str, Any]],
    found: list[Diagnostic],
) -> None:
    match node:
        case ir.BoolOp(op=op, left=left, right=right):
            # the right operand runs only when the left one settled nothing: true for `and`,
            # false for `or`
            known = _facts(left) if op == "and" else _facts(left, negated=True)
            _arithmetic(left, facts, envelopes, found)
            _arithmetic(right, facts | known, envelopes, found)
            return
        case ir.Quantifier(var=var, items=items, body=body):
            _arithmetic(items, facts, envelopes, found)
            inner = frozenset(f for f in facts if not (f[2] and f[0] == var))
            _arithmetic(body, inner, envelopes, found)
            return
        case ir.Arith(op="%"):
            found.append(
                error(
                    "E601",
                    "`%` has no exact Rego form (the Rego engines take the remainder of "
                    "integers only)",
                    node.span,
                    hint="compare with a multiple instead, or keep this pack on the native engine",
                )
            )
        case ir.Arith(op="/", right=divisor) if not _nonzero(divisor, facts, envelopes):
            found.append(
                error(
                    "E602",
                    "division by a value that may be zero cannot fail closed in Rego",
                    node.span,
                    hint="divide by a constant or an envelope value that is not zero, or "
                    "guard the divisor: `x > 0 and y / x > ...`",
                )
            )
    for child in ir.children(node):
        _arithmetic(child, facts, envelopes, found)


def _key(node: ir.Node) -> Fact | None:
    return (node.root, node.steps, node.local) if isinstance(node, ir.Path) else None


# a comparison with a number that proves the other side is not zero: (op, holds for c)
_PROVES_NONZERO = {
    ">": lambda c: c >= 0,
    ">=": lambda c: c > 0,
    "<": lambda c: c <= 0,
    "<=": lambda c: c < 0,
    "!=": lambda c: c == 0,
    "==": lambda c: c != 0,
}
_MIRRORED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "!=": "!=", "==": "=="}
_NEGATED = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "!=": "==", "==": "!="}


def _facts(condition: ir.Node, negated: bool = False) -> frozenset[Fact]:
    """The paths ``condition`` proves not to be zero when it holds (``negated``: when it
    does not): an ``and`` chain that holds, an ``or`` chain that fails, ``not``."""
    match condition:
        case ir.BoolOp(op=op, left=left, right=right) if (op == "and") != negated:
            return _facts(left, negated) | _facts(right, negated)
        case ir.Not(operand=operand):
            return _facts(operand, not negated)
        case ir.Compare(op=op, left=left, right=ir.Const(value=value)):
            return _fact(_NEGATED[op] if negated else op, left, value)
        case ir.Compare(op=op, left=ir.Const(value=value), right=right):
            mirrored = _MIRRORED[op]
            return _fact(_NEGATED[mirrored] if negated else mirrored, right, value)
    return frozenset()


def _fact(op: str, side: ir.Node, value: Any) -> frozenset[Fact]:
    key = _key(side)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if key is None or not number or op not in _PROVES_NONZERO:
        return frozenset()
    return frozenset([key]) if _PROVES_NONZERO[op](value) else frozenset()


def _nonzero(node: ir.Node, facts: frozenset[Fact], envelopes: dict[str, dict[str, Any]]) -> bool:
    match node:
        case ir.Const(value=value):
            return _is_nonzero_number(value)
        case ir.EnvelopeRef(envelope=envelope, name=name):
            return _is_nonzero_number(envelopes.get(envelope, {}).get(name))
        case ir.Neg(operand=x):
            return _nonzero(x, facts, envelopes)
        case ir.Path():
            return _key(node) in facts
    return False


def _is_nonzero_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value != 0


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
