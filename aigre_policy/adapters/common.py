"""What every adapter shares: reading a payload, the judge it calls, and the environment table.

An adapter reads a format an operations tool already emits and proposes the actions
a pack judges. It never decides: a *judge* does (``pack_judge`` over ``Pack.evaluate``
for ``eval``, a gate's ``check`` in a server). A payload that cannot be read is an
``AdapterError`` with one line saying why, and every adapter turns it into a refusal,
never into ``allow``.

Deferred imports: an adapter's parsing and the gate load only when that format is
judged.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from aigre_policy.verdict import canonical_json

# The most a payload may hold. A plan or a review past it is refused before it is parsed.
MAX_PAYLOAD_BYTES = 32 * 1024 * 1024


class AdapterError(ValueError):
    """A payload the adapter cannot read; the message is one line."""


class VerdictLike(Protocol):
    """What an adapter reads of a verdict: a ``Verdict`` or a gate's ``GateVerdict``."""

    decision: str

    @property
    def fired(self) -> list[dict[str, Any]]: ...
    @property
    def warnings(self) -> list[dict[str, Any]]: ...
    @property
    def approvers(self) -> list[str]: ...
    @property
    def escalate_to(self) -> list[str]: ...
    @property
    def errors(self) -> list[dict[str, Any]]: ...
    @property
    def fail_closed(self) -> bool: ...
    def to_dict(self) -> dict[str, Any]: ...


Judge = Callable[[dict[str, Any]], VerdictLike]
"""Judges one proposed action: ``pack_judge(...)``, or ``lambda a: gate.check(a, actor=...)``."""


def pack_judge(pack: Any, context: Mapping[str, Any] | None, usage: Any = None) -> Judge:
    """A judge that evaluates with the pack alone, with the context its caller attests.

    ``context.now`` is the caller's clock: when the context has none, the time of each
    call is put there (``eval`` runs now).
    """
    given = dict(context or {})

    def judge(action: dict[str, Any]) -> VerdictLike:
        attested = dict(given)
        attested.setdefault("now", now_iso())
        return pack.evaluate(action, attested, usage)

    return judge


def declared_action_fields(pack: Any) -> frozenset[str]:
    """The ``action`` fields the pack's input schema declares: an adapter fills an optional
    field (``network``) only when the pack can read it, so a closed schema stays valid."""
    from aigre_policy.schema_types import input_type

    try:
        action = input_type(pack.input_schema).fields.get("action")
        fields = getattr(getattr(action, "type", None), "fields", None) or {}
    except Exception:  # an unreadable schema: fill nothing optional
        return frozenset()
    return frozenset(fields)


def now_iso(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with a ``Z``, as the action schema writes date-times."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def read_json(payload: Any, what: str) -> Any:
    """A payload as JSON data: bytes or text are parsed; parsed data is taken as is.

    Malformed JSON is one line naming the line and column; so is a payload past
    ``MAX_PAYLOAD_BYTES`` or not UTF-8.
    """
    if isinstance(payload, bytes | bytearray | memoryview):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise AdapterError(f"{what} is {len(payload)} bytes, over {MAX_PAYLOAD_BYTES}")
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AdapterError(f"{what} is not UTF-8: byte {exc.start}") from None
    if isinstance(payload, str):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise AdapterError(f"{what} is {len(payload)} characters, over {MAX_PAYLOAD_BYTES}")
        try:
            return json.loads(payload, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise AdapterError(
                f"{what} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise AdapterError(f"{what} is not JSON: {' '.join(str(exc).split())}") from None
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def fingerprint(value: Any) -> str:
    """SHA-256 hex of the canonical JSON of ``value`` (sorted keys, no spaces)."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AdapterError(f"{where} is {_kind(value)}, not an object")
    return value


def text(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise AdapterError(f"{where} is {_kind(value)}, not a non-empty string")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), "a number")


# What teams call their environments, to the model's four. A name not here is judged as
# production: the strictest reading of a name the adapter does not know.
ENVIRONMENT_NAMES = {
    "production": "production",
    "prod": "production",
    "prd": "production",
    "live": "production",
    "staging": "staging",
    "stage": "staging",
    "stg": "staging",
    "preprod": "staging",
    "pre-production": "staging",
    "uat": "staging",
    "development": "development",
    "dev": "development",
    "test": "development",
    "qa": "development",
    "sandbox": "sandbox",
    "sbx": "sandbox",
}
UNKNOWN_ENVIRONMENT = "production"


def environment_of(name: str | None, names: Mapping[str, str] | None = None) -> str:
    """The model's environment for a name a tool uses; an unknown or absent name is production."""
    if not isinstance(name, str):
        return UNKNOWN_ENVIRONMENT
    table = ENVIRONMENT_NAMES if names is None else {**ENVIRONMENT_NAMES, **names}
    return table.get(name.strip().lower(), UNKNOWN_ENVIRONMENT)


class FirstSeen:
    """When a proposal was first seen, by its fingerprint: a retry proposes the same action.

    An approval binds to the action's digest, and ``requested_at`` is part of it; a
    format that carries no time of its own (an AdmissionReview) takes the time its
    fingerprint was first seen, so the retry after an approval has the same digest.
    Bounded: past ``limit`` entries the memory starts afresh.
    """

    def __init__(self, limit: int = 10_000, clock: Callable[[], datetime] | None = None):
        self._limit = limit
        self._clock = clock or (lambda: datetime.now(UTC))
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> str:
        with self._lock:
            known = self._seen.get(key)
            if known is None:
                if len(self._seen) >= self._limit:
                    self._seen.clear()
                known = self._seen[key] = now_iso(self._clock())
            return known


def messages(records: list[dict[str, Any]]) -> list[str]:
    """The rule messages of fired or warning records, each as ``[id] message``."""
    return [f"[{r.get('id')}] {r.get('message')}" for r in records]
