"""A test block starts from a fixture and changes some fields:
`action from "FILE" { cost: { estimated_usd: 100 } }`."""

from __future__ import annotations

from pathlib import Path

from aigre_policy.cli.main import main
from aigre_policy.compiler import compile_pack
from aigre_policy.testing.cases import merged

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "actions" / "bot-scale-past-cost-cap.yaml"  # 310 USD
POLICY = """
rule costly {
  category: cost
  deny when action.cost.estimated_usd > 300
  because "too much"
}

test "the fixture as it is" {
  action from "FIXTURE"
  usage {}
  expect deny by costly
}

test "the fixture, cheaper" {
  action from "FIXTURE" {
    cost: { estimated_usd: 100 }
  }
  usage {}
  expect allow by no rule
}

test "the fixture on another service keeps its cost" {
  action from "FIXTURE" { target: "checkout" }
  usage {}
  expect deny by costly
  expect evidence action.cost.estimated_usd == 310
}
"""


def test_fields_set_over_a_fixture_keep_the_rest(new_pack, capsys, plain_console) -> None:
    pack = new_pack(POLICY.replace("FIXTURE", str(FIXTURE)))
    assert main(["test", str(pack), "-v"]) == 0, capsys.readouterr().out


def test_the_changes_are_type_checked(new_pack) -> None:
    text = POLICY.replace("FIXTURE", str(FIXTURE)).replace("100", '"cheap"')
    report = compile_pack(new_pack(text))
    assert [d.code for d in report.diagnostics if d.severity.value == "error"] == ["E201"]


def test_merging_is_deep_for_objects_and_replaces_anything_else() -> None:
    base = {"cost": {"estimated_usd": 310, "recurring_monthly_usd": 0}, "tags": ["a"]}
    changes = {"cost": {"estimated_usd": 1}, "tags": ["b"]}
    assert merged(base, changes) == {
        "cost": {"estimated_usd": 1, "recurring_monthly_usd": 0},
        "tags": ["b"],
    }
    assert base["cost"]["estimated_usd"] == 310  # the fixture's data is not changed
