"""The verdict an evaluation returns: a small, fast object with a stable JSON form.

Its dict form is the published verdict document (``docs/schemas/verdict.schema.json``,
defined by ``models.verdict.VerdictDocument``). The decision id and the input
digest are computed on first use, so a caller that only reads the decision on
the hot path does not pay for them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

LATTICE = {"allow": 0, "escalate": 1, "require_approval": 2, "deny": 3}


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the form digests are taken of."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


class Verdict:
    __slots__ = (
        "_decision_id",
        "_input",
        "_input_digest",
        "approvers",
        "decision",
        "default_applied",
        "elapsed_us",
        "errors",
        "escalate_to",
        "fail_closed",
        "fired",
        "pack",
        "warnings",
    )

    def __init__(
        self,
        decision: str,
        fired: list[dict[str, Any]],
        warnings: list[dict[str, Any]],
        pack: dict[str, str],
        input_document: Any,
        *,
        fail_closed: bool = False,
        default_applied: bool = False,
        errors: list[dict[str, Any]] | None = None,
        elapsed_us: float = 0.0,
    ):
        self.decision = decision
        self.fired = fired
        self.warnings = warnings
        self.pack = pack
        self.fail_closed = fail_closed
        self.default_applied = default_applied
        self.errors = errors or []
        self.elapsed_us = elapsed_us
        self.approvers = (
            sorted({g for f in fired if f["verdict"] == "require_approval" for g in f["approvers"]})
            if decision == "require_approval"
            else []
        )
        self.escalate_to = (
            list(
                dict.fromkeys(
                    t for f in fired if f["verdict"] == "escalate" for t in f["escalate_to"]
                )
            )
            if decision == "escalate"
            else []
        )
        self._input = input_document
        self._input_digest: str | None = None
        self._decision_id: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def decision_id(self) -> str:
        if self._decision_id is None:
            self._decision_id = str(uuid.uuid4())
        return self._decision_id

    @property
    def input_digest(self) -> str:
        if self._input_digest is None:
            try:
                self._input_digest = digest(self._input)
            except (TypeError, ValueError):
                self._input_digest = digest(repr(self._input))
        return self._input_digest

    @property
    def rule_ids(self) -> list[str]:
        return [f["id"] for f in self.fired]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "fail_closed": self.fail_closed,
            "default_applied": self.default_applied,
            "fired": self.fired,
            "warnings": self.warnings,
            "approvers": self.approvers,
            "escalate_to": self.escalate_to,
            "errors": self.errors,
            "pack": self.pack,
            "decision_id": self.decision_id,
            "input_digest": self.input_digest,
            "elapsed_us": round(self.elapsed_us, 3),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def __repr__(self) -> str:
        return f"Verdict({self.decision!r}, fired={self.rule_ids!r})"
