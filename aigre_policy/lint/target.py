"""Warnings of the Rego target that ``check --strict`` and ``ci`` report as ``build`` does.

``build`` emits W603 for every `lower`/`upper` call it compiles to Rego; finding the same
calls here keeps the three commands in agreement (a pack that passes ``ci`` builds without
a surprise). A pack that accepts the difference sets ``lint: {W603: warning}``.
"""

from __future__ import annotations

from collections.abc import Iterator

from aigre_policy import ir
from aigre_policy.diagnostics import Diagnostic, warning
from aigre_policy.lint.context import PackView

CASE_FOLDING = ("lower", "upper")  # rego.expr.CASE_FOLDING; a test holds them equal
TARGET_CODES = ("W603",)  # target codes a pack's `lint:` section may set


def check(view: PackView) -> Iterator[Diagnostic]:
    seen: set[tuple[str, int, int]] = set()
    for rule in view.rules:
        parts = [rule.condition, *(p for p in rule.message if not isinstance(p, str))]
        for part in parts:
            for node in ir.walk(part):
                if isinstance(node, ir.Call) and node.function in CASE_FOLDING:
                    key = (node.span.file, node.span.line, node.span.column)
                    if key in seen:
                        continue
                    seen.add(key)
                    yield warning(
                        "W603",
                        f"`{node.function}` changes only ASCII letters under rego-cpp; "
                        "engines may disagree on other text",
                        node.span,
                    )
