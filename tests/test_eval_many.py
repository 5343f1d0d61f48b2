"""`eval` of many actions at once (a summary, the worst decision's exit code) and
`--explain` (the silent rules with the values that kept them silent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.explain import silent_rules

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "policy_packs" / "aigre-baseline"
ACTIONS = REPO / "fixtures" / "actions"
ESCALATE = ACTIONS / "llm-patch-401-lines.yaml"
APPROVAL = ACTIONS / "dns-change.yaml"


def test_a_directory_of_actions_gives_a_table_and_the_worst_exit(
    tmp_path, capsys, plain_console
) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for source in (ESCALATE, APPROVAL):
        shutil.copy(source, folder / source.name)
    (folder / "notes.txt").write_text("not an input")
    assert main(["eval", str(BASELINE), "--action", str(folder)]) == 4
    out = capsys.readouterr().out
    assert "2 inputs: 1 escalate, 1 require_approval" in out
    assert "large-llm-patch" in out and "production-dns-change" in out


def test_json_lines_each_judged_and_a_failed_closed_one_wins(tmp_path, capsys) -> None:
    lines = tmp_path / "actions.jsonl"
    case = yaml.safe_load(ESCALATE.read_text())
    broken = {"action": {"kind": "no such shape"}, "context": case["context"]}
    lines.write_text(json.dumps(case) + "\n\n" + json.dumps(broken) + "\n")
    code = main(["eval", str(BASELINE), "--action", str(lines), "--format", "json"])
    assert code == 6  # failed closed outranks every decision
    documents = json.loads(capsys.readouterr().out)
    assert [d["input"] for d in documents] == [f"{lines}:1", f"{lines}:3"]
    assert documents[0]["verdict"]["decision"] == "escalate"
    assert documents[1]["verdict"]["errors"]


def test_a_bad_json_line_is_named_by_file_and_line(tmp_path, capsys) -> None:
    lines = tmp_path / "actions.jsonl"
    lines.write_text('{"kind": "restart"}\n{not json\n')
    assert main(["eval", str(BASELINE), "--action", str(lines)]) == 2
    assert f"{lines}:2: not a JSON document" in capsys.readouterr().err


def test_one_action_keeps_the_single_verdict_document(capsys) -> None:
    assert main(["eval", str(BASELINE), "--action", str(ESCALATE), "--format", "json"]) == 3
    assert json.loads(capsys.readouterr().out)["decision"] == "escalate"


def test_explain_names_each_silent_rule_with_the_values_it_read() -> None:
    pack = load_pack(BASELINE)
    case = yaml.safe_load(ESCALATE.read_text())
    verdict = pack.evaluate(case["action"], case["context"], case.get("usage"))
    silent = silent_rules(
        pack, verdict.rule_ids, case["action"], case["context"], case.get("usage")
    )
    ids = [s.rule for s in silent]
    assert "large-llm-patch" not in ids
    assert len(ids) == len(pack.rules) - len(verdict.rule_ids)
    by_id = {s.rule: s for s in silent}
    wide = by_id["wide-blast-radius"]
    share = next(c for c in wide.checks if c.expression.startswith("action.blast_radius.users"))
    assert (share.left, share.op, share.result) == (
        case["action"]["blast_radius"]["users_share"],
        ">",
        False,
    )
    assert any(
        c.expression == "has action.data" and not c.result
        for c in by_id["eu-personal-data-outside-eu"].checks
    )


def test_explain_in_the_cli(capsys, plain_console) -> None:
    assert main(["eval", str(BASELINE), "--action", str(ESCALATE), "--explain"]) == 3
    out = capsys.readouterr().out
    assert "silent rules" in out
    assert "action.blast_radius.users_share > blast.max_users_share  0.12 > 0.25  → false" in out
    assert (
        main(["eval", str(BASELINE), "--action", str(ESCALATE), "--explain", "--format", "json"])
        == 3
    )
    document = json.loads(capsys.readouterr().out)
    assert document["decision"] == "escalate"
    assert {s["id"] for s in document["silent"]} >= {"wide-blast-radius"}
