"""The published verdict document: a decision and the evidence behind it.

These models define the stable JSON a gate returns for every checked action. The
evaluator builds a faster plain object at run time; its ``to_dict()`` output must
validate against the schema published from these models (``docs/schemas/``).
Optional fields are absent, never ``null``, as in the action model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Comparison",
    "Decision",
    "FiredRule",
    "PackRef",
    "Problem",
    "RuleVerdict",
    "Severity",
    "SourceLocation",
    "SourceSpan",
    "VerdictDocument",
]

Decision = Literal["allow", "escalate", "require_approval", "deny"]
"""A verdict's decision, from least to most restrictive."""

RuleVerdict = Literal["deny", "require_approval", "escalate", "permit", "warn"]
"""What a single rule says when it fires."""

Severity = Literal["low", "medium", "high", "critical"]

ComparisonOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]

RULE_ID_PATTERN = r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$"
"""Rule ids and categories: lowercase words joined by ``-`` or ``_`` (as ``RULE_ID`` in the
grammar)."""

SHA256_PATTERN = r"^sha256:[0-9a-f]{64}$"

SEMVER_PATTERN = (
    r"^(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    r"(?:-(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
"""Semantic Versioning 2.0.0, ASCII digits only (``\\d`` differs between regex engines)."""

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
"""A UUID in its canonical lowercase hyphenated form, as ``str(uuid.uuid4())`` writes it."""

Sha256Digest = Annotated[str, Field(pattern=SHA256_PATTERN)]
GroupName = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceLocation(_Model):
    """Where a rule lives in the pack's source."""

    file: str = Field(description="Path of the source file, relative to the pack root.")
    line: int = Field(ge=1, description="1-based line in `file`.")
    column: int = Field(ge=1, description="1-based column in `file`.")


class SourceSpan(_Model):
    """A region of the pack's source: from `line`:`column` up to `end_line`:`end_column`."""

    file: str = Field(description="Path of the source file, relative to the pack root.")
    line: int = Field(ge=1, description="1-based line where the region starts.")
    column: int = Field(ge=1, description="1-based column where the region starts.")
    end_line: int = Field(ge=1, description="1-based line where the region ends.")
    end_column: int = Field(ge=1, description="1-based column just past the region's end.")


class Comparison(_Model):
    """One comparison a fired rule's condition evaluated, with both operands."""

    expression: str = Field(
        description="Source text of the comparison, e.g. `action.change.lines > 200`."
    )
    left: Any = Field(description="Value of the left operand.")
    op: ComparisonOp = Field(description="The comparison operator.")
    right: Any = Field(description="Value of the right operand: often an envelope limit.")
    result: bool = Field(description="What the comparison evaluated to.")


class FiredRule(_Model):
    """A rule whose condition held, with the evidence it read."""

    id: str = Field(pattern=RULE_ID_PATTERN, description="The rule's id in the pack.")
    verdict: RuleVerdict = Field(description="What the rule says when it fires.")
    title: str | None = Field(None, description="The rule's title; absent when it has none.")
    description: str | None = Field(
        None, description="The rule's `description`; absent when it has none."
    )
    owner: str | None = Field(None, description="The rule's `owner`; absent when it has none.")
    category: str = Field(
        pattern=RULE_ID_PATTERN,
        description="Risk, cost, compliance, reliability, or a custom word.",
    )
    severity: Severity = Field(description="How serious the rule's finding is.")
    tags: list[str] = Field(description="Free-form tags declared on the rule.")
    message: str = Field(description="The rule's `because` text with its values interpolated.")
    location: SourceLocation = Field(description="Where the rule is declared.")
    approvers: list[GroupName] = Field(
        description="Groups that may approve, for a `require_approval` rule; [] otherwise."
    )
    escalate_to: list[GroupName] = Field(
        description="Reviewer tiers named by an `escalate` rule; [] otherwise."
    )
    bindings: dict[str, Any] = Field(
        description=(
            "Each dotted input or envelope path the condition read, mapped to the value read, "
            'e.g. {"action.environment": "production"}.'
        )
    )
    comparisons: list[Comparison] = Field(
        description="The comparisons the condition evaluated, in evaluation order."
    )


class Problem(_Model):
    """Why a verdict failed closed: an input that broke the schema, or an engine error."""

    kind: Literal["input", "engine"] = Field(
        description="`input` for a schema error in the input, `engine` for an evaluation error."
    )
    path: str = Field(description='Dotted path of the offending value; "" for the root.')
    message: str = Field(description="What is wrong, for a human.")
    keyword: str | None = Field(
        None,
        description="The JSON Schema keyword that failed (`required`, `enum`, ...); "
        "absent for engine errors.",
    )
    rule: str | None = Field(
        None,
        pattern=RULE_ID_PATTERN,
        description="For an engine error raised inside a rule: the rule's id.",
    )
    location: SourceLocation | None = Field(
        None, description="Where that rule is declared; present with `rule`."
    )
    span: SourceSpan | None = Field(
        None, description="The expression of that rule that failed, when known."
    )


class ExemptedRule(_Model):
    """An exemption in force that kept its rule from firing on this action."""

    exemption: str = Field(description="The exemption's id in the pack's exemptions.yaml.")
    rule: str = Field(description="The rule that would have fired without it.")
    owner: str = Field(description="Who asked for the exemption and answers for it.")
    ticket: str = Field(description="The ticket that records it.")
    expires: str = Field(description="When it stops counting (RFC 3339), by the gate's clock.")
    reason: str = Field(description="Why the rule must not bite here.")


class PackRef(_Model):
    """The policy pack that produced a verdict."""

    name: str = Field(min_length=1, description="The pack's name.")
    version: str = Field(pattern=SEMVER_PATTERN, description="The pack's semantic version.")
    digest: Sha256Digest = Field(description="Digest of the pack's compiled content.")


class VerdictDocument(_Model):
    """The decision on one proposed action, with the evidence behind it."""

    decision: Decision = Field(
        description="Outcome for the action; the most restrictive fired rule wins "
        "(deny > require_approval > escalate > allow)."
    )
    fail_closed: bool = Field(
        description="True when the decision came from an input or engine error, not from rules."
    )
    default_applied: bool = Field(
        description="True when no rule decided and the pack's default gave the decision."
    )
    fired: list[FiredRule] = Field(
        description="Fired deny, require_approval, escalate and permit rules, in pack order."
    )
    warnings: list[FiredRule] = Field(
        description="Fired `warn` rules: advisories that never change the decision."
    )
    approvers: list[GroupName] = Field(
        description="Groups that may resolve a require_approval decision: the sorted union "
        "over fired require_approval rules; [] otherwise."
    )
    escalate_to: list[GroupName] = Field(
        description="Reviewer tiers named by fired escalate rules, in order, deduplicated."
    )
    errors: list[Problem] = Field(description="Why the verdict failed closed; [] otherwise.")
    pack: PackRef = Field(description="The pack that made the decision.")
    decision_id: str = Field(
        pattern=UUID_PATTERN, description="Unique id of this decision (a UUID)."
    )
    input_digest: Sha256Digest = Field(
        description="Digest of the canonical JSON of the input the decision was made on."
    )
    elapsed_us: float = Field(ge=0, description="Time spent evaluating, in microseconds.")
    exempted: list[ExemptedRule] | None = Field(
        default=None,
        description="Present when an exemption (exemptions.yaml) kept a rule from firing: "
        "which exemption, its rule, owner, ticket, expiry and reason.",
    )
    gate: dict[str, Any] | None = Field(
        default=None,
        description="Present on a Gate's verdict: what the gate did beyond the pack — the "
        "pack's own decision (`pack_decision`), the `action_digest` approvals bind to, the "
        "`usage` values read from the ledger, `approvals` counted, each reviewer tier's "
        "answer (`reviews`), who `settled_by`, and the shadow pack's view (`shadow`).",
    )
