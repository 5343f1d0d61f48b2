"""`--profile` on eval and test: each rule's evaluation time, costliest first."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.profile import rule_times

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "policy_packs" / "aigre-baseline"
ACTION = REPO / "fixtures" / "actions" / "llm-patch-401-lines.yaml"
POLICY = """
rule cheap {
  category: cost
  deny when action.kind == "failover"
}

rule costly {
  category: cost
  deny when any(s in action.blast_radius.services ?? []: s == "x" or s == "y" or s == "z")
}
"""


def test_every_rule_is_timed_and_ranked() -> None:
    pack = load_pack(BASELINE)
    case = yaml.safe_load(ACTION.read_text())
    times = rule_times(pack, [(case["action"], case["context"], case.get("usage"))] * 2)
    assert sorted(t.rule for t in times) == sorted(r.id for r in pack.rules)
    assert all(t.inputs == 2 and t.total_us > 0 for t in times)
    assert [t.total_us for t in times] == sorted((t.total_us for t in times), reverse=True)


def test_a_rule_that_walks_a_long_list_ranks_first(new_pack) -> None:
    pack = load_pack(new_pack(POLICY))
    action = {"kind": "scale", "blast_radius": {"services": [f"s{i}" for i in range(300)]}}
    times = rule_times(pack, [(action, {}, {})])
    assert times[0].rule == "costly"


def test_eval_and_test_print_the_profile(capsys, plain_console) -> None:
    assert main(["eval", str(BASELINE), "--action", str(ACTION), "--profile"]) == 3
    out = capsys.readouterr().out
    assert "rule time over 1 input" in out and "large-llm-patch" in out
    assert (
        main(["eval", str(BASELINE), "--action", str(ACTION), "--profile", "--format", "json"]) == 3
    )
    document = json.loads(capsys.readouterr().out)
    assert {t["id"] for t in document["profile"]} >= {"large-llm-patch"}


def test_test_prints_the_profile_over_its_inputs(new_pack, capsys, plain_console) -> None:
    pack = new_pack(
        POLICY
        + """
test "scale is allowed" {
  action {
    id: "a-1", kind: "scale", target: "web", environment: "staging",
    actor: { kind: "human", id: "dana", trust: 4 }, change: { type: "infra" },
    reversible: true, blast_radius: { users_share: 0 }, cost: { estimated_usd: 0 },
    requested_at: "2025-03-11T14:02:10Z"
  }
  context { now: "2025-03-11T14:02:40Z" }
  expect allow
}
"""
    )
    assert main(["test", str(pack), "--profile"]) == 0
    out = capsys.readouterr().out
    assert "rule time over 1 input" in out and "costly" in out and "cheap" in out
