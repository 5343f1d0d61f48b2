"""Usage mistakes are caught: each exits non-zero with one clear line, never a silent pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.gate.log import DecisionLog

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "policy_packs" / "aigre-baseline"
ACTION = REPO / "fixtures" / "actions" / "llm-patch-401-lines.yaml"
OTHER = REPO / "fixtures" / "actions" / "dns-change.yaml"
POLICY = """
rule costly {
  deny when action.cost.estimated_usd > 100
  because "too much"
}

test "a cheap action passes" {
  action { kind: "scale", target: "web", environment: "staging", reversible: true,
           cost: { estimated_usd: 1 } }
  expect allow
}
"""


def test_test_with_a_k_that_matches_nothing_fails(new_pack, capsys, plain_console) -> None:
    pack = new_pack(POLICY)
    assert main(["test", str(pack), "-k", "cheap"]) != 2  # selected: it runs (pass or fail)
    assert "1 tests" in capsys.readouterr().out
    assert main(["test", str(pack), "-k", "no-such-test"]) == 2
    assert "error: no test matches -k no-such-test" in capsys.readouterr().err


@pytest.mark.parametrize("score", ["7", "90", "-0.1", "high"])
def test_min_score_outside_zero_to_one_is_refused(new_pack, capsys, score) -> None:
    pack = new_pack(POLICY)
    with pytest.raises(SystemExit) as exit_:
        main(["test", str(pack), "--mutate", "--min-score", score])
    assert exit_.value.code == 2
    assert "--min-score" in capsys.readouterr().err


def test_two_actions_are_both_judged_not_silently_one(capsys, plain_console) -> None:
    code = main(["eval", str(BASELINE), "--action", str(ACTION), "--action", str(OTHER)])
    out = capsys.readouterr().out
    assert str(ACTION) in out and str(OTHER) in out
    assert code == 4  # escalate (3) and require_approval (4): the more restrictive


def test_a_repeated_context_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(BASELINE), "--action", str(ACTION), "--context", "a", "--context", "b"])
    assert exit_.value.code == 2
    assert "--context is given more than once" in capsys.readouterr().err


def _log(path: Path, pack_path: Path, count: int = 2) -> None:
    pack = load_pack(pack_path)
    context = {"now": "2026-11-20T10:00:00Z"}
    with DecisionLog(path, fsync="none") as log:
        for i in range(count):
            action = {
                "id": f"a-{i}",
                "kind": "scale",
                "target": "web",
                "environment": "staging",
                "reversible": True,
                "cost": {"estimated_usd": 1},
            }
            verdict = pack.evaluate(action, context)
            log.append(
                "decision",
                {"verdict": verdict.to_dict(), "input": {"action": action, "context": context}},
            )


def test_replay_of_a_corrupt_log_fails(new_pack, tmp_path, capsys) -> None:
    pack = new_pack(POLICY)
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text('garbage\n{"not": "an entry"}\n')
    assert main(["replay", str(pack), "--log", str(corrupt), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "holds no decision entries" in err and "log verify" in err


def test_replay_of_another_pack_s_log_warns(new_pack, tmp_path, capsys) -> None:
    logged = new_pack(POLICY, manifest={"name": "logged-pack"})
    candidate = new_pack(POLICY, manifest={"name": "candidate-pack"})
    log = tmp_path / "d.jsonl"
    _log(log, logged)
    assert main(["replay", str(logged), "--log", str(log), "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["replay", str(candidate), "--log", str(log), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning: the log's decisions were made by logged-pack, not by candidate-pack" in err


def test_json_format_gives_json_for_usage_errors(tmp_path, capsys) -> None:
    code = main(
        ["eval", str(BASELINE), "--action", str(tmp_path / "missing.yaml"), "--format", "json"]
    )
    assert code == 2
    document = json.loads(capsys.readouterr().out)
    assert document["error"]["exit_code"] == 2
    assert "missing.yaml" in document["error"]["message"]


def test_json_format_gives_json_for_argument_errors(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["eval", str(BASELINE), "--format", "json", "--no-such-option"])
    document = json.loads(capsys.readouterr().out)
    assert document["error"]["exit_code"] == 2
    assert "--no-such-option" in document["error"]["message"]


def test_json_format_gives_json_for_a_pack_that_does_not_compile(new_pack, capsys) -> None:
    pack = new_pack("rule r {\n  deny when action.kind = 1\n}\n")
    assert main(["eval", str(pack), "--action", str(ACTION), "--format", "json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["error"]["exit_code"] == 2
    assert document["error"]["diagnostics"][0]["code"] == "E001"


LOWER = """
rule shouting-target {
  deny when lower(action.target) == "payments"
  because "no"
}
"""


def test_check_strict_reports_the_w603_build_reports(new_pack, tmp_path, capsys) -> None:
    from aigre_policy.lint.target import CASE_FOLDING
    from aigre_policy.rego import expr

    assert CASE_FOLDING == expr.CASE_FOLDING
    pack = new_pack(LOWER)
    assert main(["build", str(pack), "-o", str(tmp_path / "b.tar.gz")]) == 0
    built = [line for line in capsys.readouterr().out.splitlines() if "W603" in line]
    assert len(built) == 1
    where = built[0].split(": warning[W603]")[0]
    assert main(["check", "--strict", str(pack)]) == 1
    assert f"{where}: error[W603]" in capsys.readouterr().out
    accepted = new_pack(LOWER, manifest={"lint": {"W603": "warning"}})
    main(["check", "--strict", str(accepted)])  # other lint findings may fail it
    out = capsys.readouterr().out
    assert f"{where.replace(str(pack), str(accepted))}: warning[W603]" in out
    assert "error[W603]" not in out
