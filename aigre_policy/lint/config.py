"""The ``lint:`` section of ``pack.yaml``: a severity per lint code.

``lint: {L301: warning, L203: off}`` — each code set to ``error``, ``warning``
or ``off``. A code that is not a lint code is itself a finding (L210), at the
key in ``pack.yaml``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from aigre_policy import composition
from aigre_policy.compiler import read_manifest
from aigre_policy.diagnostics import Diagnostic, Severity
from aigre_policy.lint.codes import CODES
from aigre_policy.lint.context import finding
from aigre_policy.lint.target import TARGET_CODES
from aigre_policy.typecheck import did_you_mean


@dataclass(frozen=True)
class LintConfig:
    levels: Mapping[str, str]  # only the codes the pack sets
    problems: tuple[Diagnostic, ...] = ()

    def apply(self, diagnostic: Diagnostic) -> Diagnostic | None:
        """The finding at the pack's level for its code; ``None`` when the code is off."""
        level = self.levels.get(diagnostic.code)
        if level is None:
            return diagnostic
        if level == "off":
            return None
        return dataclasses.replace(diagnostic, severity=Severity(level))

    def sets(self, code: str) -> bool:
        """Whether the pack chose this code's level itself."""
        return code in self.levels


def read_config(root: Path) -> LintConfig:
    manifest, _, doc = read_manifest(root)
    if manifest is None:
        return LintConfig({})
    # a pack that sets no `lint:` takes the nearest parent's (`extends:`)
    parents, _ = composition.read_parents(root, manifest, doc, read_manifest)
    manifest = composition.inherited_manifest(manifest, doc, parents)
    levels: dict[str, str] = {}
    problems: list[Diagnostic] = []
    # the pack schema admits these values only; YAML reads a bare `off` as false
    # cast: the manifest was validated against that schema before it was read
    lint = cast(Mapping[str, Literal["error", "warning", "off", False]], manifest.lint)
    for code, level in lint.items():
        if code in CODES or code in TARGET_CODES:
            levels[code] = "off" if level is False else level  # YAML reads a bare off as false
            continue
        problems.append(
            finding(
                "L210",
                f"`{code}` is not a lint code",
                doc.span_of(("lint", code)) if doc else None,
                did_you_mean(code, CODES) or "lint codes: " + ", ".join(CODES),
            )
        )
    return LintConfig(levels, tuple(problems))
