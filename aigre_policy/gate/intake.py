"""The first stage of a check: the input document, and the actor the gate attests.

The proposal is a claim. ``context.now`` comes from the gate's clock and
``context.actor`` from its identity source, never from the proposal or the context
provider; a fault here (an action that is not JSON data, a provider or an identity
source that fails) stops the check before the pack judges, so it fails closed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel

from aigre_policy.gate.clock import iso
from aigre_policy.gate.draft import described, fault, plain
from aigre_policy.gate.providers import Provided
from aigre_policy.gate.world import ContextProvider
from aigre_policy.pack import Pack
from aigre_policy.plain import as_plain
from aigre_policy.schema_types import input_type
from aigre_policy.verdict import canonical_json, refused_input_digest

# what the gate attests in ``context`` from its own sources, overwriting any other say
ATTESTED = ("actor", "approvals")

Identity = Mapping[str, Any] | BaseModel | Callable[[Mapping[str, Any]], Any]
"""The authenticated actor: a mapping or model, or a callable ``(action) -> actor``."""


def attested_fields(pack: Pack) -> frozenset[str]:
    """The attested ``context`` fields the pack's input schema declares: only those can be
    given to it (an undeclared one would break a closed schema, and no rule can read it)."""
    try:
        context = input_type(pack.input_schema).fields.get("context")
        fields = getattr(getattr(context, "type", None), "fields", None) or {}
    except Exception:  # an unreadable schema: give nothing, the pack reads nothing
        return frozenset()
    return frozenset(name for name in ATTESTED if name in fields)


def _is_source(identity: Any) -> bool:
    """A callable identity source, as opposed to an actor given as a mapping or model."""
    return callable(identity) and not isinstance(identity, Mapping | BaseModel)


@dataclass(frozen=True, slots=True)
class Prepared:
    """The input document before usage, the action's canonical JSON and digest, the faults."""

    document: dict[str, Any]
    action_json: str
    action_digest: str
    faults: list[dict[str, Any]]
    notes: list[Any] = field(default_factory=list)  # how the context's sources answered


@dataclass(frozen=True, slots=True)
class Intake:
    """Builds the input document from the proposal, the context provider and the clock."""

    context: ContextProvider | None
    identity: Identity | None
    attests: frozenset[str]  # the attested fields the pack's schema declares

    def prepare(self, action: Any, now: datetime) -> Prepared:
        """The input document, the action's canonical JSON and digest, or the faults that
        stop evaluation."""
        faults: list[dict[str, Any]] = []
        action_doc = action
        action_json = ""
        try:
            action_doc = as_plain(plain(action), "action")  # the JSON data the pack judges
            canonical = canonical_json(action_doc)
            action_json = canonical.decode()
            action_digest = "sha256:" + hashlib.sha256(canonical).hexdigest()  # as digest()
        except Exception as exc:  # a caller's object may raise anything when read
            action_digest = refused_input_digest(action_doc)
            faults.append(fault("input", f"the action is not JSON data: {exc}"))
        notes: list[Any] = []
        context = self._context(action_doc, now, faults, notes)
        document = {"action": action_doc, "context": context, "usage": {}}
        return Prepared(document, action_json, action_digest, faults, notes)

    def _context(
        self, action_doc: Any, now: datetime, faults: list[dict[str, Any]], notes: list[Any]
    ) -> dict[str, Any]:
        context: dict[str, Any] = {}
        try:
            if self.context is not None:
                provided = plain(self.context(action_doc, now))
                if isinstance(provided, Provided):  # fields, and how their sources answered
                    notes += as_plain(list(provided.notes), "context notes")
                    provided = provided.context
                if not isinstance(provided, Mapping):
                    raise TypeError(f"the context provider returned {type(provided).__name__}")
                # what the gate attests comes from its own sources, never the provider
                provided = as_plain(provided, "context")
                context = {k: v for k, v in provided.items() if k not in ATTESTED}
            context["now"] = iso(now)
        except Exception as exc:
            faults.append(fault("context", f"the context provider failed: {described(exc)}"))
        return context

    def attest_actor(
        self, document: dict[str, Any], actor: Any, faults: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """``context.actor`` from the call's ``actor`` or the gate's identity source.

        ``None`` when there is none: the pack then sees no ``context.actor`` and must
        treat the actor as the least trusted. A source that fails or gives something
        that is not a mapping is a fault, so the check fails closed.
        """
        try:
            source = actor if actor is not None else self.identity
            if source is None:
                return None
            if _is_source(source):
                source = cast(Callable, source)(document["action"])
            value = plain(source)
            if not isinstance(value, Mapping):
                raise TypeError(f"the actor is a {type(value).__name__}, not a mapping")
            attested = dict(as_plain(value, "context.actor"))
        except Exception as exc:
            faults.append(fault("identity", f"the identity source failed: {described(exc)}"))
            return None
        if "actor" in self.attests:
            document["context"]["actor"] = attested
        return attested
