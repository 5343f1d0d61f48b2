"""L203, L204: envelope values and usages that no rule reads.

An unread envelope value is a limit that limits nothing: overriding it in
``pack.yaml`` changes no decision. An unread usage is history the gate
computes and passes in on every check for nothing. Reads in conditions and in
``because`` messages count; invariants and tests do not, as they decide nothing.
Hand-written Rego reads envelopes through ``data``, by paths no compiler stage
resolves: a value whose envelope and field names both appear in such a module
counts as read, so the check never reports a limit Rego may use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from aigre_policy import ir
from aigre_policy import nodes as n
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lint.context import PackView, finding


def rule_reads(view: PackView) -> set[str]:
    """Dotted names of the envelope values and usages the rules read."""
    read: set[str] = set()
    for rule in view.rules:
        parts = [rule.condition, *(p for p in rule.message if not isinstance(p, str))]
        for part in parts:
            for node in ir.walk(part):
                if isinstance(node, ir.EnvelopeRef):
                    read.add(node.dotted)
                elif isinstance(node, ir.Path) and node.root == "usage" and node.steps:
                    read.add(f"usage.{node.steps[0]}")
    return read


def rego_words(view: PackView) -> set[str]:
    """Every identifier in the pack's hand-written Rego modules."""
    words: set[str] = set()
    for module in view.compiled.handwritten:
        words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", module.source))
    return words


def check(view: PackView) -> Iterator[Diagnostic]:
    read = rule_reads(view)
    in_rego = rego_words(view)
    for decl in view.declarations:
        if isinstance(decl, n.Envelope) and decl.name in view.compiled.envelopes:
            for item in decl.fields:
                if f"{decl.name}.{item.name}" in read:
                    continue
                if {decl.name, item.name} <= in_rego:
                    continue
                yield finding(
                    "L203",
                    f"no rule reads the envelope value `{decl.name}.{item.name}`",
                    item.span,
                    "read it in a rule, or drop it: overriding it changes no decision",
                )
        elif isinstance(decl, n.Usage) and f"usage.{decl.name}" not in read:
            yield finding(
                "L204",
                f"no rule reads the usage `{decl.name}`",
                decl.span,
                f"read it as `usage.{decl.name}` in a rule, or drop the declaration: "
                "the gate computes it on every check",
            )
