"""Published data models: the proposed action, its context, and the verdict document."""

from aigre_policy.models.action import (
    Actor,
    Alert,
    AttestedActor,
    BlastRadius,
    Change,
    ChangeFreeze,
    Context,
    Cost,
    DataTouched,
    HeldApproval,
    Incident,
    Justification,
    PriorApproval,
    ProposedAction,
    Rollback,
)

__all__ = [
    "Actor",
    "Alert",
    "AttestedActor",
    "BlastRadius",
    "Change",
    "ChangeFreeze",
    "Context",
    "Cost",
    "DataTouched",
    "HeldApproval",
    "Incident",
    "Justification",
    "PriorApproval",
    "ProposedAction",
    "Rollback",
]
