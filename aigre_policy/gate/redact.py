"""Masking and dropping the input fields a pack marks sensitive, before they are logged.

A pack's ``sensitive:`` section maps input paths to ``mask`` or ``drop``::

    sensitive:
      action.data.subject_regions: mask
      action.justification.summary: drop

A path names fields from the input root (``action``, ``context``, ``usage``);
lists met on the way are walked into, so ``action.approvals.by`` reaches the
``by`` of every approval. ``drop`` removes the field; ``mask`` replaces its value
with a keyed hash (``hmac-sha256:<hex>`` of the value's canonical JSON, when the
log has a key) or with the fixed ``"<masked>"``. The verdict's evidence is
redacted with it: bindings at or under a sensitive path are masked or dropped,
and a fired rule that read one loses its interpolated message (the title
stands in) and the values of its comparisons. The body records what was
redacted in ``redacted: {path: action}``, so replay and audits see it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aigre_policy.verdict import canonical_json

ACTIONS = ("mask", "drop")
FIXED_MASK = "<masked>"
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class Redactor:
    """Applies a pack's ``sensitive`` paths to decision bodies; empty means no change."""

    paths: tuple[tuple[str, str], ...] = ()
    key: bytes | None = None

    @classmethod
    def from_spec(
        cls, sensitive: Mapping[str, str] | None, key: bytes | str | None = None
    ) -> Redactor:
        spec = dict(sensitive or {})
        for path, action in spec.items():
            if action not in ACTIONS:
                raise ValueError(f"sensitive path `{path}`: expected mask or drop, not {action!r}")
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"sensitive path `{path}` is not a dotted field path")
        raw_key = key.encode() if isinstance(key, str) else key
        return cls(tuple(sorted(spec.items())), raw_key)

    def mask_value(self, value: Any) -> str:
        if self.key is None:
            return FIXED_MASK
        try:
            data = canonical_json(value)
        except (TypeError, ValueError):
            data = repr(value).encode()
        return "hmac-sha256:" + hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of a decision body with its input and evidence redacted."""
        if not self.paths:
            return body
        result = dict(body)
        redacted: dict[str, str] = {}
        document = body.get("input")
        if isinstance(document, dict):
            for path, action in self.paths:
                document, hit = self._redact(document, path.split("."), action)
                if hit:
                    redacted[path] = action
            result["input"] = document
        verdict = body.get("verdict")
        if isinstance(verdict, dict):
            result["verdict"] = self._redact_verdict(verdict, redacted)
        if redacted:
            result["redacted"] = dict(sorted(redacted.items()))
        return result

    def _redact(self, node: Any, parts: list[str], action: str) -> tuple[Any, bool]:
        """Copy-on-write walk: returns the new node and whether anything was redacted."""
        if isinstance(node, list):
            hit = False
            items = []
            for item in node:
                new, found = self._redact(item, parts, action)
                items.append(new)
                hit = hit or found
            return (items, True) if hit else (node, False)
        if not isinstance(node, dict) or parts[0] not in node:
            return node, False
        head, rest = parts[0], parts[1:]
        copy = dict(node)
        if not rest:
            if action == "drop":
                del copy[head]
            else:
                copy[head] = self.mask_value(node[head])
            return copy, True
        new, hit = self._redact(node[head], rest, action)
        if not hit:
            return node, False
        copy[head] = new
        return copy, True

    def _owner(self, dotted: str) -> tuple[str, str] | None:
        """The sensitive path (and its action) at, under or above a binding or error path."""
        bare = dotted.replace("[", ".").replace("]", "")
        bare = ".".join(p for p in bare.split(".") if p and not p.isdigit())
        for path, action in self.paths:
            if bare == path or bare.startswith(path + ".") or path.startswith(bare + "."):
                return path, action
        return None

    def _redact_verdict(self, verdict: dict[str, Any], redacted: dict[str, str]) -> dict[str, Any]:
        result = dict(verdict)
        for key in ("fired", "warnings"):
            records = verdict.get(key)
            if isinstance(records, list):
                result[key] = [self._redact_record(r, redacted) for r in records]
        errors = verdict.get("errors")
        if isinstance(errors, list):
            result["errors"] = [self._redact_error(e, redacted) for e in errors]
        return result

    def _redact_record(self, record: Any, redacted: dict[str, str]) -> Any:
        if not isinstance(record, dict) or not isinstance(record.get("bindings"), dict):
            return record
        bindings: dict[str, Any] = {}
        touched = False
        for name, value in record["bindings"].items():
            owner = self._owner(name)
            if owner is None:
                bindings[name] = value
                continue
            touched = True
            redacted.setdefault(*owner)
            if owner[1] == "mask":
                bindings[name] = self.mask_value(value)
        if not touched:
            return record
        copy = dict(record)
        copy["bindings"] = bindings
        # the message and comparisons may quote what the rule read
        copy["message"] = record.get("title") or f"rule {record.get('id', '?')} fired"
        copy["comparisons"] = [
            {**c, "left": FIXED_MASK, "right": FIXED_MASK} if isinstance(c, dict) else c
            for c in record.get("comparisons", [])
        ]
        copy["redacted"] = True
        return copy

    def _redact_error(self, problem: Any, redacted: dict[str, str]) -> Any:
        if not isinstance(problem, dict) or not isinstance(problem.get("path"), str):
            return problem
        owner = self._owner(problem["path"])
        if owner is None:
            return problem
        redacted.setdefault(*owner)
        return {**problem, "message": f"the value at {problem['path']} breaks the schema"}
