"""Published data models: the proposed action, its context, and the verdict document."""

from aigre_policy.models.action import (
    Actor,
    BlastRadius,
    Change,
    ChangeFreeze,
    Context,
    Cost,
    DataTouched,
    Incident,
    Justification,
    PriorApproval,
    ProposedAction,
    Rollback,
)

__all__ = [
    "Actor",
    "BlastRadius",
    "Change",
    "ChangeFreeze",
    "Context",
    "Cost",
    "DataTouched",
    "Incident",
    "Justification",
    "PriorApproval",
    "ProposedAction",
    "Rollback",
]
