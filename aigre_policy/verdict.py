"""The verdict an evaluation returns: a small, fast object with a stable JSON form.

Its dict form is the published verdict document (``docs/schemas/verdict.schema.json``,
defined by ``models.verdict.VerdictDocument``).

Everything a verdict says is captured when the decision is made: the decision,
and for each rule that held its message, the values it read and the comparisons
it made (``RuleEvidence``). Only the presentation is deferred: the dicts of
``fired`` and ``warnings``, the decision id and the input digest are built on
first use, so a caller that only reads the decision does not pay for them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aigre_policy.lattice import LATTICE as LATTICE  # the decisions, re-exported
from aigre_policy.plain import NotPlain, as_plain
from aigre_policy.runtime import fmt

# What generated ``explain_N`` code returns for a rule that held:
# (rule index, held, values its message interpolates (or the message itself),
# values of the bindings, comparisons as (index, left, op, right, result) tuples).
# A rule whose card has ``explain`` is recorded as (rule index, *the locals it read)
# and explained when its record is first rendered: the same values, the same evidence.
RuleEvidence = tuple[int, bool, tuple[Any, ...] | str, tuple[Any, ...], Any]


# one encoder for every call: ``json.dumps`` with options builds a new one each time
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the form digests are taken of."""
    return _CANONICAL.encode(value).encode()


def digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


def input_digest(document: Any) -> str:
    """The digest of an input document; never raises.

    An input that failed closed for not being JSON data (a ``datetime``, a cycle, an integer
    too long to write, nesting too deep to walk) is digested by its ``repr``, or failing
    that by its type: the verdict, and its JSON form, must still exist. A caller's object
    may raise anything from ``items`` or ``__repr__``, so every exception falls through.
    """
    try:
        return digest(document)
    except Exception:
        pass
    try:
        return digest(repr(document))
    except Exception:
        return digest(f"<{type(document).__name__} without a JSON form>")


def refused_input_digest(document: Any) -> str:
    """The digest of an input refused for not being JSON data, or past the evaluation
    bounds; never raises, and never walks more of it than the bounds allow.

    A caller's structure may share one list at every level (a YAML alias does), so that
    writing it out, even as its ``repr``, takes forever. Within the bounds it is digested
    as its JSON data; past them, by its type and the first problem found.
    """
    try:
        return digest(as_plain(document))
    except NotPlain as exc:
        return digest({"not_json": type(document).__name__, "problem": str(exc)})
    except Exception:
        return digest(f"<{type(document).__name__} without a JSON form>")


def rule_fault(
    rule_id: str,
    location: dict[str, Any],
    span: dict[str, Any] | None,
    cause: BaseException,
) -> dict[str, Any]:
    """The error record of a rule that failed at run time (``kind`` ``engine``).

    ``location`` is where the rule is declared, ``span`` the expression that failed
    (``None`` when unknown); both relative to the pack root, as fired records are.
    """
    where = f"{location['file']}:{location['line']}:{location['column']}"
    message = f"rule {rule_id} ({where}) failed: {type(cause).__name__}: {cause}"
    record: dict[str, Any] = {"kind": "engine", "path": "", "message": message}
    record.update(rule=rule_id, location=location)
    if span is not None:
        record["message"] += f", in {span['file']}:{span['line']}:{span['column']}"
        record["span"] = span
    return record


class EvaluationError(Exception):
    """Raised in strict mode instead of a fail-closed verdict."""

    def __init__(self, message: str, verdict: Verdict):
        super().__init__(message)
        self.verdict = verdict


@dataclass(frozen=True, slots=True)
class RuleCard:
    """The parts of a fired-rule record that do not depend on the input, built once per pack."""

    template: dict[str, Any]  # id, verdict, category, severity, title, description, owner
    tags: tuple[str, ...]
    location: dict[str, Any]
    approvers: tuple[str, ...]
    escalate_to: tuple[str, ...]
    bindings: tuple[str, ...]  # dotted paths, in the order of the captured values
    expressions: dict[int, str]  # comparison index -> its source text
    warn: bool
    message_parts: tuple[str | None, ...] = ()  # the `because` text; None: the next value
    explain: Any = None  # explain_N of a deferred record, ``(index, *locals)``

    def message(self, captured: tuple[Any, ...] | str) -> str:
        """The rule's message, the captured values formatted into its text."""
        if type(captured) is str:
            return captured
        values = iter(captured)
        return "".join(fmt(next(values)) if part is None else part for part in self.message_parts)

    def record(self, evidence: RuleEvidence) -> dict[str, Any]:
        """The published record of one fired rule; fresh containers every time."""
        if self.explain is not None:
            evidence = self.explain(*evidence[1:])
        _, _, message, values, comparisons = evidence
        texts = self.expressions
        return {
            **self.template,
            "message": self.message(message) or self.template["message"],
            "tags": [*self.tags],
            "location": {**self.location},
            "approvers": [*self.approvers],
            "escalate_to": [*self.escalate_to],
            "bindings": {
                path: value
                for path, value in zip(self.bindings, values, strict=True)
                if value is not None
            },
            "comparisons": [
                {
                    "expression": texts.get(index, ""),
                    "left": left,
                    "op": op,
                    "right": list(right) if type(right) is tuple else right,
                    "result": result,
                }
                for index, left, op, right, result in comparisons
            ],
        }


@dataclass(frozen=True, slots=True)
class Issuer:
    """What every verdict of one pack shares: the pack's reference and its rule cards."""

    pack: dict[str, str]  # name, version, digest
    cards: tuple[RuleCard, ...] = ()  # by rule index


class Verdict:
    """A decision and its evidence.

    Built on every evaluation, so the constructor only stores what it is given;
    everything else (whether the default decided, the groups, the errors, the
    rendered records, the input digest, the decision id) is derived on first
    read, or set by ``given``.
    """

    __slots__ = (
        "_approvers",
        "_decision_id",
        "_default_applied",
        "_errors",
        "_escalate_to",
        "_evidence",
        "_exempted",
        "_fail_closed",
        "_fired",
        "_input",
        "_input_digest",
        "_issuer",
        "_warnings",
        "decision",
        "elapsed_us",
    )
    # made on first read (annotations only: the slots above hold them)
    _decision_id: str
    _input_digest: str
    _exempted: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]
    _fired: list[dict[str, Any]]
    _warnings: list[dict[str, Any]]

    def __init__(
        self,
        decision: str,
        evidence: list[RuleEvidence],
        issuer: Issuer,
        input_document: Any,
        elapsed_us: float = 0.0,
    ):
        """The evaluator's verdict: the rest is derived from the evidence when read.

        Few positional parameters, no keyword-only ones: this runs on every decision.
        """
        self.decision = decision
        self.elapsed_us = elapsed_us
        self._evidence = evidence
        self._issuer = issuer
        self._input = input_document

    @classmethod
    def given(
        cls,
        decision: str,
        pack: dict[str, str],
        input_document: Any,
        *,
        fail_closed: bool = False,
        errors: list[dict[str, Any]] | None = None,
        approvers: list[str] | None = None,
        escalate_to: list[str] | None = None,
        default_applied: bool = False,
        elapsed_us: float = 0.0,
    ) -> Verdict:
        """A verdict whose outcome is stated rather than derived: fail-closed or from an engine.

        ``approvers``/``escalate_to`` left ``None`` are derived as usual (here: none).
        """
        verdict = cls(decision, [], Issuer(pack), input_document, elapsed_us)
        verdict._set_outcome(fail_closed, errors, approvers, escalate_to, default_applied)
        return verdict

    def _set_outcome(
        self,
        fail_closed: bool,
        errors: list[dict[str, Any]] | None,
        approvers: list[str] | None,
        escalate_to: list[str] | None,
        default_applied: bool,
    ) -> None:
        self._fail_closed = fail_closed
        self._default_applied = default_applied
        self._errors = [] if errors is None else errors
        if approvers is not None:
            self._approvers = approvers
        if escalate_to is not None:
            self._escalate_to = escalate_to

    @property
    def pack(self) -> dict[str, str]:
        """The pack that decided: name, version, content digest."""
        return self._issuer.pack

    @property
    def default_applied(self) -> bool:
        """Whether the pack's default decided: no rule but ``warn`` rules held."""
        try:
            return self._default_applied
        except AttributeError:  # derived on first read
            cards = self._issuer.cards
            self._default_applied = all(cards[e[0]].warn for e in self._evidence)
            return self._default_applied

    @property
    def fail_closed(self) -> bool:
        """Whether the pack's fail-closed decision stands in for one the rules could not make."""
        try:
            return self._fail_closed
        except AttributeError:  # the evaluator's verdicts never set it
            return False

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Why the verdict failed closed (``kind``, ``path``, ``message``); empty otherwise."""
        try:
            return self._errors
        except AttributeError:  # one list, kept
            self._errors = []
            return self._errors

    @property
    def approvers(self) -> list[str]:
        """Who may approve a ``require_approval``: every group the deciding rules name, sorted."""
        try:
            return self._approvers
        except AttributeError:  # derived on first read
            cards = self._issuer.cards
            self._approvers = (
                sorted({g for e in self._evidence for g in cards[e[0]].approvers})
                if self.decision == "require_approval"
                else []
            )
            return self._approvers

    @property
    def escalate_to(self) -> list[str]:
        """Where an ``escalate`` goes: the deciding rules' tiers, in pack order, once each."""
        try:
            return self._escalate_to
        except AttributeError:  # derived on first read
            cards = self._issuer.cards
            self._escalate_to = (
                list(dict.fromkeys(g for e in self._evidence for g in cards[e[0]].escalate_to))
                if self.decision == "escalate"
                else []
            )
            return self._escalate_to

    def _render(self) -> None:
        fired: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        for evidence in self._evidence:
            card = self._issuer.cards[evidence[0]]
            (warnings if card.warn else fired).append(card.record(evidence))
        self._fired, self._warnings = fired, warnings

    @property
    def fired(self) -> list[dict[str, Any]]:
        """Records of the fired rules that are not ``warn``, in pack order."""
        try:
            return self._fired
        except AttributeError:  # not rendered yet
            self._render()
            return self._fired

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Records of the fired ``warn`` rules, in pack order."""
        try:
            return self._warnings
        except AttributeError:  # not rendered yet
            self._render()
            return self._warnings

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def decision_id(self) -> str:
        try:
            return self._decision_id
        except AttributeError:  # made on first read
            self._decision_id = str(uuid.uuid4())
            return self._decision_id

    @property
    def input_digest(self) -> str:
        try:
            return self._input_digest
        except AttributeError:  # taken on first read
            self._input_digest = input_digest(self._input)
            return self._input_digest

    @property
    def rule_ids(self) -> list[str]:
        cards = self._issuer.cards
        return [cards[e[0]].template["id"] for e in self._evidence if not cards[e[0]].warn]

    @property
    def exempted(self) -> list[dict[str, Any]]:
        """The exemptions in force that kept a rule from firing on this action (see
        ``exemptions.exempted``); empty when none did. Found on first read."""
        try:
            found = self._exempted
        except AttributeError:
            return []
        if callable(found):
            found = self._exempted = found()
        return found

    def note_exempted(self, find: Any) -> None:
        """How to find the exemptions that kept rules from firing: a function of no
        arguments, called on the first read of ``exempted`` (set once, by ``Pack``)."""
        self._exempted = find

    def to_dict(self) -> dict[str, Any]:
        return verdict_document(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def __repr__(self) -> str:
        return f"Verdict({self.decision!r}, fired={self.rule_ids!r})"


def verdict_document(verdict: Any) -> dict[str, Any]:
    """The published verdict document of anything that reads like a ``Verdict``.

    ``exempted`` is present only when an exemption kept a rule from firing.
    """
    document = {
        "decision": verdict.decision,
        "fail_closed": verdict.fail_closed,
        "default_applied": verdict.default_applied,
        "fired": verdict.fired,
        "warnings": verdict.warnings,
        "approvers": [*verdict.approvers],
        "escalate_to": [*verdict.escalate_to],
        "errors": verdict.errors,
        "pack": verdict.pack,
        "decision_id": verdict.decision_id,
        "input_digest": verdict.input_digest,
        "elapsed_us": round(verdict.elapsed_us, 3),
    }
    exempted = getattr(verdict, "exempted", None)
    if exempted:
        document["exempted"] = [dict(record) for record in exempted]
    return document
