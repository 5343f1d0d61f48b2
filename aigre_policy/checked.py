"""The backend seam's two sides: the ``CheckedPack`` every backend reads, and the
``Evaluator`` protocol every backend returns; and what the driver hands back
(``CompiledPack``, ``CompileReport``).

A module of its own so that backends (native code generation, the reference
interpreter, Rego, the solver) import the pack they read without importing the
driver that builds it; docs/compiler.md#backends describes the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aigre_policy import ir
from aigre_policy.diagnostics import Diagnostic, SourceText, has_errors
from aigre_policy.validation import InputValidator
from aigre_policy.verdict import Verdict

if TYPE_CHECKING:  # the source's syntax tree: a cached pack reads it only when asked
    from aigre_policy import nodes as n

MANIFEST = "pack.yaml"  # the file that makes a directory a pack


@dataclass
class Manifest:
    name: str
    version: str
    description: str
    input_schema: str
    default: str
    fail_closed: str
    envelopes: dict[str, dict[str, Any]]
    # input paths the decision log masks or drops: {path: "mask" | "drop"}
    sensitive: dict[str, str] = field(default_factory=dict)
    lint: dict[str, str] = field(default_factory=dict)  # lint code -> error, warning or off
    # groups a fail-closed require_approval verdict names; [] = its rules' groups
    fail_closed_approvers: list[str] = field(default_factory=list)
    # approver groups whose approvals an enforced allow does not use up
    reusable_approvals: list[str] = field(default_factory=list)
    owner: str = ""  # who answers for the pack
    extends: str = ""  # the parent pack's directory, relative to this pack
    disable: list[dict[str, str]] = field(default_factory=list)  # [{rule, reason}] of the parent


@dataclass(frozen=True)
class DecisionPolicy:
    """What a pack decides when no rule does, or when it cannot judge."""

    default: str
    fail_closed: str
    # who a fail-closed require_approval verdict goes to; () when it is not one
    fail_closed_approvers: tuple[str, ...]
    reusable_approvals: tuple[str, ...]  # approvals an enforced allow does not use up


@dataclass(frozen=True)
class CheckedPack:
    """What the check stage ends in, and all that a backend reads.

    Native code generation, the reference interpreter and the Rego target each turn
    this into an evaluator (``aigre_policy.backend``); none reads the pack directory or
    another stage's state.
    """

    root: Path
    manifest: Manifest
    modules: tuple[n.Module, ...]
    program: ir.Program
    envelopes: dict[str, dict[str, Any]]  # effective values, overrides applied
    input_schema: dict[str, Any]  # the pack's schema with its usage declarations
    policy: DecisionPolicy
    digest: str
    handwritten: tuple[Any, ...] = ()  # rego.handwritten.HandwrittenModule, policies/*.rego
    # checks every input before any engine judges it; set by the seal stage
    validator: InputValidator | None = None
    # what one target cannot run exactly, found by the check stage: {"rego": ()} today
    target_diagnostics: dict[str, tuple[Diagnostic, ...]] = field(default_factory=dict)
    # exemptions.yaml (``exemptions.Exemption``), already compiled into ``program``'s rules
    exemptions: tuple[Any, ...] = ()
    # rule id -> its condition before exemptions: what a verdict's ``exempted`` list reads
    unexempted: dict[str, ir.Node] = field(default_factory=dict)
    # the directories of the packs this one extends, nearest first
    ancestors: tuple[Path, ...] = ()
    # how many declarations of each kind ("Test", "Usage", ...) ``modules`` holds: a
    # summary reads this without the syntax trees, which a cached pack loads on demand
    declared: dict[str, int] = field(default_factory=dict)

    @property
    def ref(self) -> dict[str, str]:
        """The pack's name, version and digest, as every verdict names it."""
        return {"name": self.manifest.name, "version": self.manifest.version, "digest": self.digest}


def decision_policy(manifest: Manifest, rules: tuple[ir.Rule, ...]) -> DecisionPolicy:
    """The pack's default and fail-closed choice, with who a fail-closed verdict goes to."""
    return DecisionPolicy(
        default=manifest.default,
        fail_closed=manifest.fail_closed,
        fail_closed_approvers=_fail_closed_approvers(manifest, rules),
        reusable_approvals=tuple(manifest.reusable_approvals),
    )


def _fail_closed_approvers(manifest: Manifest, rules: tuple[ir.Rule, ...]) -> tuple[str, ...]:
    """Who a fail-closed ``require_approval`` verdict goes to.

    ``fail_closed_approvers`` in pack.yaml when set; otherwise every group the
    pack's ``require_approval`` rules name, so the verdict always names someone to ask.
    """
    if manifest.fail_closed != "require_approval":
        return ()
    named = tuple(manifest.fail_closed_approvers)
    return named or tuple(
        sorted({g for r in rules if r.verdict == "require_approval" for g in r.groups})
    )


class Evaluator(Protocol):
    """What a backend returns for one pack: ``Pack`` calls ``decide`` on every valid input."""

    engine: str  # the name ``load_pack(engine=...)`` goes by
    warnings: tuple[Diagnostic, ...]  # what the backend warns of for this pack

    def decide(self, document: dict[str, Any], started: int) -> Verdict:
        """The verdict on one input document (``action``, ``context``, ``usage``) that the
        pack's validator passed; ``started`` is the ``perf_counter_ns`` of the call, for
        ``elapsed_us``. May raise: ``Pack`` turns any exception into a fail-closed verdict."""
        ...


@dataclass(frozen=True)
class CompiledPack:
    """A ``CheckedPack`` with the evaluator one backend built from it: what a ``Pack`` runs on.

    The checked pack's parts read through, so a caller of ``compile_pack`` reads
    ``report.compiled.program`` whichever engine was built.
    """

    checked: CheckedPack
    evaluator: Evaluator

    @property
    def root(self) -> Path:
        return self.checked.root

    @property
    def manifest(self) -> Manifest:
        return self.checked.manifest

    @property
    def modules(self) -> tuple[n.Module, ...]:
        return self.checked.modules

    @property
    def program(self) -> ir.Program:
        return self.checked.program

    @property
    def envelopes(self) -> dict[str, dict[str, Any]]:
        return self.checked.envelopes

    @property
    def input_schema(self) -> dict[str, Any]:
        return self.checked.input_schema

    @property
    def digest(self) -> str:
        return self.checked.digest

    @property
    def handwritten(self) -> tuple[Any, ...]:
        return self.checked.handwritten

    @property
    def python(self) -> Any:
        """The generated Python (``codegen.EmittedModule``) when the evaluator is native."""
        return getattr(self.evaluator, "python")  # noqa: B009 - AttributeError when not native


@dataclass
class CompileReport:
    diagnostics: list[Diagnostic]
    sources: SourceText
    compiled: CompiledPack | None = None  # when an engine was asked for and built
    stages_run: list[str] = field(default_factory=list)
    checked: CheckedPack | None = None  # the check stage's result, sealed

    @property
    def ok(self) -> bool:
        return self.checked is not None and not has_errors(self.diagnostics)
