"""A test block can say that no rule fired: `expect allow by no rule`."""

from __future__ import annotations

from aigre_policy.cli.main import main
from aigre_policy.fmt import format_file
from aigre_policy.parser import parse_module

POLICY = """
rule costly {
  category: cost
  deny when action.cost.estimated_usd > 300
  because "too much"
}

rule heads-up {
  category: cost
  warn when action.cost.estimated_usd > 100
  because "getting pricey"
}

test "a free action: no rule fires" {
  action {
    id: "a-1", kind: "scale", target: "web", environment: "staging",
    actor: { kind: "human", id: "dana", trust: 4 }, change: { type: "infra" },
    reversible: true, blast_radius: { users_share: 0 }, cost: { estimated_usd: COST },
    requested_at: "2025-03-11T14:02:10Z"
  }
  context { now: "2025-03-11T14:02:40Z" }
  expect allow by no rule
}
"""


def test_by_no_rule_parses_as_an_exact_empty_set() -> None:
    result = parse_module(POLICY.replace("COST", "0"), "p.aigre")
    assert result.diagnostics == []
    (expectation,) = result.module.declarations[2].expectations
    assert (expectation.decision, expectation.rules, expectation.no_rules) == ("allow", (), True)


def test_it_passes_when_nothing_fires_and_fails_when_a_warning_does(
    new_pack, capsys, plain_console
) -> None:
    quiet = new_pack(POLICY.replace("COST", "0"))
    assert main(["test", str(quiet)]) == 0
    capsys.readouterr()
    warned = new_pack(POLICY.replace("COST", "150"))  # allow, but a warn rule fired
    assert main(["test", str(warned)]) == 1
    out = capsys.readouterr().out
    assert "also fired: heads-up" in out or "heads-up" in out


def test_the_formatter_keeps_it(new_pack) -> None:
    pack = new_pack(POLICY.replace("COST", "0").replace("by no rule", "by no   rule"))
    result = format_file(pack / "policies" / "main.aigre")
    assert "expect allow by no rule\n" in result.formatted
