"""``aigre-policy test``: exit codes, formats, filters, coverage and gap skeletons."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from junitparser import Error, Failure, JUnitXml

from aigre_policy.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"

POLICY = """\
envelope cost { max_action_usd: 250 }

rule costly-action {
  category: cost
  require_approval by ["finops"] when action.cost.estimated_usd > cost.max_action_usd
    and action.environment == "production"
  because "{action.cost.estimated_usd} USD is over the {cost.max_action_usd} USD cap"
}
"""

ACTION = {
    "id": "act-2",
    "kind": "scale",
    "target": "checkout",
    "environment": "production",
    "actor": {"kind": "human", "id": "ana", "trust": 3},
    "change": {"type": "infra"},
    "reversible": True,
    "blast_radius": {"users_share": 0.1},
    "cost": {"estimated_usd": 10},
    "requested_at": "2025-03-11T14:02:10Z",
}
CONTEXT = {"now": "2025-03-11T14:02:40Z"}


def yaml_test(name: str, cost: int, decision: str, **expect) -> dict:
    action = {**ACTION, "cost": {"estimated_usd": cost}}
    return {
        "name": name,
        "action": action,
        "context": CONTEXT,
        "expect": {"decision": decision, **expect},
    }


@pytest.fixture
def cli(capsys, plain_console):
    def run(*args: object) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def passing(new_pack) -> Path:
    tests = {
        "tests": [
            yaml_test("cheap scale-out", 10, "allow"),
            yaml_test("dear scale-out", 900, "require_approval", rules=["costly-action"]),
        ]
    }
    return new_pack(POLICY, files={"tests/cost.yaml": tests}, name="passing")


@pytest.fixture
def failing(new_pack) -> Path:
    tests = {
        "tests": [
            yaml_test("cheap scale-out", 10, "allow"),
            yaml_test("wrongly expected", 900, "allow"),
            yaml_test("also wrong", 10, "deny"),
        ]
    }
    return new_pack(POLICY, files={"tests/cost.yaml": tests}, name="failing")


def test_all_passing_exits_0(cli, passing):
    code, out, _ = cli("test", passing)
    assert code == 0
    assert "2 passed" in out


def test_a_failure_exits_1_with_diff_evidence_and_location(cli, failing):
    code, out, _ = cli("test", failing)
    assert code == 1
    assert "1 passed, 2 failed" in out
    flat = " ".join(out.split())
    assert "FAIL wrongly expected" in flat
    assert f"{failing / 'tests' / 'cost.yaml'}:" in out
    assert '- expected "allow"' in flat and '+ actual "require_approval"' in flat
    # the evidence that explains the verdict
    assert "action.cost.estimated_usd > cost.max_action_usd: 900 > 250 -> true" in flat


def test_pack_that_does_not_compile_exits_2(cli, new_pack):
    code, _, err = cli("test", new_pack("rule r { deny when nope }"))
    assert code == 2
    assert "does not compile" in err


def test_malformed_test_file_exits_2_with_position(cli, new_pack):
    root = new_pack(POLICY, files={"tests/bad.yaml": "tests:\n  - name: a\n    actoin: {}\n"})
    code, _, err = cli("test", root)
    assert code == 2
    assert f"{root / 'tests' / 'bad.yaml'}:3:5: error[E701]" in err


def test_misuse_exits_2(cli, tmp_path):
    code, _, err = cli("test", tmp_path / "missing")
    assert code == 2
    assert "no pack" in err


def test_unwritable_output_exits_2(cli, passing, tmp_path):
    code, _, err = cli("test", passing, "-o", tmp_path / "no" / "such" / "dir.json")
    assert code == 2
    assert "cannot write" in err


def test_k_filters_by_name(cli, failing):
    code, out, _ = cli("test", failing, "-k", "cheap", "-v")
    assert code == 0
    assert "1 tests" in out and "pass cheap scale-out" in out


def test_fail_fast_stops_at_first_failure(cli, failing):
    code, out, _ = cli("test", failing, "-x", "--format", "json")
    document = json.loads(out)
    summary = document["packs"][0]["summary"]
    assert code == 1
    assert summary["tests"] == 2 and summary["failed"] == 1 and summary["stopped_early"]


def test_json_report_holds_mismatches_and_locations(cli, failing, tmp_path):
    target = tmp_path / "report.json"
    code, out, _ = cli("test", failing, "--format", "json", "-o", target)
    assert code == 1 and out == ""
    document = json.loads(target.read_text())
    assert document["ok"] is False
    wrong = next(t for t in document["packs"][0]["tests"] if t["name"] == "wrongly expected")
    assert wrong["status"] == "failed"
    assert wrong["mismatches"][0]["what"] == "decision"
    assert wrong["location"]["file"] == str(failing / "tests" / "cost.yaml")
    assert wrong["evidence"][0]["id"] == "costly-action"


def test_junit_output_reads_back_with_junitparser(cli, failing, new_pack, tmp_path):
    broken = new_pack(
        POLICY,
        files={
            "tests/t.yaml": {
                "tests": [
                    {
                        **yaml_test("bad override", 1, "allow"),
                        "with": {"cost": {"max_action_usd": "x"}},
                    }
                ]
            }
        },
        name="broken",
    )
    target = tmp_path / "junit.xml"
    code, _, _ = cli("test", failing, broken, "--format", "junit", "-o", target)
    assert code == 1
    xml = JUnitXml.fromfile(str(target))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"t"}  # both packs are named t in conftest's manifest
    cases = [case for suite in xml for case in suite]
    by_name = {case.name: case for case in cases}
    assert len(cases) == 4
    assert by_name["cheap scale-out"].is_passed
    (failure,) = by_name["wrongly expected"].result
    assert isinstance(failure, Failure) and "decision" in failure.message
    (error,) = by_name["bad override"].result
    assert isinstance(error, Error)
    assert xml.tests == 4 and xml.failures == 2 and xml.errors == 1


# ------------------------------------------------------------------ bright lines


def test_coverage_table_lists_rules_and_limits(cli, passing):
    code, out, _ = cli("test", passing, "--coverage")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("costly-action"))
    assert row.split()[1:] == ["1", "1", "1/2", "0/1"]
    assert "action.cost.estimated_usd > cost.max_action_usd" in out


def test_gap_fails_and_the_pasted_skeleton_closes_it(cli, passing):
    code, out, _ = cli("test", passing, "--require-bright-lines")
    assert code == 1
    assert "no test on the limit" in out and "no test just past the limit" in out
    skeleton = out[out.index("tests:\n") :]
    entries = yaml.safe_load(skeleton)["tests"]
    values = sorted(e["action"]["cost"]["estimated_usd"] for e in entries)
    assert values == [250, 251]
    (passing / "tests" / "bright-lines.yaml").write_text(skeleton)
    code, out, _ = cli("test", passing, "--require-bright-lines")
    assert code == 0, out
    assert "bright lines complete" in out


def test_rule_that_never_fires_gets_a_skeleton_that_fires_it(cli, new_pack):
    tests = {"tests": [yaml_test("cheap", 10, "allow")]}
    root = new_pack(POLICY, files={"tests/t.yaml": tests})
    code, out, _ = cli("test", root, "--require-bright-lines", "--format", "json")
    assert code == 1
    gaps = json.loads(out)["packs"][0]["coverage"]["gaps"]
    fires = next(g for g in gaps if g["gap"] == "never fires")
    assert fires["test"]["expect"]["rules_at_least"] == ["costly-action"]
    assert fires["test"]["action"]["cost"]["estimated_usd"] > 250


def test_default_pack_has_full_bright_line_coverage(cli):
    code, out, _ = cli("test", BASELINE, "--require-bright-lines")
    assert code == 0, out
    assert "bright lines complete" in out
    assert re.search(r"\b(\d+) passed", out) and " failed" not in out


# ------------------------------------------------------------------ engines


@pytest.fixture
def rego_calls(monkeypatch) -> list[str]:
    """The actions the Rego engine decided, by id: proof the tests ran on it."""
    from aigre_policy.rego.engine import RegopyEngine

    seen: list[str] = []
    decide = RegopyEngine.decide

    def spy(self, document):
        seen.append(document["action"]["id"])
        return decide(self, document)

    monkeypatch.setattr(RegopyEngine, "decide", spy)
    return seen


def test_the_rego_engine_runs_the_tests_and_their_overrides(cli, new_pack, rego_calls):
    tests = {
        "tests": [
            yaml_test("dear scale-out", 900, "require_approval", rules=["costly-action"]),
            {
                **yaml_test("under a raised cap", 900, "allow", rules=[]),
                "with": {"cost": {"max_action_usd": 1000}},
            },
        ]
    }
    root = new_pack(POLICY, files={"tests/cost.yaml": tests})
    code, out, _ = cli("test", root, "--engine", "rego", "--no-invariants")
    assert code == 0, out
    assert "2 passed" in out and rego_calls == ["act-2", "act-2"]
    assert cli("test", root, "--no-invariants")[0] == 0 and len(rego_calls) == 2  # native


def test_a_failure_on_the_rego_engine_exits_1(cli, failing, rego_calls):
    code, out, _ = cli("test", failing, "--engine", "rego", "--no-invariants")
    assert code == 1 and "1 passed, 2 failed" in out and len(rego_calls) == 3


def test_the_mixed_example_pack_passes_on_every_engine(cli):
    example = ROOT / "policy_packs" / "change-tickets"
    for engine in ("native", "rego", "regorus"):
        code, out, _ = cli("test", example, "--engine", engine, "--no-invariants")
        assert code == 0, f"{engine}: {out}"


def test_mutation_on_the_rego_engine_is_misuse(cli, passing):
    code, _, err = cli("test", passing, "--engine", "rego", "--mutate")
    assert code == 2 and "--engine native" in err


def test_a_pack_with_remainder_runs_on_the_rego_engines(cli, new_pack):
    """It was refused for Rego (E601, retired); it runs there as on native."""
    root = new_pack("rule r {\n  deny when action.change.lines % 2 == 1\n}\n")
    native = cli("test", root, "--no-invariants")
    for engine in ("rego", "regorus"):
        code, out, err = cli("test", root, "--engine", engine, "--no-invariants")
        assert code == native[0] and code != 2, f"{engine}: {out} {err}"
        assert "E601" not in err
