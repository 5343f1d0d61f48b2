"""Escalation: reviewer tiers the embedding tool plugs in, asked one after another.

A reviewer answers ``allow`` or ``deny`` to settle the case, or ``escalate`` to
pass it to the next tier. Tiers are asked in the order the fired rules name them
(``escalate to ["llm-judge", "sre-oncall"]``), or in the gate's order when the
rules name none. Each answer, its reason, latency and cost go into the verdict's
evidence and the log. Reviewers only see ``escalate`` decisions, so none can
loosen a ``deny``; a reviewer that fails is recorded and the next tier asked.

``ask_tiers`` is the one escalation core: it yields an ``Ask`` for each reviewer
call and returns the ``Escalation``. ``run`` drives it (and the whole check built
around it) from plain code, ``arun`` from ``async`` code; only the reviewer call,
and where storage runs, differ between the two.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Literal, Protocol, TypeVar, cast

ANSWERS = ("allow", "deny", "escalate")
REVIEWER_KINDS = ("human", "llm", "automation")

T = TypeVar("T")


@dataclass(frozen=True)
class ReviewRequest:
    """What a reviewer sees: the proposed action, its context and usage, and the evidence."""

    tier: str
    action: Mapping[str, Any]
    context: Mapping[str, Any]
    usage: Mapping[str, Any]
    fired: Sequence[Mapping[str, Any]]
    earlier: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class ReviewAnswer:
    """A tier's answer: ``allow``/``deny`` settle, ``escalate`` passes the case on."""

    decision: Literal["allow", "deny", "escalate"]
    reason: str = ""
    cost_usd: float = 0.0


class Reviewer(Protocol):
    """One reviewer tier: ``review`` (or an ``async`` ``review``) returns a ``ReviewAnswer``."""

    tier: str
    kind: str  # human, llm or automation
    id: str

    def review(self, request: ReviewRequest) -> ReviewAnswer | Awaitable[ReviewAnswer]: ...


@dataclass(frozen=True)
class FunctionReviewer:
    """A reviewer from a plain function (sync or ``async``) of a ``ReviewRequest``."""

    tier: str
    function: Callable[[ReviewRequest], Any]
    kind: str = "automation"
    id: str = field(default="")

    def __post_init__(self) -> None:
        if self.kind not in REVIEWER_KINDS:
            raise ValueError(f"reviewer kind must be one of {REVIEWER_KINDS}, not {self.kind!r}")
        if not self.id:
            object.__setattr__(self, "id", getattr(self.function, "__name__", self.tier))

    def review(self, request: ReviewRequest) -> Any:
        return self.function(request)


@dataclass(frozen=True)
class Escalation:
    """The outcome of asking the tiers: the settled decision (or ``None``) and each review."""

    decision: str | None
    reviews: tuple[dict[str, Any], ...]
    faults: tuple[str, ...]


def tiers_for(reviewers: Sequence[Reviewer], named: Sequence[str]) -> list[tuple[str, Any]]:
    """``(tier, reviewer or None)`` in asking order; ``None`` for a named tier nobody serves."""
    if not named:
        return [(r.tier, r) for r in reviewers]
    order: list[tuple[str, Any]] = []
    for tier in named:
        serving = [r for r in reviewers if r.tier == tier]
        order.extend((tier, r) for r in serving) if serving else order.append((tier, None))
    return order


@dataclass(frozen=True, slots=True)
class Ask:
    """A step of a check asks its driver to put ``request`` to ``reviewer``."""

    reviewer: Any
    request: ReviewRequest


@dataclass(frozen=True, slots=True)
class _Done:
    value: Any


Steps = Generator[Ask, Any, T]
"""A computation that yields an ``Ask`` for each reviewer call and returns its result."""


def ask_tiers(order: list[tuple[str, Any]], request: ReviewRequest) -> Steps[Escalation]:
    """Ask each tier in turn; a reviewer's answer, or its failure, comes from the driver."""
    reviews: list[dict[str, Any]] = []
    for tier, reviewer in order:
        started = perf_counter_ns()
        try:
            answer = None
            if reviewer is not None:
                answer = yield Ask(reviewer, _for_tier(request, tier, reviews))
            review = _review(tier, reviewer, answer, started)
        except Exception as exc:
            review = _failed(tier, reviewer, exc, started)
        reviews.append(review)
        if review.get("decision") in ("allow", "deny") and "error" not in review:
            return Escalation(review["decision"], tuple(reviews), _faults(reviews))
    return Escalation(None, tuple(reviews), _faults(reviews))


def run(steps: Steps[T]) -> T:
    """Drive ``steps`` synchronously: each reviewer is called in this thread."""
    step = _advance(steps, None, None)
    while isinstance(step, Ask):
        try:
            answer, failure = _call_sync(step.reviewer, step.request), None
        except Exception as exc:
            answer, failure = None, exc
        step = _advance(steps, answer, failure)
    return cast(T, step.value)


async def arun(steps: Steps[T]) -> T:
    """Drive ``steps`` from ``async`` code: the steps themselves (storage) run in a thread,
    ``async`` reviewers are awaited and sync ones run in a thread."""
    step = await asyncio.to_thread(_advance, steps, None, None)
    while isinstance(step, Ask):
        try:
            answer, failure = await _call_async(step.reviewer, step.request), None
        except Exception as exc:
            answer, failure = None, exc
        step = await asyncio.to_thread(_advance, steps, answer, failure)
    return cast(T, step.value)


def _advance(steps: Steps[Any], answer: Any, failure: Exception | None) -> Ask | _Done:
    """Resume ``steps`` with a reviewer's answer (or its failure) up to the next ``Ask``."""
    try:
        return steps.throw(failure) if failure is not None else steps.send(answer)
    except StopIteration as stop:  # never let it cross a Future: wrap the result
        return _Done(stop.value)


def _for_tier(request: ReviewRequest, tier: str, earlier: list[dict[str, Any]]) -> ReviewRequest:
    return ReviewRequest(
        tier, request.action, request.context, request.usage, request.fired, tuple(earlier)
    )


def _call_sync(reviewer: Any, request: ReviewRequest) -> Any:
    answer = reviewer.review(request)
    if inspect.isawaitable(answer):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_await(answer))
        close = getattr(answer, "close", None)
        if close:
            close()
        raise RuntimeError("an async reviewer inside a running event loop: use `acheck`")
    return answer


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _call_async(reviewer: Any, request: ReviewRequest) -> Any:
    if inspect.iscoroutinefunction(reviewer.review):
        return await reviewer.review(request)
    answer = await asyncio.to_thread(reviewer.review, request)
    return await answer if inspect.isawaitable(answer) else answer


def _identity(tier: str, reviewer: Any) -> dict[str, Any]:
    if reviewer is None:
        return {"kind": "automation", "id": "none"}
    kind = getattr(reviewer, "kind", "automation")
    return {
        "kind": kind if kind in REVIEWER_KINDS else "automation",
        "id": str(getattr(reviewer, "id", "") or tier),
    }


def _review(tier: str, reviewer: Any, answer: Any, started: int) -> dict[str, Any]:
    latency = (perf_counter_ns() - started) / 1000
    if reviewer is None:
        return {
            "tier": tier,
            "reviewer": _identity(tier, None),
            "decision": "escalate",
            "reason": f"no reviewer serves tier `{tier}`",
            "latency_us": round(latency, 3),
            "cost_usd": 0.0,
        }
    if not isinstance(answer, ReviewAnswer) or answer.decision not in ANSWERS:
        raise TypeError(f"expected a ReviewAnswer of {', '.join(ANSWERS)}, got {answer!r}")
    cost = answer.cost_usd
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not cost >= 0:
        raise ValueError(f"review cost must be a number >= 0, got {cost!r}")
    return {
        "tier": tier,
        "reviewer": _identity(tier, reviewer),
        "decision": answer.decision,
        "reason": str(answer.reason),
        "latency_us": round(latency, 3),
        "cost_usd": float(cost),
    }


def _failed(tier: str, reviewer: Any, exc: Exception, started: int) -> dict[str, Any]:
    return {
        "tier": tier,
        "reviewer": _identity(tier, reviewer),
        "decision": "escalate",
        "reason": "",
        "error": f"{type(exc).__name__}: {exc}",
        "latency_us": round((perf_counter_ns() - started) / 1000, 3),
        "cost_usd": 0.0,
    }


def _faults(reviews: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(f"reviewer tier `{r['tier']}`: {r['error']}" for r in reviews if "error" in r)
