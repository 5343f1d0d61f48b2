"""``aigre-policy ci``: every check on every pack, one exit code, one summary."""

from __future__ import annotations

import json
from pathlib import Path

from junitparser import JUnitXml

from aigre_policy.cli.main import main

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "policy_packs" / "aigre-baseline"
CLEAN = """\
envelope limits {
  max_usd: 250
}

rule costly {
  severity: high
  deny when action.cost.estimated_usd > limits.max_usd
  because "{action.cost.estimated_usd} USD is over {limits.max_usd}"
}
"""


def _table(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and (cells[0].endswith("-pack") or cells[0].endswith("baseline")):
            rows[Path(cells[0]).name] = cells[1:]
    return rows


def test_the_default_pack_passes_every_check(tmp_path, capsys, plain_console) -> None:
    out = tmp_path / "ci.xml"
    assert main(["ci", str(BASELINE), "--format", "junit", "-o", str(out)]) == 0
    err = capsys.readouterr().err  # the summary goes to stderr when the report is a format
    assert _table(err)["aigre-baseline"] == ["pass", "pass", "pass", "pass", "48/48", "rules"]
    assert "1 of 1 pack passed" in err
    suites = {suite.name: suite for suite in JUnitXml.fromfile(str(out))}
    assert set(suites) == {"aigre-baseline", f"{BASELINE} checks"}
    assert {case.name for case in suites[f"{BASELINE} checks"]} == {"compile", "lint", "format"}
    assert suites["aigre-baseline"].tests >= 100
    assert suites["aigre-baseline"].failures == 0


def test_each_failing_check_fails_ci_and_shows_in_its_column(new_pack, capsys, plain_console):
    new_pack("rule r {\n  deny when action.kind == 1\n}\n", name="broken-pack")
    new_pack(CLEAN.replace("  max_usd: 250", "  max_usd:    250"), name="messy-pack")
    new_pack(CLEAN.replace("  severity: high\n", ""), name="lax-pack")
    root = new_pack(CLEAN, name="clean-pack").parent
    assert main(["ci", str(root)]) == 1
    out = capsys.readouterr().out
    rows = _table(out)
    assert rows["broken-pack"][:4] == ["FAIL", "(1)", "skipped", "pass"]
    assert rows["messy-pack"][3:5] == ["FAIL", "(1)"]  # format
    assert rows["lax-pack"][1:3] == ["FAIL", "(2)"]  # lint: no severity, no test
    # a rule with no test: tests fail (gaps), lint fails (L301) in every pack that compiles
    assert rows["clean-pack"][:4] == ["pass", "FAIL", "(1)", "pass"]
    assert rows["clean-pack"][4] == "FAIL"
    assert "error[F001]:" in out and "not in the canonical layout" in out
    assert "0 of 4 packs passed" in out


def test_ci_runs_the_format_check_without_writing(new_pack, capsys, plain_console) -> None:
    pack = new_pack(CLEAN.replace("  max_usd: 250", "  max_usd:    250"), name="messy-pack")
    before = (pack / "policies" / "main.aigre").read_text()
    main(["ci", str(pack)])
    assert (pack / "policies" / "main.aigre").read_text() == before
    assert "messy-pack/policies/main.aigre:2:1: error[F001]" in capsys.readouterr().out


def test_json_report_lists_each_check_and_finding(new_pack, tmp_path, plain_console) -> None:
    pack = new_pack(CLEAN.replace("  severity: high\n", ""), name="lax-pack")
    out = tmp_path / "ci.json"
    assert main(["ci", str(pack), "--format", "json", "-o", str(out)]) == 1
    (entry,) = json.loads(out.read_text())["packs"]
    assert entry["checks"] == {"compile": "pass", "lint": "FAIL", "format": "pass", "tests": "FAIL"}
    codes = {f["code"] for f in entry["findings"]}
    assert {"L202", "L301", "T003"} <= codes


def test_a_path_without_packs_is_misuse(tmp_path, capsys, plain_console) -> None:
    assert main(["ci", str(tmp_path)]) == 2
    assert "holds no pack" in capsys.readouterr().err
