"""Pack composition: ``extends: ../parent`` in ``pack.yaml``, and ``disable:``.

A child pack inherits its parent's policies (rules, envelopes, usage declarations,
``test`` blocks and invariants), input schema, envelope values, ``sensitive`` fields and
``tests/*.yaml``; the parent's parent likewise. The child's ``envelopes:`` override the
values the parents set (checked against the types the parents declare, E504), its
policies add rules, and ``disable:`` turns a parent's rule off only with a reason, each
one logged as W537. ``name``, ``version``, ``default`` and ``fail_closed`` are the
child's own. A missing parent or a cycle is E535; ``disable`` of an unknown rule, of
the child's own rule, or of a ``bright-line`` rule is E536 (E532 for a bright line).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aigre_policy import ir
from aigre_policy.checked import Manifest
from aigre_policy.diagnostics import Diagnostic, error, warning
from aigre_policy.exemptions import NOT_EXEMPTABLE
from aigre_policy.typecheck import did_you_mean
from aigre_policy.yamlio import Document

MAX_DEPTH = 16  # packs extending packs: past this, a chain is a mistake


@dataclass(frozen=True)
class Parent:
    """A pack this one extends: its directory, manifest and the manifest's text."""

    root: Path
    manifest: Manifest
    doc: Document


ReadManifest = Callable[[Path], tuple[Manifest | None, list[Diagnostic], Document | None]]


def read_parents(
    root: Path, manifest: Manifest, doc: Document | None, read_manifest: ReadManifest
) -> tuple[tuple[Parent, ...], list[Diagnostic]]:
    """The chain of packs ``root`` extends, nearest first; a cycle or a missing parent is E535
    at the ``extends`` that names it."""
    parents: list[Parent] = []
    seen = [root.resolve()]
    child, child_doc = manifest, doc
    while child.extends:
        span = child_doc.span_of(("extends",)) if child_doc else None
        here = parents[-1].root if parents else root
        parent_root = Path(os.path.normpath(Path(here) / child.extends))
        if not (parent_root / "pack.yaml").is_file():
            return tuple(parents), [
                error(
                    "E535",
                    f"`extends: {child.extends}` names no pack: {parent_root} has no pack.yaml",
                    span,
                    "the path is relative to the directory of the pack that extends it",
                )
            ]
        resolved = parent_root.resolve()
        if resolved in seen:
            names = " -> ".join(p.name for p in [*seen, resolved])
            return tuple(parents), [
                error(
                    "E535", f"`extends` makes a cycle: {names}", span, "a pack cannot extend itself"
                )
            ]
        if len(parents) >= MAX_DEPTH:
            return tuple(parents), [
                error("E535", f"`extends` chains more than {MAX_DEPTH} packs", span)
            ]
        seen.append(resolved)
        found, problems, found_doc = read_manifest(parent_root)
        if found is None or found_doc is None:
            return tuple(parents), problems
        parents.append(Parent(parent_root, found, found_doc))
        child, child_doc = found, found_doc
    return tuple(parents), []


def inherited_manifest(
    manifest: Manifest, doc: Document | None, parents: tuple[Parent, ...]
) -> Manifest:
    """``manifest`` with what it leaves unset taken from its parents: ``sensitive`` fields
    merge (the child's setting wins per field); ``lint``, ``fail_closed_approvers``,
    ``reusable_approvals`` and ``owner`` come from the nearest pack that sets them."""
    if not parents:
        return manifest
    given = doc.data if doc is not None and isinstance(doc.data, dict) else {}
    sensitive: dict[str, str] = {}
    for parent in reversed(parents):
        sensitive.update(parent.manifest.sensitive)
    sensitive.update(manifest.sensitive)
    changes: dict[str, Any] = {"sensitive": sensitive}
    for name in ("lint", "fail_closed_approvers", "reusable_approvals", "owner"):
        if name in given:
            continue
        for parent in parents:
            if name in parent.doc.data:
                changes[name] = getattr(parent.manifest, name)
                break
    return replace(manifest, **changes)


def disable_rules(
    program: ir.Program, manifest: Manifest, doc: Document | None, root: Path
) -> tuple[ir.Program, list[Diagnostic]]:
    """``program`` with the rules ``disable:`` names never firing, and a W537 for each
    (the log of what a child turned off, and why). Only a parent's rule may be disabled."""
    if not manifest.disable:
        return program, []
    problems: list[Diagnostic] = []
    off: set[str] = set()
    rules = {rule.id: rule for rule in program.rules}
    own = root.resolve()
    for i, item in enumerate(manifest.disable):
        span = doc.span_of(("disable", i, "rule")) if doc else None
        rule = rules.get(item["rule"])
        if rule is None:
            problems.append(
                error(
                    "E536",
                    f"`disable` names an unknown rule `{item['rule']}`",
                    span,
                    did_you_mean(item["rule"], rules) or "it names a rule id of the parent pack",
                )
            )
        elif Path(rule.span.file).resolve().parent == own / "policies":
            problems.append(
                error(
                    "E536",
                    f"`{rule.id}` is this pack's own rule: delete it instead of disabling it",
                    span,
                )
            )
        elif NOT_EXEMPTABLE in rule.tags:
            problems.append(
                error(
                    "E532",
                    f"`{rule.id}` is tagged `{NOT_EXEMPTABLE}`: a child pack cannot disable it",
                    span,
                    "raise it with the parent pack's owners",
                )
            )
        else:
            off.add(rule.id)
            problems.append(
                warning(
                    "W537",
                    f"parent rule `{rule.id}` is disabled: {item['reason']}",
                    span,
                )
            )
    if not off:
        return program, problems
    rules_out = tuple(
        replace(rule, condition=ir.Const(False, span=rule.condition.span))
        if rule.id in off
        else rule
        for rule in program.rules
    )
    return replace(program, rules=rules_out), problems


def pack_roots(pack: Any) -> tuple[Path, ...]:
    """The pack's directory, then each it extends, nearest first."""
    checked = getattr(pack, "checked", None)
    return (Path(pack.root), *getattr(checked, "ancestors", ()))
