"""Pluggable sources of the world an action lands in: context and group membership."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel


class ContextProvider(Protocol):
    """Supplies ``context`` for an action: freezes, error budget, incidents.

    The gate sets ``context.now`` itself from its clock; a provider's ``now`` is replaced.
    """

    def __call__(self, action: Mapping[str, Any], now: datetime) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class StaticContext:
    """The same freezes, error budget, incidents and firing alerts for every action."""

    change_freezes: tuple[Mapping[str, Any], ...] = ()
    error_budget_remaining: float | None = None
    incidents_open: tuple[Mapping[str, Any], ...] = ()
    alerts_firing: tuple[Mapping[str, Any], ...] = ()  # left out when none: older schemas

    def __call__(self, action: Mapping[str, Any], now: datetime) -> Mapping[str, Any]:
        context: dict[str, Any] = {
            "change_freezes": [_plain(f) for f in self.change_freezes],
            "incidents_open": [_plain(i) for i in self.incidents_open],
        }
        if self.error_budget_remaining is not None:
            context["error_budget_remaining"] = self.error_budget_remaining
        if self.alerts_firing:
            context["alerts_firing"] = [_plain(a) for a in self.alerts_firing]
        return context


class Directory(Protocol):
    """Answers whether a person belongs to an approver group."""

    def is_member(self, person: str, group: str) -> bool: ...


@dataclass(frozen=True)
class StaticDirectory:
    """Group membership from a mapping: ``StaticDirectory({"sre-oncall": ["ana", "li"]})``."""

    groups: Mapping[str, Iterable[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        frozen = {group: frozenset(people) for group, people in self.groups.items()}
        object.__setattr__(self, "groups", frozen)

    def is_member(self, person: str, group: str) -> bool:
        return person in self.groups.get(group, frozenset())


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return dict(value)
