"""The gate API: check, enforce, guard (sync and async), approvals, reviewer tiers, shadow mode."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import gate_action as act

from aigre_policy import load_pack
from aigre_policy.gate import (
    ApprovalRejected,
    ApprovalRequired,
    Denied,
    Escalated,
    FakeClock,
    FunctionReviewer,
    Gate,
    GateError,
    ReviewAnswer,
    StaticContext,
    StaticDirectory,
)
from aigre_policy.gate.log import read_log, verify_log
from aigre_policy.models.verdict import VerdictDocument

POLICIES = """
usage spend_day = sum(action.cost.estimated_usd) over calendar_day where decision != "deny"

rule costly {
  require_approval by ["finops"] when action.cost.estimated_usd > 100
}
rule deletion {
  require_approval by ["sre-oncall", "dba"] when action.kind == "data_deletion"
}
rule no-grants {
  deny when action.kind == "iam_grant"
}
rule big-patch {
  escalate to ["llm-judge", "sre-oncall"] when action.change.lines > 400
}
rule budget {
  deny when usage.spend_day + action.cost.estimated_usd > 1000
}
rule frozen {
  deny when any(f in context.change_freezes ?? []:
                f.starts_at <= context.now and context.now < f.ends_at)
}
"""

DIRECTORY = StaticDirectory(
    {"finops": ["fay"], "sre-oncall": ["sam", "agent-7"], "dba": ["dee"], "llm-judge": []}
)


@pytest.fixture
def pack_dir(new_pack) -> Path:
    return new_pack(POLICIES)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock("2025-03-10T12:00:00Z")


@pytest.fixture
def make_gate(pack_dir: Path, tmp_path: Path, clock: FakeClock, ledger_url: str):
    """Gates on the test's ledger: every test here runs on SQLite and on PostgreSQL."""

    def make(**options: Any) -> Gate:
        options.setdefault("ledger", ledger_url)
        options.setdefault("log", tmp_path / "decisions.jsonl")
        options.setdefault("directory", DIRECTORY)
        return Gate.from_pack(pack_dir, clock=clock, **options)

    return make


def entries(tmp_path: Path, kind: str | None = None) -> list[Any]:
    found = list(read_log(tmp_path / "decisions.jsonl"))
    return [e for e in found if kind is None or e.kind == kind]


# -- check -----------------------------------------------------------------------------------


def test_check_records_the_decision_in_the_ledger_and_the_log(make_gate, tmp_path) -> None:
    gate = make_gate()
    verdict = gate.check(act())
    assert verdict.decision == "allow" and not verdict.fail_closed
    assert verdict.usage == {"spend_day": 0}
    assert gate.check(act(2)).usage == {"spend_day": 10}
    [first, _] = entries(tmp_path, "decision")
    assert first.id == verdict.decision_id
    assert first.body["verdict"]["decision"] == "allow"
    assert first.body["input"]["context"]["now"] == "2025-03-10T12:00:00Z"
    assert verify_log(tmp_path / "decisions.jsonl").ok


def test_the_verdict_document_is_the_published_one_with_gate_evidence(make_gate) -> None:
    document = make_gate().check(act(cost={"estimated_usd": 500})).to_dict()
    VerdictDocument.model_validate(document)
    gate = document["gate"]
    assert gate["pack_decision"] == "require_approval"
    assert gate["action_digest"].startswith("sha256:")
    assert json.loads(json.dumps(gate)) == gate


def test_context_comes_from_the_provider_and_now_from_the_clock(make_gate, clock) -> None:
    freeze = {
        "name": "quarter-end",
        "starts_at": "2025-03-10T00:00:00Z",
        "ends_at": "2025-03-11T00:00:00Z",
    }
    gate = make_gate(context=StaticContext(change_freezes=(freeze,)))
    verdict = gate.check(act())
    assert verdict.decision == "deny" and verdict.rule_ids == ["frozen"]
    clock.set("2025-03-11T00:00:00Z")  # the freeze has ended
    assert gate.check(act(2)).decision == "allow"


# -- enforce ---------------------------------------------------------------------------------


def test_enforce_runs_an_allowed_action_and_records_it_executed(make_gate, tmp_path) -> None:
    gate = make_gate()
    with gate.enforce(act()) as run:
        run.cost_usd = 9.5
    [outcome] = entries(tmp_path, "outcome")
    assert outcome.body == {
        "decision_id": run.verdict.decision_id,
        "status": "executed",
        "cost_usd": 9.5,
    }


def test_enforce_records_a_failed_and_a_rolled_back_run(make_gate, tmp_path) -> None:
    gate = make_gate()
    with pytest.raises(RuntimeError), gate.enforce(act()):
        raise RuntimeError("scale API timed out")
    with gate.enforce(act(2)) as run:
        run.rolled_back("latency went up")
    statuses = [(e.body["status"], e.body.get("detail")) for e in entries(tmp_path, "outcome")]
    assert statuses == [
        ("failed", "RuntimeError: scale API timed out"),
        ("rolled_back", "latency went up"),
    ]


@pytest.mark.parametrize(
    ("overrides", "error", "decision"),
    [
        ({"kind": "iam_grant"}, Denied, "deny"),
        ({"cost": {"estimated_usd": 500}}, ApprovalRequired, "require_approval"),
    ],
)
def test_enforce_raises_with_the_verdict_and_never_runs_the_block(
    make_gate, overrides, error, decision
) -> None:
    ran = []
    with pytest.raises(error) as raised, make_gate().enforce(act(**overrides)):
        ran.append(True)
    assert ran == []
    assert raised.value.verdict.decision == decision


# -- guard -----------------------------------------------------------------------------------


def test_guard_maps_arguments_to_the_proposed_action(make_gate) -> None:
    gate = make_gate(defaults={k: v for k, v in act().items() if k not in ("id", "target")})
    calls = []

    @gate.guard(kind="scale", target=lambda svc, n: svc, cost=lambda svc, n: {"estimated_usd": n})
    def scale(svc: str, n: int) -> str:
        calls.append((svc, n))
        return f"{svc}={n}"

    assert scale("search", 20) == "search=20"
    with pytest.raises(ApprovalRequired) as raised:
        scale("search", 200)
    assert raised.value.verdict.action["target"] == "search"
    assert raised.value.verdict.action["cost"] == {"estimated_usd": 200}
    assert calls == [("search", 20)]


def test_a_guarded_call_repeated_after_an_approval_runs(make_gate) -> None:
    gate = make_gate(defaults={k: v for k, v in act().items() if k not in ("id", "requested_at")})

    @gate.guard(kind="data_deletion", target=lambda table: table)
    def delete(table: str) -> str:
        return f"dropped {table}"

    with pytest.raises(ApprovalRequired) as raised:
        delete("orders_archive")
    gate.approve(raised.value.verdict, by="sam", group="sre-oncall")
    assert delete("orders_archive") == "dropped orders_archive"
    with pytest.raises(ApprovalRequired):  # it ran: a new call is a new action
        delete("orders_archive")


# -- approvals -------------------------------------------------------------------------------


def test_an_approval_resolves_require_approval_and_is_recorded(make_gate, tmp_path) -> None:
    gate = make_gate()
    pending = gate.check(act(cost={"estimated_usd": 500}))
    assert pending.decision == "require_approval" and pending.approvers == ["finops"]
    approval = gate.approve(pending, by="fay", group="finops", note="capacity for the sale")
    assert approval.action_digest == pending.action_digest
    resolved = gate.check(act(cost={"estimated_usd": 500}))
    assert resolved.decision == "allow"
    assert resolved.gate["approvals"]["counted"][0]["by"] == "fay"
    assert resolved.gate["approvals"]["counted"][0]["rules"] == ["costly"]
    [logged] = entries(tmp_path, "approval")
    assert logged.body["status"] == "granted" and logged.body["by"] == "fay"


def test_an_approval_is_bound_to_the_action_and_not_replayed_for_another(make_gate) -> None:
    gate = make_gate()
    gate.approve(gate.check(act(cost={"estimated_usd": 500})), by="fay", group="finops")
    other = gate.check(act(cost={"estimated_usd": 400}))  # same id, different action
    assert other.decision == "require_approval"
    assert "approvals" not in other.gate


@pytest.mark.parametrize(
    ("by", "group", "reason"),
    [
        ("agent-7", "sre-oncall", "proposed this action"),
        ("olga", "sre-oncall", "proposed this action"),  # the person the agent acts for
        ("fay", "sre-oncall", "not a member"),
        ("fay", "finops", "not an approver group"),
    ],
)
def test_who_may_not_approve_is_rejected_and_the_attempt_logged(
    make_gate, tmp_path, by, group, reason
) -> None:
    gate = make_gate()
    verdict = gate.check(act(kind="data_deletion"))
    with pytest.raises(ApprovalRejected, match=reason):
        gate.approve(verdict, by=by, group=group)
    [logged] = entries(tmp_path, "approval")
    assert logged.body["status"] == "rejected" and reason in logged.body["reason"]
    assert gate.check(act(kind="data_deletion")).decision == "require_approval"


def test_every_fired_approval_rule_needs_its_own_group(make_gate) -> None:
    gate = make_gate()
    action = act(kind="data_deletion", cost={"estimated_usd": 500})
    pending = gate.check(action)
    assert pending.approvers == ["dba", "finops", "sre-oncall"]
    gate.approve(pending, by="dee", group="dba")
    halfway = gate.check(action)
    assert halfway.decision == "require_approval"
    assert halfway.approvers == ["finops"]
    assert halfway.gate["approvals"]["pending_rules"] == ["costly"]
    gate.approve(halfway, by="fay", group="finops")
    assert gate.check(action).decision == "allow"


def test_an_approval_does_not_loosen_a_deny_that_also_fired(make_gate) -> None:
    gate = make_gate()
    action = act(cost={"estimated_usd": 1500})  # costly and over the daily budget
    pending = gate.check(action)
    assert pending.decision == "deny"
    gate.approve(pending, by="fay", group="finops")
    assert gate.check(action).decision == "deny"


def test_approvals_expire_and_lapse_with_group_membership(make_gate, clock) -> None:
    gate = make_gate()
    action = act(cost={"estimated_usd": 500})
    gate.approve(gate.check(action), by="fay", group="finops")
    clock.advance(hours=24)
    assert gate.check(action).decision == "allow"  # exactly 24h old still counts
    clock.advance(microseconds=1)
    expired = gate.check(action)
    assert expired.decision == "require_approval"
    assert expired.gate["approvals"]["ignored"][0]["reason"] == "expired"
    clock.set("2025-03-10T12:00:00Z")
    moved = make_gate(directory=StaticDirectory({"finops": []}))
    assert moved.check(action).gate["approvals"]["ignored"][0]["reason"].startswith("not a member")


def test_approving_needs_a_directory_and_a_gate_verdict(make_gate) -> None:
    gate = make_gate(directory=None)
    with pytest.raises(ApprovalRejected, match="no directory"):
        gate.approve(gate.check(act(cost={"estimated_usd": 500})), by="fay", group="finops")
    with pytest.raises(GateError):
        gate.approve("not a verdict", by="fay", group="finops")  # type: ignore[arg-type]


# -- escalation ------------------------------------------------------------------------------


def judge(answer: str, cost: float = 0.002):
    def review(request):
        return ReviewAnswer(answer, f"judge says {answer} at tier {request.tier}", cost)

    return review


def test_escalation_goes_tier_by_tier_and_keeps_each_answer(make_gate, tmp_path) -> None:
    seen = []

    def person(request):
        seen.append([r["tier"] for r in request.earlier])
        return ReviewAnswer("allow", "read the diff, fine")

    gate = make_gate(
        reviewers=[
            FunctionReviewer("sre-oncall", person, kind="human", id="sam"),
            FunctionReviewer("llm-judge", judge("escalate"), kind="llm", id="judge-1"),
        ]
    )
    verdict = gate.check(act(change={"type": "code", "lines": 900}))
    assert verdict.decision == "allow" and verdict.pack_decision == "escalate"
    assert [r["tier"] for r in verdict.reviews] == ["llm-judge", "sre-oncall"]  # the rule's order
    assert seen == [["llm-judge"]]
    first = verdict.reviews[0]
    assert first["decision"] == "escalate" and first["cost_usd"] == 0.002
    assert first["reviewer"] == {"kind": "llm", "id": "judge-1"}
    assert first["latency_us"] >= 0 and "tier llm-judge" in first["reason"]
    assert verdict.gate["settled_by"] == "sre-oncall"
    logged = entries(tmp_path, "review")
    assert [e.body["tier"] for e in logged] == ["llm-judge", "sre-oncall"]
    assert all(e.body["decision_id"] == verdict.decision_id for e in logged)


def test_a_reviewer_can_deny_and_nobody_reviews_a_deny(make_gate) -> None:
    asked = []

    def lenient(request):
        asked.append(request)
        return ReviewAnswer("allow", "looks fine")

    gate = make_gate(reviewers=[FunctionReviewer("llm-judge", judge("deny"), kind="llm")])
    assert gate.check(act(change={"type": "code", "lines": 900})).decision == "deny"
    lenient_gate = make_gate(reviewers=[FunctionReviewer("llm-judge", lenient, kind="llm")])
    both = lenient_gate.check(act(kind="iam_grant", change={"type": "access", "lines": 900}))
    assert both.decision == "deny" and both.rule_ids == ["no-grants", "big-patch"]
    assert asked == [] and "reviews" not in both.gate


def test_escalate_without_reviewers_is_the_packs_fail_closed_choice(make_gate) -> None:
    verdict = make_gate().check(act(change={"type": "code", "lines": 900}))
    assert verdict.decision == "deny"  # the test pack's fail_closed
    assert verdict.gate["settled_by"].startswith("no reviewer")


def test_tiers_that_all_pass_leave_it_escalated(make_gate) -> None:
    gate = make_gate(reviewers=[FunctionReviewer("llm-judge", judge("escalate"), kind="llm")])
    with (
        pytest.raises(Escalated) as raised,
        gate.enforce(act(change={"type": "code", "lines": 900})),
    ):
        pass
    reviews = raised.value.verdict.reviews
    assert [(r["tier"], r["decision"]) for r in reviews] == [
        ("llm-judge", "escalate"),
        ("sre-oncall", "escalate"),
    ]
    assert reviews[1]["reason"] == "no reviewer serves tier `sre-oncall`"


def test_a_failing_reviewer_fails_closed_naming_it(make_gate) -> None:
    def broken(request):
        raise TimeoutError("judge endpoint timed out")

    gate = make_gate(reviewers=[FunctionReviewer("llm-judge", broken, kind="llm")])
    verdict = gate.check(act(change={"type": "code", "lines": 900}))
    assert verdict.decision == "deny" and verdict.fail_closed
    assert verdict.errors == [
        {
            "kind": "engine",
            "path": "gate.reviewer",
            "message": "reviewer tier `llm-judge`: TimeoutError: judge endpoint timed out",
        }
    ]


# -- shadow ----------------------------------------------------------------------------------


def test_a_shadow_pack_is_logged_when_it_disagrees_and_never_decides(
    make_gate, new_pack, tmp_path
) -> None:
    candidate = load_pack(new_pack("rule strict { deny when action.cost.estimated_usd > 5 }"))
    gate = make_gate(shadow=candidate)
    verdict = gate.check(act())
    assert verdict.decision == "allow"
    assert verdict.gate["shadow"]["decision"] == "deny"
    assert verdict.gate["shadow"]["agrees"] is False
    [shadow] = entries(tmp_path, "shadow")
    assert shadow.body["shadow_of"] == verdict.decision_id
    assert shadow.body["verdict"]["decision"] == "deny"
    assert gate.check(act(2, cost={"estimated_usd": 1})).gate["shadow"]["agrees"] is True
    assert len(entries(tmp_path, "shadow")) == 1


def test_a_failing_shadow_pack_changes_nothing(make_gate, new_pack) -> None:
    candidate = load_pack(
        new_pack("rule odd { deny when action.cost.estimated_usd / action.change.lines > 1 }")
    )
    gate = make_gate(shadow=candidate)
    verdict = gate.check(act(change={"type": "infra", "lines": 0}))
    assert verdict.decision == "allow" and not verdict.fail_closed
    assert verdict.gate["shadow"]["fail_closed"] is True


# -- async and threads -----------------------------------------------------------------------


def test_acheck_aenforce_and_async_guard(make_gate, tmp_path) -> None:
    async def person(request):
        await asyncio.sleep(0)
        return ReviewAnswer("allow", "async ok")

    gate = make_gate(
        reviewers=[FunctionReviewer("llm-judge", person, kind="llm")],
        defaults={k: v for k, v in act().items() if k not in ("id", "requested_at")},
    )

    @gate.guard(kind="restart", target=lambda svc: svc)
    async def restart(svc: str) -> str:
        await asyncio.sleep(0)
        return f"restarted {svc}"

    async def main() -> list[Any]:
        checked = await gate.acheck(act(change={"type": "code", "lines": 900}))
        async with gate.aenforce(act(2)) as run:
            pass
        with pytest.raises(Denied):
            async with gate.aenforce(act(3, kind="iam_grant")):
                pass
        return [checked, run, await restart("search")]

    checked, run, restarted = asyncio.run(main())
    assert checked.decision == "allow" and checked.reviews[0]["reason"] == "async ok"
    assert restarted == "restarted search"
    statuses = [e.body["status"] for e in entries(tmp_path, "outcome")]
    assert statuses == ["executed", "executed"] and run.verdict.allowed


def test_an_async_reviewer_also_answers_a_sync_check(make_gate) -> None:
    async def person(request):
        return ReviewAnswer("deny", "no")

    gate = make_gate(reviewers=[FunctionReviewer("llm-judge", person, kind="llm")])
    assert gate.check(act(change={"type": "code", "lines": 900})).decision == "deny"


def test_threads_sharing_a_gate_lose_no_decision(make_gate, tmp_path) -> None:
    gate = make_gate()
    results: list[str] = []

    def work(worker: int) -> None:
        for i in range(20):
            results.append(gate.check(act(worker * 100 + i, cost={"estimated_usd": 1})).decision)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["allow"] * 80
    assert gate.check(act(999, cost={"estimated_usd": 1})).usage == {"spend_day": 80}
    assert verify_log(tmp_path / "decisions.jsonl").entries == 81


def test_a_budget_is_never_overspent_by_racing_threads(make_gate) -> None:
    gate = make_gate()
    results: list[str] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(5):
            decision = gate.check(act(worker * 100 + i, cost={"estimated_usd": 90})).decision
            with lock:
                results.append(decision)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("allow") == 11  # 11 * 90 = 990 <= 1000 < 12 * 90
