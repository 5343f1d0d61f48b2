"""L502: a rule reads a proposer's claim where the claim can loosen the verdict.

A proposal is written by its proposer, who may be hostile. The input schema marks
the fields that describe authority rather than the action itself (who proposes
it, which approvals it holds, when) with ``x-aigre-claim``, and may name the field
the gate attests instead with ``x-aigre-attested-as``. A restrictive rule
(``deny``, ``require_approval``, ``escalate``) that reads a claim can be switched
off by a proposer who writes another value; a ``permit`` that reads one can be
switched on. Either way the proposer picks a looser verdict.

One reading is safe and not reported: an ``any`` over a claimed list where more
items can only make the rule fire more (a restrictive rule's ``any`` under an even
number of ``not``, a permit's under an odd number). Compared with the same
proposal with no such items, the claim can only tighten the verdict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aigre_policy import ir
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lattice import RESTRICTIVE
from aigre_policy.lint.context import PackView, finding
from aigre_policy.models.action import ATTESTED_AS, CLAIM

GRANTS = frozenset({"permit"})
_MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Claim:
    """A claimed field: its path from the input root, and what the gate attests instead."""

    path: tuple[str, ...]
    attested_as: str | None


def claim_fields(schema: Mapping[str, Any]) -> dict[tuple[str, ...], Claim]:
    """Every field of ``action`` the input schema marks ``x-aigre-claim``, by path."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    found: dict[tuple[str, ...], Claim] = {}

    def resolve(node: Any) -> Any:
        for _ in range(_MAX_DEPTH):
            ref = node.get("$ref") if isinstance(node, Mapping) else None
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return node
            target = defs.get(ref.rsplit("/", 1)[-1])
            if target is None:
                return node
            node = target
        return node

    def visit(node: Any, path: tuple[str, ...], depth: int) -> None:
        if not isinstance(node, Mapping) or depth > _MAX_DEPTH:
            return
        if node.get(CLAIM) is True:
            attested = node.get(ATTESTED_AS)
            found[path] = Claim(path, attested if isinstance(attested, str) else None)
            return
        node = resolve(node)
        for part in node.get("allOf", []):
            visit(part, path, depth + 1)
        for name, sub in (node.get("properties") or {}).items():
            visit(sub, (*path, name), depth + 1)

    action = (schema.get("properties") or {}).get("action")
    visit(action, ("action",), 0)
    return found


def check(view: PackView) -> Iterator[Diagnostic]:
    claims = claim_fields(view.compiled.input_schema)
    if not claims:
        return
    counted_by_claim = _usage_claims(view.compiled.program.usages, claims)
    for rule in view.rules:
        if rule.verdict in RESTRICTIVE:
            wanted = 1  # more claimed items may only make it fire
        elif rule.verdict in GRANTS:
            wanted = -1  # more claimed items may only keep it from firing
        else:
            continue
        reported: set[str] = set()
        for path, claim in _unsafe_reads(rule.condition, claims, 1, wanted):
            if path.dotted in reported:
                continue
            reported.add(path.dotted)
            yield _finding(rule, path, claim)
        for name in _usages_read(rule.condition):
            if name in counted_by_claim and f"usage.{name}" not in reported:
                reported.add(f"usage.{name}")
                yield _usage_finding(rule, name, *counted_by_claim[name])


def _usage_claims(
    usages: tuple[ir.Usage, ...], claims: Mapping[tuple[str, ...], Claim]
) -> dict[str, tuple[ir.Path, Claim]]:
    """The usage values whose filter or value reads a claim of the past proposals: the
    first such read of each. Whoever writes the claim decides whether, or how much, an
    action counts, so a rule reading the value can be loosened, whatever its polarity."""
    found: dict[str, tuple[ir.Path, Claim]] = {}
    for usage in usages:
        matched = [past for past, _ in usage.matches]  # `action.actor.id == current.actor.id`
        for part in (usage.filter, usage.argument, *matched):
            for node in ir.walk(part) if part is not None else ():
                if not isinstance(node, ir.Path):
                    continue
                claim = _claim_of(node, claims)
                if claim is not None and usage.name not in found:
                    found[usage.name] = (node, claim)
    return found


def _usages_read(condition: ir.Node) -> list[str]:
    return [
        node.steps[0]
        for node in ir.walk(condition)
        if isinstance(node, ir.Path) and not node.local and node.root == "usage" and node.steps
    ]


def _usage_finding(rule: ir.Rule, name: str, path: ir.Path, claim: Claim) -> Diagnostic:
    message = (
        f"rule `{rule.id}` reads `usage.{name}`, which counts by `{path.dotted}`, a claim of "
        f"each proposal: a proposer who writes another value decides whether its actions "
        f"count, and so loosens the `{rule.verdict}`"
    )
    hint = (
        f"count by what the proposer cannot choose (`decision`, the action's kind or target), "
        f"or suppress this with the reason the claim cannot loosen `usage.{name}`"
    )
    return finding("L502", message, path.span, hint)


def _finding(rule: ir.Rule, path: ir.Path, claim: Claim) -> Diagnostic:
    read = path.dotted
    if rule.verdict in GRANTS:
        effect = "a proposer who writes it can be granted what the rule grants"
    else:
        effect = f"a proposer who writes another value switches the `{rule.verdict}` off"
    message = f"rule `{rule.id}` reads `{read}`, a claim of the proposal: {effect}"
    if claim.attested_as is not None:
        attested = claim.attested_as + read[len(".".join(claim.path)) :]
        hint = f"read `{attested}` instead: the gate attests it, whatever the proposal says"
    else:
        hint = (
            f"`{'.'.join(claim.path)}` has no attested counterpart: read `context` instead, "
            "or suppress this with the reason a claimed value cannot loosen the verdict"
        )
    return finding("L502", message, path.span, hint)


def _claim_of(path: ir.Path, claims: Mapping[tuple[str, ...], Claim]) -> Claim | None:
    if path.local:
        return None
    full = (path.root, *path.steps)
    for end in range(1, len(full) + 1):
        claim = claims.get(full[:end])
        if claim is not None:
            return claim
    return None


def _list_path(node: ir.Node) -> ir.Path | None:
    """The list a quantifier reads when, absent, it reads as no items at all.

    ``action.approvals ?? context.approvals`` is not one: a proposer who writes ``[]``
    takes away the items the fallback would give."""
    if isinstance(node, ir.Path):
        return node
    if isinstance(node, ir.Default) and _is_empty_list(node.fallback):
        return node.path
    return None


def _is_empty_list(node: ir.Node) -> bool:
    if isinstance(node, ir.ListOf):
        return not node.items
    return isinstance(node, ir.Const) and node.value == []


def _sign(node: ir.Compare) -> int:
    """How a truth value compared with a constant keeps its polarity: ``x == true`` as ``x``,
    ``x == false`` as ``not x``; 0 (unknown) for any other comparison."""
    for side in (node.left, node.right):
        if isinstance(side, ir.Const) and isinstance(side.value, bool) and node.op in ("==", "!="):
            return 1 if side.value == (node.op == "==") else -1
    return 0


def _unsafe_reads(
    node: ir.Node, claims: Mapping[tuple[str, ...], Claim], polarity: int, wanted: int
) -> Iterator[tuple[ir.Path, Claim]]:
    """The claim reads in ``node`` that can move the rule towards a looser verdict."""
    match node:
        case ir.Path():
            claim = _claim_of(node, claims)
            if claim is not None:
                yield node, claim
        case ir.Not():
            yield from _unsafe_reads(node.operand, claims, -polarity, wanted)
        case ir.BoolOp():
            yield from _unsafe_reads(node.left, claims, polarity, wanted)
            yield from _unsafe_reads(node.right, claims, polarity, wanted)
        case ir.Quantifier():
            listed = _list_path(node.items)
            claim = _claim_of(listed, claims) if listed is not None else None
            grows = polarity if node.kind == "any" else -polarity
            if claim is not None and grows == wanted:
                return  # each claimed item can only push the rule towards firing stricter
            yield from _unsafe_reads(node.items, claims, polarity, wanted)
            yield from _unsafe_reads(node.body, claims, polarity, wanted)
        case ir.Default():
            yield from _unsafe_reads(node.path, claims, polarity, wanted)
            yield from _unsafe_reads(node.fallback, claims, polarity, wanted)
        case ir.Has():
            yield from _unsafe_reads(node.path, claims, polarity, wanted)
        # inside a value the polarity is unknown (0): no quantifier there counts as safe
        case ir.Compare():
            yield from _unsafe_reads(node.left, claims, polarity * _sign(node), wanted)
            yield from _unsafe_reads(node.right, claims, polarity * _sign(node), wanted)
        case ir.Arith():
            yield from _unsafe_reads(node.left, claims, 0, wanted)
            yield from _unsafe_reads(node.right, claims, 0, wanted)
        case ir.Member():
            yield from _unsafe_reads(node.item, claims, 0, wanted)
            yield from _unsafe_reads(node.collection, claims, 0, wanted)
        case ir.Neg():
            yield from _unsafe_reads(node.operand, claims, 0, wanted)
        case ir.Call():
            for arg in node.args:
                yield from _unsafe_reads(arg, claims, 0, wanted)
        case ir.ListOf():
            for item in node.items:
                yield from _unsafe_reads(item, claims, 0, wanted)
        case _:
            return
