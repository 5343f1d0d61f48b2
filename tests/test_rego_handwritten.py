# ruff: noqa: E501 - Rego sources and messages are as long as they are
"""Hand-written Rego in packs: the contract, its diagnostics, and both engines merging it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import regopy
import yaml

from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import CompileError
from aigre_policy.pack import load_pack

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "policy_packs" / "change-tickets"
CASE = yaml.safe_load((EXAMPLE / "tests" / "cases" / "ticketed-dns-change.yaml").read_text())

AIGRE = """
envelope limits {
  max_lines: 100
}

rule big-change {
  category: risk
  escalate to ["reviewers"] when action.change.lines > limits.max_lines
  because "{action.change.lines} lines"
}
"""


def rego_pack(new_pack, rego: str, name: str = "extra.rego"):
    return new_pack({"main.aigre": AIGRE}, files={f"policies/{name}": rego})


def both(root):
    return load_pack(root), load_pack(root, engine="rego")


def inputs(**action):
    return {
        "action": {**CASE["action"], **action},
        "context": CASE["context"],
    }


def same(a, b) -> None:
    def records(items):
        return [{k: v for k, v in r.items() if k != "comparisons"} for r in items]

    assert (a.decision, a.fail_closed, a.default_applied, a.approvers, a.escalate_to) == (
        b.decision,
        b.fail_closed,
        b.default_applied,
        b.approvers,
        b.escalate_to,
    )
    assert records(a.fired) == records(b.fired)
    assert records(a.warnings) == records(b.warnings)


@pytest.mark.parametrize(
    ("change", "decision", "rules"),
    [
        ({}, "allow", []),
        (
            {"justification": {"signal": "ticket", "ref": "net 951"}},
            "deny",
            ["malformed-ticket-ref"],
        ),
        (
            {"justification": {"signal": "ticket", "ref": "PAY-7"}},
            "require_approval",
            ["restricted-project-ticket"],
        ),
        (
            {"justification": {"signal": "alert"}, "change": {"type": "infra", "lines": 51}},
            "escalate",
            ["large-change-without-ticket"],
        ),
    ],
)
def test_the_example_pack_mixes_aigre_and_rego_on_both_engines(change, decision, rules):
    native, rego = both(EXAMPLE)
    given = inputs(**change)
    a, b = native.evaluate(**given), rego.evaluate(**given)
    same(a, b)
    assert (a.decision, a.rule_ids) == (decision, rules)


def test_hand_written_records_have_the_evidence_shape():
    native, _ = both(EXAMPLE)
    verdict = native.evaluate(**inputs(justification={"signal": "ticket", "ref": "PAY-7"}))
    (record,) = verdict.fired
    assert record == {
        "id": "restricted-project-ticket",
        "verdict": "require_approval",
        "category": "compliance",
        "severity": "high",
        "tags": ["tickets", "change-board"],
        "message": "dns_change on api.example.com works on PAY ticket PAY-7; the change board approves PAY changes",
        "location": {"file": "policies/ticket_refs.rego", "line": 27, "column": 1},
        "approvers": ["change-board"],
        "escalate_to": [],
        "bindings": {
            "action.justification.ref": "PAY-7",
            "tickets.restricted_projects": ["PAY", "SEC"],
        },
        "comparisons": [],
    }
    assert verdict.approvers == ["change-board"]


def test_warnings_from_rego_merge_without_changing_the_decision():
    native, rego = both(EXAMPLE)
    given = inputs(change={"type": "infra", "lines": 2})
    a, b = native.evaluate(**given), rego.evaluate(**given)
    same(a, b)
    assert a.decision == "allow"
    assert [w["id"] for w in a.warnings] == ["ticket-without-summary"]


def test_rego_files_join_the_pack_digest(new_pack):
    root = rego_pack(new_pack, "package aigre.t.custom.extra\n\nwarn := set()\n")
    before = load_pack(root).digest
    (root / "policies" / "extra.rego").write_text("package aigre.t.custom.extra\n\nwarn := {}\n")
    assert load_pack(root).digest != before


@pytest.mark.parametrize(
    ("source", "code", "line", "column"),
    [
        ("package aigre.other.custom.extra\n", "E605", 1, 9),
        ("# no package\n", "E605", 1, 1),
        ("package aigre.t.custom.extra\n\ndeny contains x if {\n  x := \n}\n", "E608", 4, 5),
        (
            'package aigre.t.custom.extra\n\ndeny contains {"id": "big-change", "message": "m"} if true\n',
            "E606",
            3,
            23,
        ),
        (
            'package aigre.t.custom.extra\n\nwarn contains {"id": "n", "message": "m"} if time.now_ns() > 0\n',
            "E607",
            3,
            46,
        ),
    ],
)
def test_problems_in_hand_written_rego_are_diagnostics_with_positions(
    new_pack, source, code, line, column
):
    report = compile_pack(rego_pack(new_pack, source))
    assert not report.ok
    (problem,) = report.diagnostics
    assert (problem.code, problem.span.line, problem.span.column) == (code, line, column)
    assert problem.span.file.endswith("policies/extra.rego")


def test_a_pack_of_only_rego_compiles(new_pack):
    root = new_pack(
        None, files={"policies/only.rego": "package aigre.t.custom.only\n\ndeny := set()\n"}
    )
    assert compile_pack(root).ok


@pytest.mark.parametrize(
    "element",
    [
        '{"id": "no-message"}',
        '{"id": "Bad Id", "message": "m"}',
        '{"id": "x", "message": "m", "severity": "extreme"}',
        '{"id": "x", "message": "m", "groups": "sre"}',
        '"just text"',
        '{"id": concat("", ["big", "-change"]), "message": "reuses an .aigre id"}',
    ],
)
def test_malformed_reports_fail_closed_on_both_engines(new_pack, element):
    root = rego_pack(new_pack, f"package aigre.t.custom.extra\n\ndeny contains {element} if true\n")
    for pack in both(root):
        verdict = pack.evaluate(**inputs())
        assert verdict.fail_closed
        assert verdict.decision == "deny"
        assert verdict.errors[0]["kind"] == "engine"


def test_a_verdict_set_that_is_not_a_set_fails_closed(new_pack):
    root = rego_pack(new_pack, 'package aigre.t.custom.extra\n\ndeny := {"id": "x"}\n')
    for pack in both(root):
        assert pack.evaluate(**inputs()).fail_closed


def test_hand_written_rules_see_input_and_envelopes(new_pack):
    rego = (
        "package aigre.t.custom.extra\n\n"
        'escalate contains {"id": "half-limit", "message": "past half", "groups": ["leads"]} if {\n'
        "  input.action.change.lines * 2 > data.aigre.t.envelopes.limits.max_lines\n"
        "}\n"
    )
    root = rego_pack(new_pack, rego)
    native, engine = both(root)
    for lines, decision, groups in (
        (10, "allow", []),
        (60, "escalate", ["leads"]),
        (120, "escalate", ["reviewers", "leads"]),
    ):
        given = inputs(change={"type": "infra", "lines": lines})
        a, b = native.evaluate(**given), engine.evaluate(**given)
        same(a, b)
        assert (a.decision, a.escalate_to) == (decision, groups)
    # envelope overrides reach the hand-written rules too
    tightened = load_pack(root, {"limits": {"max_lines": 10}})
    assert tightened.evaluate(**inputs(change={"type": "infra", "lines": 11})).escalate_to == [
        "reviewers",
        "leads",
    ]


# ---------------------------------------------------------------- command line


@pytest.fixture
def cli(capsys, plain_console):
    from aigre_policy.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_eval_with_the_rego_engine(cli, tmp_path):
    case = tmp_path / "case.yaml"
    case.write_text(
        yaml.safe_dump(
            {
                **CASE,
                "action": {**CASE["action"], "justification": {"signal": "ticket", "ref": "PAY-1"}},
            }
        )
    )
    code, out, _ = cli(
        "eval", str(EXAMPLE), "--action", str(case), "--engine", "rego", "--format", "json"
    )
    assert code == 4  # require_approval
    assert json.loads(out)["fired"][0]["id"] == "restricted-project-ticket"
    native_code, native_out, _ = cli(
        "eval", str(EXAMPLE), "--action", str(case), "--format", "json"
    )
    assert native_code == code
    assert json.loads(native_out)["fired"] == json.loads(out)["fired"]


def test_eval_emit_rego_prints_modules_that_compile(cli):
    code, out, _ = cli("eval", str(EXAMPLE), "--emit", "rego")
    assert code == 0
    modules = {}
    for chunk in out.split("# file: ")[1:]:
        path, source = chunk.split("\n", 1)
        modules[path] = source
    assert "aigre/change_tickets/custom/ticket_refs.rego" in modules
    rego = regopy.Interpreter()
    for path, source in modules.items():
        rego.add_module(path, source)
    assert rego.build(None, ["aigre/change_tickets/decision"]).ok()


def test_eval_with_remainder_on_the_rego_engine_decides_as_native(cli, new_pack, tmp_path):
    """`%` was refused for Rego (E601, retired); `eval --engine rego` now decides as native."""
    root = new_pack("rule r {\n  deny when action.change.lines % 2 == 1\n}\n")
    case = tmp_path / "case.yaml"
    case.write_text(yaml.safe_dump(inputs(change={"type": "code", "lines": 7})))
    args = ("eval", str(root), "--action", str(case), "--format", "json")
    native_code, native_out, _ = cli(*args)
    code, out, err = cli(*args, "--engine", "rego")
    assert "E601" not in err
    assert code == native_code
    ids = [(r["id"], r["message"], r["bindings"]) for r in json.loads(out)["fired"]]
    assert ids == [(r["id"], r["message"], r["bindings"]) for r in json.loads(native_out)["fired"]]
    assert json.loads(out)["decision"] == "deny"


def test_unknown_engine_is_refused(cli, new_pack, capsys):
    with pytest.raises(SystemExit) as exited:
        cli("eval", str(new_pack(AIGRE)), "--engine", "nope")
    assert exited.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_load_pack_refuses_an_unknown_engine(new_pack):
    with pytest.raises(ValueError, match="unknown engine 'nope'"):
        load_pack(new_pack(AIGRE), engine="nope")


def test_rego_target_errors_raise_compile_errors(new_pack):
    root = rego_pack(new_pack, "package elsewhere\n\nx := 1\n")
    with pytest.raises(CompileError) as raised:
        load_pack(root, engine="rego")
    assert "E605" in {d.code for d in raised.value.diagnostics}


# ---------------------------------------------------------------- tests naming hand-written rules

REPORTS = """
package aigre.t.custom.extra

deny contains {"id": "no-approval", "message": "m"} if input.action.kind == "deploy"

warn contains {"id": "odd-target", "message": "odd"} if endswith(input.action.target, "x")

warn contains {"id": "odd-target", "message": "again"} if endswith(input.action.target, "y")
"""


def test_a_module_knows_the_ids_it_writes(new_pack):
    compiled = compile_pack(rego_pack(new_pack, REPORTS)).compiled
    assert [module.ids for module in compiled.handwritten] == [("no-approval", "odd-target")]


def suite_of(root: Path, tests: str):
    from aigre_policy.testing.cases import load_cases
    from aigre_policy.testing.runner import run_suite

    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "extra.yaml").write_text(tests)
    pack = load_pack(root)
    cases, diagnostics = load_cases(pack)
    return diagnostics, (run_suite(pack, cases) if not diagnostics else None)


CASE_YAML = f"""
tests:
  - name: deploys are denied by the hand-written rule
    action: {json.dumps({**CASE["action"], "kind": "deploy"})}
    context: {json.dumps(CASE["context"])}
    expect: {{decision: deny, rules: [no-approval], silent: [odd-target, big-change]}}
  - name: a target ending in x is a warning
    action: {json.dumps({**CASE["action"], "target": "box"})}
    context: {json.dumps(CASE["context"])}
    expect: {{decision: allow, rules_at_least: [odd-target]}}
"""


def test_tests_name_the_rules_of_hand_written_modules(new_pack):
    diagnostics, suite = suite_of(rego_pack(new_pack, REPORTS), CASE_YAML)
    assert diagnostics == []
    assert [(r.case.name, r.passed) for r in suite.results] == [
        ("deploys are denied by the hand-written rule", True),
        ("a target ending in x is a warning", True),
    ]


def test_a_hand_written_rule_that_does_not_fire_fails_the_test(new_pack):
    wrong = CASE_YAML.replace("rules: [no-approval]", "rules: [odd-target]")
    _, suite = suite_of(rego_pack(new_pack, REPORTS), wrong)
    assert [r.passed for r in suite.results] == [False, True]


def test_an_id_no_module_writes_is_unknown(new_pack):
    unknown = CASE_YAML.replace("rules: [no-approval]", "rules: [no-approvals]")
    diagnostics, _ = suite_of(rego_pack(new_pack, REPORTS), unknown)
    assert [(d.code, d.message) for d in diagnostics] == [("E108", "unknown rule `no-approvals`")]


def test_the_example_pack_tests_name_its_hand_written_rules():
    from aigre_policy.testing.cases import load_cases
    from aigre_policy.testing.runner import run_suite

    pack = load_pack(EXAMPLE)
    cases, diagnostics = load_cases(pack)
    named = {
        rule_id
        for case in cases
        for key in ("rules", "rules_at_least", "silent")
        for rule_id in getattr(case.expectation, key) or ()
    }
    assert diagnostics == []
    assert {"malformed-ticket-ref", "restricted-project-ticket", "ticket-without-summary"} <= named
    assert all(result.passed for result in run_suite(pack, cases).results)
