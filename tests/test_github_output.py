"""``--format github``: workflow commands GitHub turns into annotations."""

from __future__ import annotations

from aigre_policy.cli.main import main
from aigre_policy.diagnostics import Span
from aigre_policy.report.findings import ERROR, WARNING, Finding
from aigre_policy.report.github import command, escape_data, escape_property


def test_messages_escape_percent_and_line_breaks() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"


def test_properties_also_escape_colons_and_commas() -> None:
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_a_finding_becomes_one_annotation_with_its_full_region(tmp_path) -> None:
    file = tmp_path / "p" / "policies" / "x,y.aigre"
    finding = Finding("E201", ERROR, "cannot compare: 50% off\nreally", Span(str(file), 3, 5, 4, 9))
    assert command(finding, tmp_path) == (
        "::error file=p/policies/x%2Cy.aigre,line=3,col=5,endLine=4,endColumn=9,"
        "title=E201 type mismatch::cannot compare: 50% off%0Areally"
    ).replace("50% off", "50%25 off")


def test_warnings_and_findings_without_a_place() -> None:
    finding = Finding("L201", WARNING, "no because", None, "add one")
    assert command(finding) == (
        "::warning title=L201 a rule without a `because` message::no because%0Ahint: add one"
    )


def test_check_prints_annotations_and_exits_1(new_pack, tmp_path, monkeypatch, capsys) -> None:
    new_pack('rule r {\n  deny when action.environment == "prodution"\n}\n', name="broken")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "broken", "--format", "github"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(
        "::error file=broken/policies/main.aigre,line=2,col=35,endLine=2,endColumn=46,"
        "title=E202 value outside the enum::'prodution' is never a value here"
    )
    assert line.endswith("%0Ahint: did you mean 'production'?")


def test_check_junit_has_a_failing_compile_case(new_pack, tmp_path, monkeypatch, capsys) -> None:
    from junitparser import Failure, JUnitXml

    new_pack('rule r {\n  deny when action.environment == "prodution"\n}\n', name="broken")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "check.xml"
    assert main(["check", "broken", "--format", "junit", "-o", str(out)]) == 1
    (suite,) = JUnitXml.fromfile(str(out))
    cases = {case.name: case for case in suite}
    assert set(cases) == {"compile", "lint"}
    (failure,) = cases["compile"].result
    assert isinstance(failure, Failure) and failure.type == "E202"
    assert cases["lint"].result == []
