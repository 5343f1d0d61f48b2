"""What the ``mcp-proxy`` and ``mcp-approve`` commands build: the gate, the mapping, the
identity, and an approval recorded out of band for a held call.

Kept apart from the SDK: ``approve_logged`` and ``ProxyOptions`` need no ``mcp``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigre_policy.gate.approvals import Approval
from aigre_policy.gate.errors import GateError
from aigre_policy.gate.gate import Gate
from aigre_policy.gate.log import read_log
from aigre_policy.gate.world import StaticDirectory
from aigre_policy.mcp.mapping import FILE_NAME, ToolMapping, load_mapping
from aigre_policy.yamlio import read_document


@dataclass(frozen=True)
class ProxyOptions:
    """How a proxy (or an approval for one) is set up; mirrors the command's options."""

    pack: str
    mapping: str | None = None  # default: the pack's mcp.yaml
    ledger: str | None = None
    log: str | None = None
    actor: Mapping[str, Any] | None = None  # the identity every call is attested as
    directory: str | None = None  # YAML: {group: [members]}
    approver: tuple[str, str] | None = None  # (person, group) answering elicitation
    sampling_judge: str | None = None  # the escalation tier the client's model serves
    reviewers: Sequence[Any] = field(default=())

    def mapping_path(self) -> Path:
        return Path(self.mapping) if self.mapping else Path(self.pack) / FILE_NAME


def read_directory(path: str | None) -> StaticDirectory | None:
    """Approver groups from a YAML or JSON file ``{group: [person, ...]}``."""
    if path is None:
        return None
    doc, problems = read_document(Path(path))
    if doc is None:
        raise GateError(problems[0].message)
    data = doc.data
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(m, str) for m in v)
        for k, v in data.items()
    ):
        raise GateError(f"{path}: a directory maps each group to a list of people")
    return StaticDirectory(data)


def build_gate(options: ProxyOptions, reviewers: Sequence[Any] = ()) -> tuple[Gate, ToolMapping]:
    """The gate and the checked mapping; raises ``CompileError`` or ``GateError``."""
    gate = Gate.from_pack(
        options.pack,
        ledger=options.ledger,
        log=options.log,
        directory=read_directory(options.directory),
        identity=dict(options.actor) if options.actor is not None else None,
        reviewers=[*options.reviewers, *reviewers],
    )
    try:
        mapping = load_mapping(options.mapping_path(), gate.pack.input_schema)
    except BaseException:
        gate.close()
        raise
    return gate, mapping


def approve_logged(
    options: ProxyOptions, decision_id: str, *, by: str, group: str, note: str = ""
) -> Approval:
    """Approve the call a logged ``require_approval`` decision held.

    The decision's entry in the log gives the action and the actor it was attested
    as; the action is judged again (so the log shows what was approved, and the
    approval's checks run against the rules that fire now), then approved.
    Raises ``GateError`` (or ``ApprovalRejected``) with the reason.
    """
    if not options.log:
        raise GateError("approving needs the decision log the proxy writes (--log)")
    found = None
    for entry in read_log(options.log):
        verdict = entry.body.get("verdict") if entry.kind == "decision" else None
        if isinstance(verdict, dict) and verdict.get("decision_id") == decision_id:
            found = entry.body
    if found is None:
        raise GateError(f"no decision {decision_id} in {options.log}")
    if found["verdict"].get("decision") != "require_approval":
        raise GateError(
            f"decision {decision_id} was {found['verdict'].get('decision')}, "
            "not require_approval: there is nothing to approve"
        )
    action = found["input"]["action"]
    actor = found["input"].get("context", {}).get("actor")
    gate = Gate.from_pack(
        options.pack,
        ledger=options.ledger,
        log=options.log,
        directory=read_directory(options.directory),
    )
    with gate:
        verdict = gate.check(action, actor=actor)
        if verdict.action_digest != found["verdict"].get("gate", {}).get("action_digest"):
            raise GateError("the logged action no longer has the digest it was held under")
        if verdict.decision != "require_approval":
            raise GateError(f"the action is now {verdict.decision}: there is nothing to approve")
        return gate.approve(verdict, by=by, group=group, note=note)
