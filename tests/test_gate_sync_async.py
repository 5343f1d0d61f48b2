"""``check`` and ``acheck``, ``enforce`` and ``aenforce``, sync and async ``guard``: one core.

Each case runs the same proposal through a fresh gate from plain code and from ``async``
code; the verdicts (but for ids and timings), the log entries and the outcomes agree.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aigre_policy.gate import (
    ApprovalRequired,
    Denied,
    FakeClock,
    FunctionReviewer,
    Gate,
    ReviewAnswer,
    StaticDirectory,
)
from aigre_policy.gate.log import read_log

POLICIES = """
usage spend_day = sum(action.cost.estimated_usd) over calendar_day where decision != "deny"

rule costly {
  require_approval by ["finops"] when action.cost.estimated_usd > 100
}
rule no-grants {
  deny when action.kind == "iam_grant"
}
rule big-patch {
  escalate to ["llm-judge", "sre-oncall"] when action.change.lines > 400
}
rule unserved {
  escalate to ["nobody-here"] when action.change.lines == 7
}
rule budget {
  deny when usage.spend_day + action.cost.estimated_usd > 1000
}
"""

DIRECTORY = StaticDirectory({"finops": ["fay"], "sre-oncall": ["sam"]})


@pytest.fixture
def act(make_action):
    """``act(n, **overrides)``: the conftest's valid action, as a small infra change."""

    def build(n: int = 1, **overrides: Any) -> dict[str, Any]:
        return make_action(
            **{"id": f"act-{n}", "kind": "scale", "change": {"type": "infra", "lines": 10}}
            | overrides
        )

    return build


def answer(decision: str):
    return lambda request: ReviewAnswer(decision, f"{request.tier} says {decision}")


def answer_later(decision: str):
    async def review(request):
        await asyncio.sleep(0)
        return ReviewAnswer(decision, f"{request.tier} says {decision} later")

    return review


def fail(request):
    raise RuntimeError("the judge is down")


def nonsense(request):
    return "yes"


PATCH = {"change": {"type": "code", "lines": 900}}
CASES = {
    "a sync reviewer settles": ([("llm-judge", answer("allow"))], PATCH),
    "an async reviewer settles": ([("llm-judge", answer_later("deny"))], PATCH),
    "a failing tier, then the next": (
        [("llm-judge", fail), ("sre-oncall", answer_later("allow"))],
        PATCH,
    ),
    "an answer that is no answer": ([("llm-judge", nonsense)], PATCH),
    "every tier passes it on": (
        [("llm-judge", answer("escalate")), ("sre-oncall", answer("escalate"))],
        PATCH,
    ),
    "no reviewers at all": ([], PATCH),
    "a tier nobody serves": (
        [("llm-judge", answer("allow"))],
        {"change": {"type": "infra", "lines": 7}},
    ),
    "a deny asks nobody": ([("llm-judge", fail)], {"kind": "iam_grant"}),
    "an approval pending": ([("llm-judge", fail)], {"cost": {"estimated_usd": 500}}),
    "an action that is not JSON": ([], {"cost": {"estimated_usd": {1, 2}}}),
}


def make_gate(pack_dir: Path, root: Path, tiers: list[tuple[str, Any]], **options: Any) -> Gate:
    root.mkdir()
    return Gate.from_pack(
        pack_dir,
        ledger=f"sqlite:///{root / 'ledger.db'}",
        log=root / "decisions.jsonl",
        clock=FakeClock("2026-11-20T10:01:00Z"),
        directory=DIRECTORY,
        reviewers=[FunctionReviewer(tier, function) for tier, function in tiers],
        **options,
    )


def comparable(verdict: Any) -> dict[str, Any]:
    """The verdict document without what differs between any two runs: ids and timings."""
    document = verdict.to_dict()
    for key in ("decision_id", "elapsed_us", "timestamp", "evaluated_at"):
        document.pop(key, None)
    for review in document["gate"].get("reviews", []):
        review.pop("latency_us")
    return document


def logged(root: Path) -> list[tuple[str, Any]]:
    found = []
    for entry in read_log(root / "decisions.jsonl"):
        body = {k: v for k, v in entry.body.items() if k not in ("decision_id", "verdict")}
        body.pop("latency_us", None)
        verdict = entry.body.get("verdict")
        found.append((entry.kind, body, verdict and verdict["decision"]))
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_check_and_acheck_reach_the_same_verdict(new_pack, tmp_path, act, case) -> None:
    tiers, overrides = CASES[case]
    action = act(**overrides)
    pack_dir = new_pack(POLICIES)
    sync_gate = make_gate(pack_dir, tmp_path / "sync", tiers)
    async_gate = make_gate(pack_dir, tmp_path / "async", tiers)
    plain = [sync_gate.check(action), sync_gate.check(act(2))]

    async def both() -> list[Any]:
        return [await async_gate.acheck(action), await async_gate.acheck(act(2))]

    awaited = asyncio.run(both())
    assert [comparable(v) for v in plain] == [comparable(v) for v in awaited]
    assert logged(tmp_path / "sync") == logged(tmp_path / "async")


def test_a_reviewer_that_fails_in_both_drivers_fails_the_check_closed(
    new_pack, tmp_path, act
) -> None:
    gate = make_gate(new_pack(POLICIES), tmp_path / "g", [("llm-judge", fail)])
    plain = gate.check(act(**PATCH))
    awaited = asyncio.run(gate.acheck(act(**PATCH)))
    for verdict in (plain, awaited):
        assert verdict.decision == gate.pack.fail_closed and verdict.fail_closed
        assert verdict.errors[-1]["path"] == "gate.reviewer"
        assert "RuntimeError: the judge is down" in verdict.errors[-1]["message"]


def test_enforce_and_aenforce_record_the_same_outcomes(new_pack, tmp_path, act) -> None:
    pack_dir = new_pack(POLICIES)
    sync_gate = make_gate(pack_dir, tmp_path / "sync", [])
    async_gate = make_gate(pack_dir, tmp_path / "async", [])

    def plain() -> None:
        with sync_gate.enforce(act(1)) as run:
            run.cost_usd = 3.5
        with pytest.raises(ValueError), sync_gate.enforce(act(2)):
            raise ValueError("half done")
        with sync_gate.enforce(act(3)) as run:
            run.rolled_back("latency went up")
        with pytest.raises(Denied), sync_gate.enforce(act(4, kind="iam_grant")):
            pass

    async def awaited() -> None:
        async with async_gate.aenforce(act(1)) as run:
            run.cost_usd = 3.5
        with pytest.raises(ValueError):
            async with async_gate.aenforce(act(2)):
                raise ValueError("half done")
        async with async_gate.aenforce(act(3)) as run:
            run.rolled_back("latency went up")
        with pytest.raises(Denied):
            async with async_gate.aenforce(act(4, kind="iam_grant")):
                pass

    plain()
    asyncio.run(awaited())
    outcomes = logged(tmp_path / "sync")
    assert outcomes == logged(tmp_path / "async")
    assert [body["status"] for kind, body, _ in outcomes if kind == "outcome"] == [
        "executed",
        "failed",
        "rolled_back",
    ]
    assert {"status": "failed", "detail": "ValueError: half done"}.items() <= outcomes[3][1].items()


def test_a_guarded_async_call_repeated_after_an_approval_runs(new_pack, tmp_path, act) -> None:
    defaults = {k: v for k, v in act().items() if k not in ("id", "requested_at", "cost")}
    gate = make_gate(new_pack(POLICIES), tmp_path / "g", [], defaults=defaults)

    @gate.guard(cost=lambda usd: {"estimated_usd": usd})
    async def spend(usd: int) -> str:
        return f"spent {usd}"

    async def main() -> str:
        with pytest.raises(ApprovalRequired) as raised:
            await spend(500)
        await gate.aapprove(raised.value.verdict, by="fay", group="finops")
        ran = await spend(500)
        with pytest.raises(ApprovalRequired):  # it ran: a new call is a new action
            await spend(500)
        return ran

    assert asyncio.run(main()) == "spent 500"
