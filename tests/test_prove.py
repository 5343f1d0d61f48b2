"""``aigre-policy prove``: invariants proved for every input, or refuted by a counterexample
that the test runner confirms; ``unknown`` where the solver cannot state what decides."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import write_pack

pytest.importorskip("z3")

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.solver.prove import prove_pack
from aigre_policy.testing.invariants import InvariantResult
from aigre_policy.testing.proof import counterexample_yaml

BASELINE = Path(__file__).resolve().parent.parent / "policy_packs" / "aigre-baseline"

PLANTED = """
envelope cost { max_action_usd: 500 }

rule costly {
  deny when action.cost.estimated_usd > cost.max_action_usd
}

invariant "nothing over 300 USD runs" {
  when action.cost.estimated_usd > 300
  expect deny
}

invariant "nothing over 600 USD runs" {
  when action.cost.estimated_usd > 600
  expect deny
}
"""


def policies_copy(tmp_path: Path, fail_closed: str | None = None) -> Path:
    """The default pack's manifest and policies (not its tests, whose fixtures live outside)."""
    root = tmp_path / "baseline"
    root.mkdir()
    shutil.copytree(BASELINE / "policies", root / "policies")
    manifest = (BASELINE / "pack.yaml").read_text(encoding="utf-8")
    if fail_closed is not None:
        data = yaml.safe_load(manifest)
        data["fail_closed"] = fail_closed
        manifest = yaml.safe_dump(data)
    (root / "pack.yaml").write_text(manifest, encoding="utf-8")
    return root


def confirmed_by_test(root: Path, result, capsys) -> None:
    """The counterexample, pasted as tests/regressions.yaml, is a test that fails."""
    pasted = InvariantResult(
        result.invariant, "broken", 0, 0, result.counterexample, result.decision, result.fired
    )
    text = counterexample_yaml(pasted)
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "regressions.yaml").write_text(text, encoding="utf-8")
    capsys.readouterr()
    code = main(["test", str(root), "--no-invariants", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    (regression,) = [
        t for t in report["packs"][0]["tests"] if t["name"] == f"invariant: {result.invariant.name}"
    ]
    assert code == 1 and regression["status"] == "failed"


def test_every_invariant_of_the_default_pack_is_settled(tmp_path, capsys):
    """Proved, or refuted by a counterexample that reproduces and that `test` sees fail."""
    root = policies_copy(tmp_path)
    pack = load_pack(root)
    report = prove_pack(pack.checked, pack, timeout_s=60)
    assert len(report.results) == len(pack.program.invariants) > 0
    assert {r.status for r in report.results} <= {"proved", "refuted"}
    refuted = [r for r in report.results if r.status == "refuted"]
    for result in refuted:
        verdict = pack.evaluate(
            **{k: result.counterexample[k] for k in ("action", "context", "usage")}
        )
        assert verdict.decision == result.decision
    if refuted:
        confirmed_by_test(root, refuted[0], capsys)


def test_the_default_pack_as_shipped_proves_every_invariant(tmp_path):
    """Usage values and costs are bounded in the input schema, so no sum of them overflows
    into a verdict that fails closed to require_approval where an invariant expects deny
    (unbounded, values near 1.8e308 refuted 6 of them): every invariant is proved."""
    pack = load_pack(policies_copy(tmp_path))
    report = prove_pack(pack.checked, pack, timeout_s=60)
    assert [r.status for r in report.results] == ["proved"] * len(pack.program.invariants)


def test_usage_past_its_bound_is_invalid_and_fails_closed():
    """The bound is enforced at evaluation: a ledger value past it never reaches a rule."""
    pack = load_pack(BASELINE)
    action = {
        "id": "a1", "kind": "scale", "target": "api", "environment": "staging",
        "actor": {"kind": "human", "id": "ann", "trust": 4}, "change": {"type": "infra"},
        "reversible": True, "blast_radius": {"users_share": 0.0},
        "cost": {"estimated_usd": 1.0}, "requested_at": "2025-03-10T09:00:00Z",
    }  # fmt: skip
    context = {"now": "2025-03-10T09:00:01Z", "actor": {"kind": "human", "id": "ann", "trust": 4}}
    usage = {
        "spend_this_month_usd": 1.7976931348623157e308,
        "agent_actions_last_hour": 0,
        "restarts_of_target_last_hour": 0,
    }
    verdict = pack.evaluate(action=action, context=context, usage=usage)
    assert verdict.fail_closed and verdict.decision == "require_approval"
    assert "spend_this_month_usd" in str(verdict.errors)


def test_the_default_pack_failing_closed_to_deny_proves_every_invariant(tmp_path):
    """Failing closed to deny, all hold as well."""
    root = policies_copy(tmp_path, fail_closed="deny")
    pack = load_pack(root)
    report = prove_pack(pack.checked, pack, timeout_s=60)
    assert [r.status for r in report.results] == ["proved"] * len(pack.program.invariants)
    assert report.bounds is not None and report.bounds.list_bound == 3


def test_a_loosened_rule_is_refuted_and_test_confirms_it(tmp_path, capsys):
    root = policies_copy(tmp_path, fail_closed="deny")
    proved = load_pack(root)
    before = {
        r.invariant.name: r.status for r in prove_pack(proved.checked, proved, timeout_s=60).results
    }
    autonomy = root / "policies" / "autonomy.aigre"
    text = autonomy.read_text(encoding="utf-8")
    assert "  deny when" in text
    autonomy.write_text(text.replace("  deny when", "  escalate when"), encoding="utf-8")
    pack = load_pack(root)
    report = prove_pack(pack.checked, pack, timeout_s=60)
    refuted = [r for r in report.results if r.status == "refuted"]
    assert refuted and all(before[r.invariant.name] == "proved" for r in refuted)
    for result in refuted:
        assert result.decision != "deny" and result.counterexample is not None
    confirmed_by_test(root, refuted[0], capsys)


def test_the_gap_between_rule_and_invariant_is_the_counterexample(tmp_path, capsys):
    root = write_pack(tmp_path / "planted", PLANTED)
    pack = load_pack(root)
    first, second = prove_pack(pack.checked, pack).results
    assert second.status == "proved"
    assert first.status == "refuted" and first.decision == "allow"
    assert 300 < first.counterexample["action"]["cost"]["estimated_usd"] <= 500
    confirmed_by_test(root, first, capsys)


def test_the_command_prints_a_test_to_paste_and_exits_1(tmp_path, capsys):
    root = write_pack(tmp_path / "planted", PLANTED)
    assert main(["prove", str(root)]) == 1
    out = capsys.readouterr().out
    assert "REFUTED nothing over 300 USD runs" in out and "proved nothing over 600" in out
    pasted = yaml.safe_load(
        out.split("# counterexample found by the solver", 1)[1].split("\n", 1)[1]
    )
    assert pasted["tests"][0]["expect"] == {"decision": "deny"}
    assert main(["prove", str(root), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [i["status"] for i in data["packs"][0]["invariants"]] == ["refuted", "proved"]


def test_lower_is_refined_against_the_real_function(tmp_path):
    root = write_pack(
        tmp_path / "lower",
        """
        rule prod { deny when lower(action.target) == "checkout" }
        invariant "CHECKOUT is denied" { when action.target == "CHECKOUT" expect deny }
        invariant "Checkout is allowed" { when action.target == "Checkout" expect allow }
        """,
    )
    pack = load_pack(root)
    first, second = prove_pack(pack.checked, pack).results
    assert first.status == "proved"
    assert second.status == "refuted" and second.decision == "deny"


def test_a_construct_the_solver_cannot_state_is_unknown_never_proved(tmp_path, capsys):
    root = write_pack(
        tmp_path / "lists",
        """
        rule exact { deny when action.blast_radius.services ?? [] == ["a"] }
        invariant "one service a is denied" {
          when action.blast_radius.services ?? [] == ["a"]
          expect deny
        }
        """,
    )
    pack = load_pack(root)
    report = prove_pack(pack.checked, pack, timeout_s=60)
    (result,) = report.results
    assert result.status == "unknown"
    assert report.bounds is not None
    assert {o.construct for o in report.bounds.opaque} == {"a comparison of lists or objects"}
    assert main(["prove", str(root)]) == 3
    out = capsys.readouterr().out
    assert "not encodable, held free: a comparison of lists or objects at" in out
    assert "main.aigre:2:" in out


def test_symbolic_envelopes_prove_for_every_deployment_or_name_the_values(tmp_path, capsys):
    root = write_pack(
        tmp_path / "sym",
        """
        envelope cost { cap: 500 }
        rule costly { deny when action.cost.estimated_usd > cost.cap }
        invariant "nothing over 1000 runs" { when action.cost.estimated_usd > 1000 expect deny }
        """,
    )
    assert main(["prove", str(root)]) == 0
    capsys.readouterr()
    assert main(["prove", str(root), "--symbolic-envelopes", "--format", "json"]) == 1
    (result,) = json.loads(capsys.readouterr().out)["packs"][0]["invariants"]
    witness = result["counterexample"]
    cap = witness["with"]["cost"]["cap"]
    assert result["status"] == "refuted" and cap >= 1000
    assert witness["action"]["cost"]["estimated_usd"] <= cap


def test_the_command_line_starts_without_z3_and_says_which_extra_it_needs(
    tmp_path, capsys, monkeypatch
):
    import subprocess
    import sys

    probe = "import sys, aigre_policy.cli.main as m; m.build_parser(); print('z3' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False"
    root = write_pack(tmp_path / "planted", PLANTED)
    monkeypatch.setitem(sys.modules, "z3", None)  # as if the extra were not installed
    assert main(["prove", str(root)]) == 2
    assert main(["diff", str(root), str(root)]) == 2
    err = capsys.readouterr().err
    assert 'pip install "aigre-policy[prove]"' in err and "Traceback" not in err
