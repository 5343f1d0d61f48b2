"""L101, L102, L104: conditions decided over the inputs the schema admits.

A rule whose condition no input makes true never fires (L101); one that every
input makes true fires on everything (L102). Both are decided exactly for
comparisons of one field with constants and envelope values, combined with
``and``/``or``/``not``; other parts count as free, so what is reported is proven.
A comparison with a constant the field can never take — past its ``minimum``
or ``maximum``, outside its enum — is L104.
"""

from __future__ import annotations

from collections.abc import Iterator

from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lint.context import PackView, finding
from aigre_policy.lint.formula import Formula, Undecided, atoms, find


def check(view: PackView) -> Iterator[Diagnostic]:
    for rule in view.rules:
        settled = decided(view.formulas[rule.id])
        never, always = settled == "never", settled == "always"
        if never:
            yield finding(
                "L101",
                f"rule `{rule.id}` never fires: no input the schema admits makes its "
                "condition true",
                rule.span,
                "compare the constants with the fields' ranges and enums, and check "
                "`and`/`or` are the right way round",
            )
        elif always:
            yield finding(
                "L102",
                f"rule `{rule.id}` fires on every input: its condition always holds",
                rule.span,
                "the condition does not tell inputs apart; check `and`/`or` and `not`",
            )
        yield from _out_of_range(view, rule.id)


def decided(formula: Formula) -> str | None:
    """``"never"`` or ``"always"`` when the search over field ranges proves it, else ``None``."""
    try:
        if find(formula, True) is None:
            return "never"
        if find(formula, False) is None:
            return "always"
    except Undecided:
        pass
    return None


def _out_of_range(view: PackView, rule_id: str) -> Iterator[Diagnostic]:
    seen: set[int] = set()
    for atom in atoms(view.formulas[rule_id]):
        if atom.var.key[0] != "field" or id(atom) in seen:
            continue
        seen.add(id(atom))
        outside = [v for v in atom.constants() if not atom.var.domain.in_range(v)]
        if not outside:
            continue
        shown = ", ".join(_show(v) for v in outside)
        other = f"`{atom.envelope}`, which holds {shown}" if atom.envelope else shown
        yield finding(
            "L104",
            f"`{atom.text}` compares `{atom.var.name}` with {other}, outside what the "
            f"schema allows: {atom.var.domain.describe()}",
            atom.span,
            "use a value inside the range, or fix the schema's bounds",
        )


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
