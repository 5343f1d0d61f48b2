"""The gate's verdict: the pack's verdict, settled by approvals, reviewers and faults.

A ``GateVerdict`` reads like a ``Verdict`` (the same attributes and document) but
its decision may differ from the pack's: approvals can resolve
``require_approval``, reviewers can settle ``escalate``, and a fault anywhere
fails it closed. It wraps the pack's verdict (``pack_verdict``; ``None`` when
the gate failed before the pack could judge) and adds ``gate``, the evidence
for what the gate did: the pack's own decision, the action digest approvals
bind to, the usage values read from the ledger, the approvals counted, each
reviewer's answer and the shadow pack's view. ``to_dict`` is the published
verdict document plus a ``gate`` object.
"""

from __future__ import annotations

import json
from typing import Any

from aigre_policy.verdict import Verdict, fresh, refused_input_digest, verdict_document
from aigre_policy.verdict import new_decision_id as _uuid4


class GateVerdict:
    __slots__ = (
        "_decision_id",
        "_input",
        "_input_digest",
        "action_digest",
        "approvers",
        "decision",
        "default_applied",
        "elapsed_us",
        "errors",
        "escalate_to",
        "fail_closed",
        "gate",
        "pack",
        "pack_verdict",
    )

    def __init__(
        self,
        pack_verdict: Verdict | None,
        decision: str,
        *,
        pack: dict[str, str],
        input_document: dict[str, Any],
        action_digest: str,
        gate: dict[str, Any],
        fail_closed: bool,
        errors: list[dict[str, Any]],
        elapsed_us: float,
        approvers: list[str] | None = None,
    ):
        self.pack_verdict = pack_verdict
        self.decision = decision
        self.pack = {**pack}  # the gate's reference is shared by all its verdicts
        self.fail_closed = fail_closed
        self.errors = errors
        self.elapsed_us = elapsed_us
        self.action_digest = action_digest
        self.gate = gate
        self._input = input_document
        self._input_digest: str | None = None
        self._decision_id: str | None = None
        same = pack_verdict is not None and pack_verdict.decision == decision
        self.default_applied = same and pack_verdict.default_applied  # type: ignore[union-attr]
        if approvers is not None:
            self.approvers = list(approvers)
        else:
            self.approvers = [*pack_verdict.approvers] if same else []  # type: ignore[union-attr]
        self.escalate_to = (
            [*pack_verdict.escalate_to]  # type: ignore[union-attr]
            if same and decision == "escalate"
            else []
        )

    @classmethod
    def recorded(
        cls, decision_id: str, pack_verdict: Verdict | None, decision: str, **fields: Any
    ) -> GateVerdict:
        """A verdict read back from the gate's own record of it (a held decision), its
        decision id the recorded one; ``fields`` as the constructor takes them."""
        verdict = cls(pack_verdict, decision, **fields)
        verdict._decision_id = decision_id
        return verdict

    @property
    def fired(self) -> list[dict[str, Any]]:
        return self.pack_verdict.fired if self.pack_verdict is not None else []

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return self.pack_verdict.warnings if self.pack_verdict is not None else []

    @property
    def exempted(self) -> list[dict[str, Any]]:
        """The exemptions that kept the pack's rules from firing (``Verdict.exempted``)."""
        return self.pack_verdict.exempted if self.pack_verdict is not None else []

    @property
    def rule_ids(self) -> list[str]:
        return self.pack_verdict.rule_ids if self.pack_verdict is not None else []

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def decision_id(self) -> str:
        if self._decision_id is None:
            self._decision_id = _uuid4()
        return self._decision_id

    @property
    def input_digest(self) -> str:
        if self._input_digest is not None:
            return self._input_digest
        if self.pack_verdict is not None:
            return self.pack_verdict.input_digest
        return refused_input_digest(self._input)  # never raises, whatever the caller passed

    def digested(self, input_digest: str) -> None:
        """Take the input's digest from whoever already encoded the input (the recorder):
        the digest of ``canonical_json(self.input)``, as ``input_digest`` would compute."""
        self._input_digest = input_digest

    @property
    def action(self) -> Any:
        """The proposed action as judged (plain JSON data)."""
        return self._input.get("action")

    @property
    def input(self) -> dict[str, Any]:
        """``{"action", "context", "usage"}`` as evaluated."""
        return self._input

    @property
    def pack_decision(self) -> str:
        return self.gate.get("pack_decision", self.decision)

    @property
    def reviews(self) -> list[dict[str, Any]]:
        return self.gate.get("reviews", [])

    @property
    def usage(self) -> dict[str, Any]:
        return self.gate.get("usage", {})

    def to_dict(self) -> dict[str, Any]:
        return {**verdict_document(self), "gate": fresh(self.gate)}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def __repr__(self) -> str:
        return f"GateVerdict({self.decision!r}, fired={self.rule_ids!r})"
