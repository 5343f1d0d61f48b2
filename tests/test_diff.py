"""``aigre-policy diff``: two versions of a pack equivalent, or each change with a witness
that both packs, evaluated natively, confirm."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import write_pack

pytest.importorskip("z3")

from aigre_policy import ir, load_pack
from aigre_policy.cli.main import main
from aigre_policy.solver.diff import diff_packs, judge

BASELINE = Path(__file__).resolve().parent.parent / "policy_packs" / "aigre-baseline"


def copy_of(tmp_path: Path, name: str, envelopes: dict | None = None) -> Path:
    root = tmp_path / name
    root.mkdir()
    shutil.copytree(BASELINE / "policies", root / "policies")
    manifest = yaml.safe_load((BASELINE / "pack.yaml").read_text(encoding="utf-8"))
    if envelopes is not None:
        manifest["envelopes"] = envelopes
    (root / "pack.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return root


def a_threshold(pack) -> tuple[str, str, int, tuple[str, ...]]:
    """An integer envelope limit some rule compares an input field against with `>`."""
    found: dict[tuple[str, str], set[str]] = {}
    for rule in pack.rules:
        for node in ir.walk(rule.condition):
            if isinstance(node, ir.Compare) and node.op == ">" and isinstance(node.left, ir.Path):
                ref = node.right
                if isinstance(ref, ir.EnvelopeRef):
                    value = pack.envelopes[ref.envelope][ref.name]
                    if type(value) is int and rule.verdict in ("deny", "require_approval"):
                        found.setdefault((ref.envelope, ref.name), set()).add(rule.id)
    (envelope, name), rules = sorted(found.items())[0]
    return envelope, name, pack.envelopes[envelope][name], tuple(sorted(rules))


def test_the_default_pack_is_equivalent_to_itself(capsys):
    assert main(["diff", str(BASELINE), str(BASELINE), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "equivalent" and report["changes"] == []


def test_a_moved_threshold_is_named_with_a_witness_that_reproduces(tmp_path, capsys):
    old_root = copy_of(tmp_path, "old")
    old = load_pack(old_root)
    envelope, name, value, rules = a_threshold(old)
    new_root = copy_of(tmp_path, "new", {envelope: {name: value + 50}})
    new = load_pack(new_root)
    report = diff_packs(old.checked, old, new.checked, new, timeout_s=60)
    assert report.status == "changed" and report.changes, report.reason
    for change in report.changes:
        before, after = judge(old, change.witness), judge(new, change.witness)
        assert (before.decision, after.decision) == (change.old, change.new)
        assert change.looser  # a raised limit only lets more through
        named = {entry.split(" ")[0] for entry in change.only_old}
        assert named & set(rules)
    capsys.readouterr()
    code = main(
        [
            "diff",
            str(old_root),
            str(new_root),
            "--fail-on",
            "looser",
            "-f",
            "markdown",
            "--timeout",
            "60",
        ]
    )
    text = capsys.readouterr().out
    assert code == 1, text
    assert "| old | new | direction |" in text and "<details><summary>witness:" in text


PACK = """
envelope cost { cap: 500 }
rule costly { deny when action.cost.estimated_usd > cost.cap }
"""


def test_a_pack_at_a_git_revision(tmp_path, capsys):
    repo = tmp_path / "repo"
    root = write_pack(repo / "guard", PACK)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@e", "add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "first")
    (root / "policies" / "main.aigre").write_text(PACK.replace("deny", "escalate"))
    assert main(["diff", f"{root}@HEAD", str(root), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(c["old"], c["new"]) for c in report["changes"]] == [("deny", "escalate")]
    witness = report["changes"][0]["witness"]
    assert witness["action"]["cost"]["estimated_usd"] > 500
    assert report["changes"][0]["rules"] == {
        "old_only": ["costly (deny)"],
        "new_only": ["costly (escalate)"],
    }


def test_a_length_limit_past_the_list_bound_is_still_compared(tmp_path):
    """A list whose length a rule compares holds enough items for that length: with a fixed
    bound of three items, `len(...) > 4` against `len(...) > 5` was called equivalent."""
    text = "rule wide {{ deny when len(action.blast_radius.services ?? []) > {n} }}"
    old = load_pack(write_pack(tmp_path / "old", text.format(n=4)))
    new = load_pack(write_pack(tmp_path / "new", text.format(n=5)))
    report = diff_packs(old.checked, old, new.checked, new, timeout_s=60)
    assert [(c.old, c.new) for c in report.changes] == [("deny", "allow")]
    (change,) = report.changes
    assert len(change.witness["action"]["blast_radius"]["services"]) == 5
    assert report.bounds is not None
    assert report.bounds.bounded_lists["action.blast_radius.services"] >= 6
