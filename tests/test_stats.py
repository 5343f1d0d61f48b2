"""Log stats: verdicts, automated resolution, approval waits, spend per action kind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import gate_action
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy.cli.main import main
from aigre_policy.gate.log import DecisionLog
from aigre_policy.gate.stats import log_stats

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """Advances by a set step (seconds) before each entry."""

    def __init__(self) -> None:
        self.now = START
        self.step = 1.0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=self.step)
        return self.now


def decision(log, decision_id, verdict, kind="scale", cost=0.0, fail_closed=False, **extra):
    action = {"kind": kind, "cost": {"estimated_usd": cost, **extra}}
    log.append(
        "decision",
        {
            "verdict": {
                "decision": verdict,
                "decision_id": decision_id,
                "fail_closed": fail_closed,
            },
            "input": {"action": action, "context": {}, "usage": {}},
        },
    )


def review(log, decision_id, reviewer, verdict):
    log.append(
        "review",
        {
            "decision_id": decision_id,
            "tier": 1,
            "reviewer": {"kind": reviewer, "id": "r"},
            "decision": verdict,
        },
    )


@pytest.fixture
def sample_log(tmp_path):
    path = tmp_path / "d.jsonl"
    clock = Clock()
    with DecisionLog(path, fsync="none", clock=clock) as log:
        decision(log, "a1", "allow", "scale", 10, recurring_monthly_usd=4)
        decision(log, "a2", "allow", "scale", 20)
        decision(log, "a3", "allow", "deploy", 5)
        decision(log, "d1", "deny", "iam_grant", 999)
        decision(log, "d2", "deny", fail_closed=True)
        decision(log, "e1", "escalate")
        decision(log, "e2", "escalate")
        decision(log, "e3", "escalate")
        review(log, "e1", "llm", "allow")
        review(log, "e2", "llm", "escalate")
        review(log, "e2", "human", "deny")
        review(log, "e3", "llm", "escalate")
        decision(log, "r1", "require_approval", "data_deletion", 50)
        log.append("approval", {"decision_id": "r1", "status": "requested", "group": "sre"})
        clock.step = 120
        log.append("approval", {"decision_id": "r1", "status": "granted", "by": "kim"})
        clock.step = 1
        decision(log, "r2", "require_approval", "iam_grant")
        clock.step = 600
        log.append("outcome", {"decision_id": "a1", "status": "executed", "cost_usd": 12.5})
        clock.step = 1
        log.append("shadow", {"verdict": {"decision": "deny"}, "input": {}, "shadow_of": "a1"})
    return path


def test_stats_count_verdicts_and_automation(sample_log):
    stats = log_stats(sample_log)
    assert stats.decisions == 10 and stats.shadow == 1 and stats.entries == 18
    assert stats.by_verdict == {"allow": 3, "escalate": 3, "require_approval": 2, "deny": 2}
    assert stats.fail_closed == 1
    # 3 allow + 2 deny + e1 settled by an llm; e2 went to a person, e3 is still open
    assert stats.escalations_settled_by == {"human": 1, "llm": 1, "automation": 0, "unsettled": 1}
    assert stats.automated == 6 and stats.automated_rate == pytest.approx(0.6)


def test_stats_measure_approval_waits(sample_log):
    stats = log_stats(sample_log)
    assert stats.approvals_by_status == {"granted": 1, "requested": 1}
    assert stats.waited.count == 1
    # r1 was decided, requested 1 s later, granted 120 s after the decision entry
    assert stats.waited.median == pytest.approx(121)
    assert stats.approvals_waiting == 1
    (oldest,) = stats.oldest_waiting
    assert oldest["decision_id"] == "r2"
    assert oldest["waiting_seconds"] == pytest.approx(601)  # up to the last entry
    later = log_stats(sample_log, as_of=START + timedelta(days=1))
    assert later.waiting.longest == pytest.approx(86400 - 135)  # r2 was the 135th second


def test_stats_sum_spend_per_action_kind(sample_log):
    spend = log_stats(sample_log).spend
    assert set(spend) == {"scale", "deploy"}
    assert spend["scale"].allowed == 2 and spend["scale"].estimated_usd == 30
    assert spend["scale"].recurring_monthly_usd == 4
    assert spend["scale"].outcomes == 1 and spend["scale"].actual_usd == 12.5
    assert spend["deploy"].estimated_usd == 5 and spend["deploy"].outcomes == 0


def test_stats_count_crash_recoveries(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"torn')
    with DecisionLog(path) as log:
        decision(log, "a1", "allow")
    stats = log_stats(path)
    assert stats.recoveries == 1 and stats.decisions == 1


def test_an_empty_log_has_no_rate(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("")
    stats = log_stats(path)
    assert stats.decisions == 0 and stats.automated_rate is None and stats.as_of is None


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    verdicts=st.lists(
        st.tuples(
            st.sampled_from(["allow", "escalate", "require_approval", "deny"]),
            st.sampled_from([None, "human", "llm", "automation"]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_automated_rate_counts_what_no_person_settled(tmp_path_factory, verdicts):
    path = tmp_path_factory.mktemp("stats") / "d.jsonl"
    with DecisionLog(path, fsync="none") as log:
        for n, (verdict, reviewer) in enumerate(verdicts):
            decision(log, f"x{n}", verdict)
            if reviewer is not None:
                review(log, f"x{n}", reviewer, "allow")
    stats = log_stats(path)
    expected = sum(
        v in ("allow", "deny") or (v == "escalate" and r in ("llm", "automation"))
        for v, r in verdicts
    )
    assert stats.decisions == len(verdicts) == sum(stats.by_verdict.values())
    assert stats.automated == expected


# --------------------------------------------------------------------------- CLI


def test_cli_stats_text(sample_log, capsys, plain_console):
    assert main(["log", "stats", str(sample_log)]) == 0
    out = capsys.readouterr().out
    assert "18 entries, 10 decisions, 1 shadow" in out
    assert "automated resolution: 60.0% (6 of 10" in out
    assert "approvals: 1 waiting (oldest 10.0 min" in out
    assert "r2" in out and "scale" in out and "12.50" in out


def test_cli_stats_json(sample_log, capsys):
    assert (
        main(
            ["log", "stats", str(sample_log), "--format", "json", "--as-of", "2026-03-03T09:00:00Z"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["automated_rate"] == 0.6
    assert data["approvals"]["waiting"] == 1
    assert data["approvals"]["waited"]["median_seconds"] == 121
    assert data["spend_by_kind"]["scale"]["actual_usd"] == 12.5
    assert data["as_of"] == "2026-03-03T09:00:00Z"


def test_cli_stats_misuse(sample_log, tmp_path, capsys):
    assert main(["log", "stats", str(sample_log), "--as-of", "tomorrow"]) == 2
    assert "expected an RFC 3339 time" in capsys.readouterr().err
    assert main(["log", "stats", str(sample_log), "--as-of", "2026-03-03T09:00:00"]) == 2
    assert main(["log", "stats", str(tmp_path / "none.jsonl")]) == 2
    assert "no log at" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(["log", "stats", str(bad)]) == 2
    assert "log verify" in capsys.readouterr().err


def test_a_refused_self_approval_does_not_resolve_the_decision(new_pack, tmp_path):
    """The gate logs a refused approval as ``rejected`` with a reason; only an approver's
    own rejection (``declined``) answers the decision."""
    from aigre_policy.gate import ApprovalRejected, FakeClock, Gate, StaticDirectory

    pack = new_pack(
        'rule costly {\n  require_approval by ["finops"] when action.cost.estimated_usd > 100\n}\n'
    )
    clock = FakeClock("2025-03-10T12:00:00Z")
    path = tmp_path / "decisions.jsonl"
    directory = StaticDirectory({"finops": ["fay", "olga"]})
    with Gate.from_pack(
        pack, ledger=tmp_path / "l.db", log=path, clock=clock, directory=directory
    ) as gate:
        held = gate.check(gate_action(cost={"estimated_usd": 500}))  # on behalf of olga
        clock.advance(seconds=30)
        with pytest.raises(ApprovalRejected):
            gate.approve(held, by="olga", group="finops")
        stats = log_stats(path)
        assert stats.approvals_waiting == 1 and stats.waited.count == 0
        assert stats.approvals_by_status == {"refused": 1}
        clock.advance(seconds=30)
        gate.reject(held, by="fay", group="finops", note="not this week")
    stats = log_stats(path)
    assert stats.approvals_waiting == 0 and stats.waited.median == pytest.approx(60)
    assert stats.approvals_by_status == {"refused": 1, "rejected": 1}
