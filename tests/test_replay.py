"""Replay: logged decisions re-judged under a candidate pack, changes counted and explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.gate.chain import encode, seal
from aigre_policy.gate.log import DecisionLog
from aigre_policy.gate.replay import replay_log

CONTEXT = {"now": "2026-11-20T10:00:00Z"}
POLICY = """
envelope e { limit: 100 }
rule costly {
  deny when action.cost.estimated_usd > e.limit
  because "{action.cost.estimated_usd} over {e.limit}"
}
"""
WITH_APPROVAL = (
    POLICY
    + """
rule production-deploys {
  require_approval by ["sre"] when action.kind == "deploy"
}
"""
)


@pytest.fixture
def cost_pack(new_pack) -> Path:
    return new_pack(POLICY, name="cost-pack")


def log_decisions(pack_path: Path, actions: list[dict], path: Path, **options) -> list[str]:
    """Judge each action with the pack at ``pack_path`` and log it; returns the decision ids."""
    pack = load_pack(pack_path, options.pop("envelopes", None))
    ids = []
    with DecisionLog(path, fsync="none", **options) as log:
        for action in actions:
            verdict = pack.evaluate(action, CONTEXT)
            log.append(
                "decision",
                {
                    "verdict": verdict.to_dict(),
                    "input": {"action": action, "context": CONTEXT, "usage": {}},
                },
            )
            ids.append(verdict.decision_id)
    return ids


def costs(make_action, values, kind="scale") -> list[dict]:
    return [
        make_action(id=f"a-{i}", kind=kind, cost={"estimated_usd": v}) for i, v in enumerate(values)
    ]


def test_replay_under_the_same_pack_changes_nothing(tmp_path, cost_pack, make_action):
    log = tmp_path / "d.jsonl"
    log_decisions(cost_pack, costs(make_action, [10, 150, 90, 300]), log)
    report = replay_log(cost_pack, log)
    assert (report.decisions, report.replayed, report.unchanged, report.changed) == (4, 4, 4, 0)
    assert report.rules_changed == 0 and report.transitions == {}
    (baseline,) = report.baseline_packs
    assert baseline.startswith("t 1.0.0 sha256:")


def test_a_lower_limit_makes_decisions_stricter_by_the_rule(tmp_path, cost_pack, make_action):
    log = tmp_path / "d.jsonl"
    ids = log_decisions(cost_pack, costs(make_action, [10, 150, 60, 90, 300]), log)
    report = replay_log(cost_pack, log, envelopes={"e": {"limit": 50}})
    assert report.transitions == {"allow->deny": 2}
    assert (report.stricter, report.looser, report.unchanged) == (2, 0, 3)
    assert report.rules == {"costly": {"stricter": 2}}
    assert report.examples["allow->deny"] == [ids[2], ids[3]]  # in log order


def test_a_higher_limit_makes_decisions_looser(tmp_path, cost_pack, make_action):
    log = tmp_path / "d.jsonl"
    ids = log_decisions(cost_pack, costs(make_action, [10, 150, 300]), log)
    report = replay_log(cost_pack, log, envelopes={"e": {"limit": 200}})
    assert report.transitions == {"deny->allow": 1}
    assert report.looser == 1 and report.examples["deny->allow"] == [ids[1]]
    assert report.rules == {"costly": {"looser": 1}}


def test_a_new_rule_is_named_behind_the_change(tmp_path, cost_pack, new_pack, make_action):
    log = tmp_path / "d.jsonl"
    actions = costs(make_action, [10, 500]) + costs(make_action, [20, 600], kind="deploy")
    log_decisions(cost_pack, actions, log)
    candidate = new_pack(WITH_APPROVAL, name="candidate")
    report = replay_log(candidate, log)
    # the 600 USD deploy stays denied (deny outranks require_approval): same decision, new rule
    assert report.transitions == {"allow->require_approval": 1}
    assert report.rules == {"production-deploys": {"stricter": 1}}
    assert report.rules_changed == 1


def test_examples_are_capped(tmp_path, cost_pack, make_action):
    log = tmp_path / "d.jsonl"
    ids = log_decisions(cost_pack, costs(make_action, [60] * 8), log)
    report = replay_log(cost_pack, log, envelopes={"e": {"limit": 50}}, examples=3)
    assert report.transitions == {"allow->deny": 8}
    assert report.examples["allow->deny"] == ids[:3]


def test_redacted_inputs_are_counted_not_replayed(tmp_path, new_pack, make_action):
    pack = new_pack(POLICY, manifest={"sensitive": {"action.target": "mask"}}, name="masked")
    log = tmp_path / "d.jsonl"
    ids = log_decisions(
        pack, costs(make_action, [10, 150]), log, sensitive={"action.target": "mask"}
    )
    log_decisions(pack, costs(make_action, [10]), log)  # a writer without the mask
    report = replay_log(pack, log, envelopes={"e": {"limit": 5}})
    assert (report.decisions, report.redacted, report.replayed) == (3, 2, 1)
    assert report.examples["redacted"] == ids
    assert report.transitions == {"allow->deny": 1}


def test_entries_without_a_usable_input_are_counted(tmp_path, cost_pack, make_action):
    log = tmp_path / "d.jsonl"
    log_decisions(cost_pack, costs(make_action, [10]), log)
    # written past the log's own checks: a decision entry whose input is not an object
    with open(log, "ab") as handle:
        handle.write(encode(seal(2, "odd", "decision", "t", "x", {"verdict": {}, "input": 3})))
    report = replay_log(cost_pack, log)
    assert (report.decisions, report.replayed, report.unreadable) == (2, 1, 1)
    assert report.examples["unreadable"] == ["odd"]


def test_inputs_the_candidate_rejects_fail_closed_and_say_so(
    tmp_path, cost_pack, new_pack, make_action
):
    log = tmp_path / "d.jsonl"
    log_decisions(cost_pack, costs(make_action, [10, 20]), log)
    candidate = new_pack(
        POLICY + "usage spent = sum(action.cost.estimated_usd) over calendar_month\n"
        "rule budget { deny when usage.spent > 1000 }\n",
        name="with-usage",
    )
    report = replay_log(candidate, log)
    assert report.candidate_fail_closed == 2
    assert report.transitions == {"allow->deny": 2}
    assert report.rules == {"(fail closed)": {"stricter": 2}}


def test_rotated_files_and_a_torn_tail(tmp_path, cost_pack, make_action):
    log = tmp_path / "d.jsonl"
    log_decisions(cost_pack, costs(make_action, [60] * 6), log, max_bytes=4000)
    with open(log, "ab") as handle:
        handle.write(b'{"body":{"input":')
    report = replay_log(cost_pack, log, envelopes={"e": {"limit": 50}})
    assert report.decisions == 6 and report.transitions == {"allow->deny": 6}


def test_worker_processes_give_the_same_report(tmp_path, cost_pack, make_action):
    log = tmp_path / "d.jsonl"
    log_decisions(cost_pack, costs(make_action, [i * 7 % 200 for i in range(60)]), log)
    one = replay_log(cost_pack, log, envelopes={"e": {"limit": 50}}, chunk_bytes=5000)
    two = replay_log(cost_pack, log, envelopes={"e": {"limit": 50}}, chunk_bytes=5000, jobs=2)
    strip = lambda r: {k: v for k, v in r.to_dict().items() if "second" not in k}  # noqa: E731
    assert strip(one) == strip(two) and one.changed > 0


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.integers(0, 400), min_size=1, max_size=25),
    logged=st.integers(0, 400),
    candidate=st.integers(0, 400),
)
def test_changes_match_the_limits(
    tmp_path_factory, cost_pack, make_action, values, logged, candidate
):
    log = tmp_path_factory.mktemp("replay") / "d.jsonl"
    log_decisions(cost_pack, costs(make_action, values), log, envelopes={"e": {"limit": logged}})
    report = replay_log(cost_pack, log, envelopes={"e": {"limit": candidate}})
    stricter = sum(candidate < v <= logged for v in values)
    looser = sum(logged < v <= candidate for v in values)
    assert (report.stricter, report.looser) == (stricter, looser)
    assert report.unchanged == len(values) - stricter - looser


# --------------------------------------------------------------------------- CLI


def test_cli_json_and_fail_on(tmp_path, cost_pack, make_action, capsys, plain_console):
    log = tmp_path / "d.jsonl"
    ids = log_decisions(cost_pack, costs(make_action, [10, 150, 60]), log)
    base = ["replay", str(cost_pack), "--log", str(log), "--jobs", "1"]
    assert main([*base, "--format", "json", "--set", "e.limit=50"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["changed"], data["stricter"], data["looser"]) == (1, 1, 0)
    assert data["transitions"] == [
        {"from": "allow", "to": "deny", "count": 1, "direction": "stricter", "examples": [ids[2]]}
    ]
    assert data["decisions_per_second"] > 0
    assert main([*base, "--set", "e.limit=50", "--fail-on", "looser", "--format", "json"]) == 0
    capsys.readouterr()
    assert main([*base, "--set", "e.limit=50", "--fail-on", "any", "--format", "json"]) == 1
    capsys.readouterr()
    assert main([*base, "--set", "e.limit=200", "--fail-on", "looser", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "replayed 3 of 3 decisions" in out and "1 looser" in out
    assert "deny" in out and ids[1] in out and "costly" in out


def test_cli_text_shows_redacted_and_progress_does_not_leak(
    tmp_path, cost_pack, make_action, capsys, plain_console
):
    log = tmp_path / "d.jsonl"
    ids = log_decisions(cost_pack, costs(make_action, [10]), log, sensitive={"action.id": "drop"})
    assert main(["replay", str(cost_pack), "--log", str(log), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "not replayed: 1 decisions with masked or dropped input" in out and ids[0] in out


def test_cli_misuse_exits_2(tmp_path, cost_pack, new_pack, capsys, plain_console):
    assert main(["replay", str(cost_pack), "--log", str(tmp_path / "none.jsonl")]) == 2
    assert "no log at" in capsys.readouterr().err
    log = tmp_path / "d.jsonl"
    log.write_text("")
    broken = new_pack("rule r { deny when action.nope > 1 }", name="broken")
    assert main(["replay", str(broken), "--log", str(log)]) == 2
    assert "does not compile" in capsys.readouterr().err
    assert main(["replay", str(cost_pack), "--log", str(log), "--jobs", "0"]) == 2
