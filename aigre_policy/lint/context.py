"""What every lint check reads: the compiled pack, its sources, and its rules as formulas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from aigre_policy import ir
from aigre_policy import nodes as n
from aigre_policy.compiler import CompiledPack
from aigre_policy.diagnostics import Diagnostic, Span
from aigre_policy.lint.codes import CODES
from aigre_policy.lint.formula import Formula, Translator
from aigre_policy.schema_types import input_type
from aigre_policy.types import ObjectType


@dataclass(frozen=True)
class PackView:
    compiled: CompiledPack
    sources: Mapping[str, str]
    exact: bool = False  # also ask the solver (lint.exact) what the range search leaves open
    notes: list[str] = field(default_factory=list)  # what a check could not decide, and why

    @property
    def rules(self) -> tuple[ir.Rule, ...]:
        return self.compiled.program.rules

    @cached_property
    def declarations(self) -> list[n.Declaration]:
        return [d for module in self.compiled.modules for d in module.declarations]

    @cached_property
    def rule_decls(self) -> dict[str, n.Rule]:
        """The AST of each rule that compiled (the first, if an id was declared twice)."""
        found: dict[str, n.Rule] = {}
        for decl in self.declarations:
            if isinstance(decl, n.Rule):
                found.setdefault(decl.id, decl)
        return found

    @cached_property
    def input_type(self) -> ObjectType:
        return input_type(self.compiled.input_schema)

    @cached_property
    def translator(self) -> Translator:
        return Translator(self.input_type, self.compiled.envelopes)

    @cached_property
    def pack(self) -> Any:
        """The pack as the engine runs it (``pack.Pack``), for checks that judge inputs."""
        from aigre_policy.pack import Pack  # pack imports the compiler, which runs the lint

        return Pack(self.compiled, [])

    @cached_property
    def suite(self) -> Any:
        """The pack's own tests, run (``testing.runner.SuiteResult``): read by two checks."""
        # the test runner loads packs through the compiler, which runs the lint
        from aigre_policy.testing.cases import load_cases
        from aigre_policy.testing.runner import run_suite  # (the same reason)

        cases, _ = load_cases(self.pack)
        return run_suite(self.pack, cases)

    @cached_property
    def formulas(self) -> dict[str, Formula]:
        """Each rule's condition as a formula, by rule id."""
        return {rule.id: self.translator.formula(rule.condition) for rule in self.rules}


def finding(code: str, message: str, span: Span | None, hint: str | None = None) -> Diagnostic:
    """A lint diagnostic at its code's default severity."""
    return Diagnostic(code, CODES[code].severity, message, span, hint)
