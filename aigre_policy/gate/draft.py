"""A decision on its way through the gate's stages, and how a stage names a fault.

Intake builds the input document; the judge adds the usage, the pack's verdict,
the approvals held and the shadow pack's view; conclude turns the draft into the
``GateVerdict`` the caller receives; the recorder keeps it. A fault is a verdict
problem whose ``path`` names the gate component that failed (``gate.ledger``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from aigre_policy.gate.approvals import Held, Resolution
from aigre_policy.gate.ledger import ChangedRow, Contribution, LedgerError
from aigre_policy.gate.log import LogError
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.verdict import Verdict


def fault(component: str, message: str) -> dict[str, Any]:
    """A fault as a verdict problem: ``path`` names the gate component that failed."""
    return {"kind": "engine", "path": f"gate.{component}", "message": message}


def described(exc: BaseException) -> str:
    """The storage's own message (it names the file), else the exception's type and text."""
    return str(exc) if isinstance(exc, LedgerError | LogError) else f"{type(exc).__name__}: {exc}"


def plain(value: Any) -> Any:
    """A model as its JSON data; anything else as given."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def nothing_used(verdict: GateVerdict) -> None:
    """The transaction that used approvals did not stand: the verdict claims no use."""
    approvals = verdict.gate.get("approvals")
    if isinstance(approvals, dict):
        approvals.pop("used", None)


@dataclass
class Draft:
    """A decision on its way through the gate, before it is recorded."""

    started: int
    now: datetime
    document: dict[str, Any]
    action_digest: str
    base: Verdict | None  # None: a fault stopped the gate before the pack judged
    recordable: bool  # the input was valid: the ledger may keep it
    resolution: Resolution | None = None
    shadow: dict[str, Any] | None = None
    shadow_verdict: Verdict | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)
    action_json: str = ""  # the canonical JSON the digest was taken of, kept in the ledger
    actor: dict[str, Any] | None = None  # the attested actor, None without an identity source
    held: Held = field(default_factory=Held)  # the approvals that count for this action
    consume: bool = False  # enforced: an allow uses up the approvals it rests on
    at_us: int = 0  # the decision's time in the ledger, read under the write lock
    context_notes: list[Any] = field(default_factory=list)  # how context sources answered
    requested_by: str | None = None  # who asked for the check (a server's caller), if known


@dataclass(frozen=True, slots=True)
class Written:
    """The ledger row a decision's transaction wrote, for the calculators once it commits."""

    row: ChangedRow
    seq: int
    contributions: dict[str, Contribution]
