"""The rule cards of a pack: what every fired record of a rule shares, built once per pack.

Every backend that builds ``Verdict`` objects from rule evidence (native, the reference
interpreter) issues its records through these cards, so a rule's id, texts, groups and
location read the same whichever engine judged.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from aigre_policy import ir
from aigre_policy.verdict import RuleCard


def rule_card(
    rule: ir.Rule, bindings: tuple[str, ...], root: Path, explain: Any = None
) -> RuleCard:
    """What every fired record of ``rule`` shares; the location is relative to the pack root.

    ``bindings``: the dotted paths whose values the evaluator captures, in order;
    ``explain``: the rule's ``explain_N`` when its records are deferred (``(index, *locals)``).
    """
    template: dict[str, Any] = {"id": rule.id, "verdict": rule.verdict}
    if rule.title:
        template["title"] = rule.title
    if rule.description:
        template["description"] = rule.description
    if rule.owner:
        template["owner"] = rule.owner
    template.update(
        category=rule.category,
        severity=rule.severity,
        tags=None,  # filled per record, in this key order
        message=rule.title or f"rule {rule.id} fired",
    )
    return RuleCard(
        template=template,
        tags=tuple(rule.tags),
        location=rule_location(rule, root),
        approvers=tuple(rule.groups) if rule.verdict == "require_approval" else (),
        escalate_to=tuple(rule.groups) if rule.verdict == "escalate" else (),
        bindings=bindings,
        expressions={
            node.index: node.text
            for node in ir.walk(rule.condition)
            if isinstance(node, ir.Compare | ir.Member)
        },
        warn=rule.verdict == "warn",
        message_parts=tuple(part if isinstance(part, str) else None for part in rule.message),
        explain=explain,
    )


def rule_location(rule: ir.Rule, root: Path) -> dict[str, Any]:
    """Where ``rule`` is declared, its file relative to the pack root."""
    location = rule.location
    location["file"] = relative(location["file"], root)
    return location


def relative(file: str, root: Path) -> str:
    """A source file's path relative to the pack root; one outside the root keeps its path,
    except a parent pack's file (``extends:``), named from the root with ``..``."""
    with contextlib.suppress(ValueError):
        return Path(file).relative_to(root).as_posix()
    if file.endswith(".aigre") and Path(file).is_file():
        return Path(os.path.relpath(file, root)).as_posix()
    return file
