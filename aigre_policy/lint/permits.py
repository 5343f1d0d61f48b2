"""L501: a ``permit`` that admits every action of some kind in production.

In a pack whose default is ``deny``, a permit is a grant. One whose condition,
with ``action.environment == "production"`` and ``action.kind == K``, always
holds lets every production action of kind K through, whoever proposes it,
however large: almost never what a grant means. Needs a schema whose
``action.environment`` admits "production" and whose ``action.kind`` is a string.
"""

from __future__ import annotations

from collections.abc import Iterator

from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lint.context import PackView, finding
from aigre_policy.lint.domain import Domain, domain_of, field_type
from aigre_policy.lint.formula import Undecided, atoms, field_key, find

PRODUCTION = "production"


def check(view: PackView) -> Iterator[Diagnostic]:
    environment = _domain(view, "environment")
    kind = _domain(view, "kind")
    if environment is None or kind is None or not environment.in_range(PRODUCTION):
        return
    if environment.kind != "string" or kind.kind != "string":
        return
    for rule in view.rules:
        if rule.verdict != "permit":
            continue
        formula = view.formulas[rule.id]
        kind_key = field_key("action.kind")
        named = [c for a in atoms(formula) if a.var.key == kind_key for c in a.constants()]
        candidates = list(kind.enum) if kind.enum is not None else kind.representatives(named)
        admitted: list[str] = []
        try:
            for value in candidates:
                fixed = {field_key("action.environment"): PRODUCTION, kind_key: value}
                if find(formula, False, fixed) is None:
                    admitted.append(value)
        except Undecided:
            continue
        if not admitted:
            continue
        if kind.enum is not None and len(admitted) == len(kind.enum):
            what = "every production action"
        else:
            shown = [
                f"`{k}`" if k in named or kind.enum else "any kind it does not name"
                for k in admitted
            ]
            what = f"every production action of kind {', '.join(shown)}"
        yield finding(
            "L501",
            f"permit `{rule.id}` admits {what}, whoever proposes it",
            rule.span,
            "narrow the grant: who proposes it, how large it is, which approvals it holds",
        )


def _domain(view: PackView, name: str) -> Domain | None:
    typ = field_type(view.input_type, "action", (name,))
    return domain_of(typ) if typ is not None else None
