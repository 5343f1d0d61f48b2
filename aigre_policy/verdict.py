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
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
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


# orjson's ``dumps`` when it is installed (the ``serve`` extra), looked up on first use;
# ``False`` when it is not
_orjson_dumps: Any = None
# Sorted keys, and an error rather than a guess for anything but exact JSON types: a
# subclass, a date or a dataclass makes the standard encoder decide.
_ORJSON_OPTIONS = 0
# a digit, then ``e-``: the literal first, so the search skips to each ``e-`` at once
_DIGIT_E_MINUS = re.compile(rb"e-(?<=[0-9]e-)").search


def _fast_canonical(document: Any) -> bytes | None:
    """``canonical_json(document)`` written by orjson (about a tenth of the cost), or
    ``None`` when orjson is missing or the bytes could differ.

    For JSON data the two write the same bytes (``tests/test_verdict_digest.py`` compares
    them) but for two things: orjson refuses integers past 64 bits and lone surrogates
    (``None``: the standard encoder decides), and writes floats below 1e-4 differently
    (``0.00001`` and ``1e-7`` for ``1e-05`` and ``1e-07``): a digit before ``e-``, or
    ``0.0000``, anywhere in its output (also inside a string) sends the document to the
    standard encoder.
    """
    global _orjson_dumps, _ORJSON_OPTIONS
    dumps = _orjson_dumps
    if dumps is None:
        try:
            import orjson  # optional (the serve extra), and not loaded before a digest
        except ImportError:
            dumps = _orjson_dumps = False
        else:
            _ORJSON_OPTIONS = (
                orjson.OPT_SORT_KEYS
                | orjson.OPT_PASSTHROUGH_SUBCLASS
                | orjson.OPT_PASSTHROUGH_DATETIME
                | orjson.OPT_PASSTHROUGH_DATACLASS
            )
            dumps = _orjson_dumps = orjson.dumps
    if dumps is False:
        return None
    try:
        data: bytes = dumps(document, option=_ORJSON_OPTIONS)
    except Exception:  # past 64 bits, a lone surrogate, not JSON data: the standard encoder
        return None
    if b"0.0000" in data or _DIGIT_E_MINUS(data) is not None:
        return None
    return data


def plain_input_digest(document: Any) -> str:
    """``input_digest`` of an input known to be JSON data (what ``Pack.evaluate`` judged):
    the same digest, taken faster when orjson is installed; never raises."""
    data = _fast_canonical(document)
    if data is None:
        return input_digest(document)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def new_decision_id() -> str:
    """``str(uuid.uuid4())``, without building a ``UUID`` object (a third of the cost)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
    # where the captured values go in ``message_parts``, in order (derived)
    value_slots: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        slots = tuple(i for i, part in enumerate(self.message_parts) if part is None)
        object.__setattr__(self, "value_slots", slots)

    def message(self, captured: tuple[Any, ...] | str) -> str:
        """The rule's message, the captured values formatted into its text."""
        if type(captured) is str:
            return captured
        parts: list[Any] = [*self.message_parts]
        slots = self.value_slots
        if len(captured) < len(slots):  # a card and evidence that do not match: no message
            raise ValueError(f"{len(captured)} values for a message of {len(slots)}")
        for slot, value in zip(slots, captured):  # noqa: B905 - extra values are not shown
            parts[slot] = value if type(value) is str else fmt(value)
        return "".join(parts)

    def record(self, evidence: RuleEvidence) -> dict[str, Any]:
        """The published record of one fired rule; fresh containers every time, all the way
        down: a value the rule read may be an envelope's list, which the evaluator goes on
        reading, or the caller's own input, so a record never hands either out."""
        if self.explain is not None:
            evidence = self.explain(*evidence[1:])
        _, _, message, values, comparisons = evidence
        texts = self.expressions
        record = self.template.copy()
        record["message"] = self.message(message) or record["message"]
        record["tags"] = [*self.tags]
        record["location"] = {**self.location}
        record["approvers"] = [*self.approvers]
        record["escalate_to"] = [*self.escalate_to]
        paths = self.bindings
        if _SHARED.isdisjoint(map(type, values)):  # the usual case: no container to copy
            bound = {p: v for p, v in zip(paths, values, strict=True) if v is not None}
        else:
            bound = {
                p: fresh(v) if type(v) in _SHARED else v
                for p, v in zip(paths, values, strict=True)
                if v is not None
            }
        record["bindings"] = bound
        record["comparisons"] = [
            {
                "expression": texts.get(index, ""),
                "left": fresh(left) if type(left) in _SHARED else left,
                "op": op,
                "right": _listed(right) if type(right) in _SHARED else right,
                "result": result,
            }
            for index, left, op, right, result in comparisons
        ]
        return record


# the containers a captured value may be: copied into every record (see ``fresh``)
_SHARED = frozenset({list, dict, tuple})


def _listed(value: Any) -> Any:
    """``fresh(value)``, a tuple as a list (a comparison's right side is published as one)."""
    if type(value) is tuple:
        return [*value] if _SHARED.isdisjoint(map(type, value)) else [*map(fresh, value)]
    return fresh(value)


def fresh(value: Any) -> Any:
    """``value`` (JSON data) with new lists and dicts all the way down (a tuple stays a
    tuple): what a verdict hands a caller. One level of scalars, the usual case, is copied
    in one call."""
    kind = type(value)
    if kind is list:
        return [*value] if _SHARED.isdisjoint(map(type, value)) else [*map(fresh, value)]
    if kind is dict:
        if _SHARED.isdisjoint(map(type, value.values())):
            return {**value}
        return {key: fresh(item) for key, item in value.items()}
    if kind is tuple and not _SHARED.isdisjoint(map(type, value)):
        return tuple(map(fresh, value))
    return value  # a scalar, or a tuple of scalars: nothing in it can be edited


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
    read, or set by ``given``. A field not derived yet holds ``None``: a test for
    ``None`` costs a fraction of catching the ``AttributeError`` of an empty slot, which
    ``to_dict`` met once per field. Those slots are filled with ``None`` on the first
    read of any of them (``_start``), not here: ten more stores would cost every
    decision more than the reads save.
    """

    __slots__ = (
        "_any_input",
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
        "_unstarted",
        "_warnings",
        "decision",
        "elapsed_us",
    )
    _unstarted: bool  # the slots below are empty: ``_start`` fills them
    _fail_closed: bool
    _any_input: bool  # made by ``given``: the input may not be JSON data
    # ``None`` until derived on first read, or set by ``given``
    _approvers: list[str] | None
    _decision_id: str | None
    _default_applied: bool | None
    _errors: list[dict[str, Any]] | None
    _escalate_to: list[str] | None
    _exempted: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]] | None
    _fired: list[dict[str, Any]] | None
    _input_digest: str | None
    _warnings: list[dict[str, Any]] | None

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
        ``input_document`` is JSON data (``Pack.evaluate`` hands over nothing else; see
        ``given`` for a verdict on what may not be).
        """
        self.decision = decision
        self.elapsed_us = elapsed_us
        self._evidence = evidence
        self._issuer = issuer
        self._input = input_document
        self._fired = self._warnings = None  # a subclass may set them at once
        self._unstarted = True

    def _start(self) -> None:
        """Fill the slots derived on first read (``None``: not derived yet)."""
        self._unstarted = False
        self._fail_closed = self._any_input = False
        self._default_applied = self._errors = self._approvers = self._escalate_to = None
        self._decision_id = self._input_digest = self._exempted = None

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
        ``input_document`` may be anything a caller passed (an input refused for not being
        JSON data): it is digested by ``refused_input_digest``, which never raises nor walks
        past the evaluation bounds (JSON data digests as ``input_digest`` digests it).
        """
        verdict = cls(decision, [], Issuer(pack), input_document, elapsed_us)
        verdict._set_outcome(fail_closed, errors, approvers, escalate_to, default_applied)
        verdict._any_input = True
        return verdict

    def _set_outcome(
        self,
        fail_closed: bool,
        errors: list[dict[str, Any]] | None,
        approvers: list[str] | None,
        escalate_to: list[str] | None,
        default_applied: bool,
    ) -> None:
        if self._unstarted:
            self._start()
        self._fail_closed = fail_closed
        self._default_applied = default_applied
        self._errors = [] if errors is None else errors
        if approvers is not None:
            self._approvers = approvers
        if escalate_to is not None:
            self._escalate_to = escalate_to

    @property
    def pack(self) -> dict[str, str]:
        """The pack that decided: name, version, content digest (a copy: the pack's own is
        shared by all its verdicts)."""
        return {**self._issuer.pack}

    @property
    def default_applied(self) -> bool:
        """Whether the pack's default decided: no rule but ``warn`` rules held."""
        if self._unstarted:
            self._start()
        applied = self._default_applied
        if applied is None:  # derived on first read
            cards = self._issuer.cards
            applied = self._default_applied = all(cards[e[0]].warn for e in self._evidence)
        return applied

    @property
    def fail_closed(self) -> bool:
        """Whether the pack's fail-closed decision stands in for one the rules could not make."""
        return False if self._unstarted else self._fail_closed

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Why the verdict failed closed (``kind``, ``path``, ``message``); empty otherwise."""
        if self._unstarted:
            self._start()
        errors = self._errors
        if errors is None:  # one list, kept
            errors = self._errors = []
        return errors

    @property
    def approvers(self) -> list[str]:
        """Who may approve a ``require_approval``: every group the deciding rules name, sorted."""
        if self._unstarted:
            self._start()
        approvers = self._approvers
        if approvers is None:  # derived on first read
            if self.decision == "require_approval":
                cards = self._issuer.cards
                approvers = sorted({g for e in self._evidence for g in cards[e[0]].approvers})
            else:
                approvers = []
            self._approvers = approvers
        return approvers

    @property
    def escalate_to(self) -> list[str]:
        """Where an ``escalate`` goes: the deciding rules' tiers, in pack order, once each."""
        if self._unstarted:
            self._start()
        tiers = self._escalate_to
        if tiers is None:  # derived on first read
            if self.decision == "escalate":
                cards = self._issuer.cards
                named = (g for e in self._evidence for g in cards[e[0]].escalate_to)
                tiers = list(dict.fromkeys(named))
            else:
                tiers = []
            self._escalate_to = tiers
        return tiers

    def _rendered(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The records of the evidence, fired then warnings: new ones at every call."""
        fired: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        cards = self._issuer.cards
        for evidence in self._evidence:
            card = cards[evidence[0]]
            (warnings if card.warn else fired).append(card.record(evidence))
        return fired, warnings

    def _render(self) -> None:
        self._fired, self._warnings = self._rendered()

    @property
    def fired(self) -> list[dict[str, Any]]:
        """Records of the fired rules that are not ``warn``, in pack order."""
        fired = self._fired
        if fired is None:  # not rendered yet
            self._render()
            fired = self._fired
            assert fired is not None
        return fired

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Records of the fired ``warn`` rules, in pack order."""
        warnings = self._warnings
        if warnings is None:  # not rendered yet
            self._render()
            warnings = self._warnings
            assert warnings is not None
        return warnings

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def decision_id(self) -> str:
        if self._unstarted:
            self._start()
        made = self._decision_id
        if made is None:  # made on first read
            made = self._decision_id = new_decision_id()
        return made

    @property
    def input_digest(self) -> str:
        if self._unstarted:
            self._start()
        taken = self._input_digest
        if taken is None:  # taken on first read
            document = self._input
            if self._any_input:  # whatever a caller passed: never walked past the bounds
                taken = refused_input_digest(document)
            else:
                taken = plain_input_digest(document)
            self._input_digest = taken
        return taken

    @property
    def rule_ids(self) -> list[str]:
        cards = self._issuer.cards
        return [cards[e[0]].template["id"] for e in self._evidence if not cards[e[0]].warn]

    @property
    def exempted(self) -> list[dict[str, Any]]:
        """The exemptions in force that kept a rule from firing on this action (see
        ``exemptions.exempted``); empty when none did. Found on first read."""
        if self._unstarted:
            return []
        found = self._exempted
        if found is None:
            return []
        if callable(found):
            found = self._exempted = found()
        return found

    def note_exempted(self, find: Any) -> None:
        """How to find the exemptions that kept rules from firing: a function of no
        arguments, called on the first read of ``exempted`` (set once, by ``Pack``)."""
        if self._unstarted:
            self._start()
        self._exempted = find

    def to_dict(self) -> dict[str, Any]:
        """The published verdict document, in containers of its own: a caller may edit it
        (redact it, add to it) without changing this verdict or any other. The same
        document ``verdict_document`` writes, read from the slots (fewer calls)."""
        if self._evidence:  # rendered again rather than copied from ``fired``: as cheap
            fired, warnings = self._rendered()
        else:  # none, or records this verdict was given (an engine's, a recorded one)
            fired, warnings = fresh(self.fired), fresh(self.warnings)
        if self._unstarted:
            self._start()
        errors = self._errors
        document = {
            "decision": self.decision,
            "fail_closed": self._fail_closed,
            "default_applied": self.default_applied,
            "fired": fired,
            "warnings": warnings,
            "approvers": [*self.approvers],
            "escalate_to": [*self.escalate_to],
            "errors": fresh(errors) if errors else [],
            "pack": {**self._issuer.pack},
            "decision_id": self.decision_id,
            "input_digest": self.input_digest,
            "elapsed_us": round(self.elapsed_us, 3),
        }
        exempted = self._exempted
        if exempted is not None:
            exempted = self.exempted
            if exempted:
                document["exempted"] = fresh(exempted)
        return document

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def __repr__(self) -> str:
        return f"Verdict({self.decision!r}, fired={self.rule_ids!r})"


def verdict_document(
    verdict: Any,
    fired: list[dict[str, Any]] | None = None,
    warnings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The published verdict document of anything that reads like a ``Verdict``.

    Every container is new: editing the document changes no verdict. ``fired``/``warnings``:
    the records to publish, when the caller has them in containers of their own
    (``Verdict.to_dict``); else copies of the verdict's. ``exempted`` is present only when
    an exemption kept a rule from firing.
    """
    document = {
        "decision": verdict.decision,
        "fail_closed": verdict.fail_closed,
        "default_applied": verdict.default_applied,
        "fired": fresh(verdict.fired) if fired is None else fired,
        "warnings": fresh(verdict.warnings) if warnings is None else warnings,
        "approvers": [*verdict.approvers],
        "escalate_to": [*verdict.escalate_to],
        "errors": fresh(verdict.errors),
        "pack": {**verdict.pack},
        "decision_id": verdict.decision_id,
        "input_digest": verdict.input_digest,
        "elapsed_us": round(verdict.elapsed_us, 3),
    }
    exempted = getattr(verdict, "exempted", None)
    if exempted:
        document["exempted"] = fresh(exempted)
    return document
