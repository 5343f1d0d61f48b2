"""The test runner: test blocks and YAML tests, expectations, diagnostics with positions."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import load_pack
from aigre_policy.compiler import compile_pack
from aigre_policy.testing.cases import load_cases, set_path, unset_path
from aigre_policy.testing.runner import pack_evaluator, run_case, run_suite

ACTION = """{
    id: "act-1", kind: "scale", target: "checkout", environment: "production",
    actor: { kind: "automation", id: "bot", trust: 3 },
    change: { type: "infra" }, reversible: true,
    blast_radius: { users_share: 0.1 }, cost: { estimated_usd: COST },
    requested_at: "2025-03-11T14:02:10Z"
  }"""

POLICY = """\
envelope cost { max_action_usd: 250 }

rule costly-action {
  category: cost
  require_approval by ["finops"] when action.cost.estimated_usd > cost.max_action_usd
  because "{action.cost.estimated_usd} USD is over the {cost.max_action_usd} USD cap"
}

rule bot-in-production {
  category: risk
  warn when action.actor.kind == "automation" and action.environment == "production"
}
"""

YAML_ACTION = {
    "id": "act-2",
    "kind": "scale",
    "target": "checkout",
    "environment": "staging",
    "actor": {"kind": "human", "id": "ana", "trust": 3},
    "change": {"type": "infra"},
    "reversible": True,
    "blast_radius": {"users_share": 0.1},
    "cost": {"estimated_usd": 10},
    "requested_at": "2025-03-11T14:02:10Z",
}


def block(name: str, cost: int, *expects: str, extra: str = "") -> str:
    lines = "\n  ".join(expects)
    return (
        f'\ntest "{name}" {{\n  action {ACTION.replace("COST", str(cost))}\n'
        f'  context {{ now: "2025-03-11T14:02:40Z" }}\n  {extra}{lines}\n}}\n'
    )


def cases_of(pack_dir: Path):
    pack = load_pack(pack_dir)
    cases, diagnostics = load_cases(pack)
    return pack, cases, diagnostics


def result_of(pack_dir: Path, name: str):
    pack, cases, diagnostics = cases_of(pack_dir)
    assert diagnostics == []
    suite = run_suite(pack, cases)
    return next(r for r in suite.results if r.case.name == name)


# ------------------------------------------------------------------ test blocks


def test_passing_block_with_every_kind_of_expectation(new_pack):
    policy = POLICY + block(
        "over the cap",
        300,
        "expect require_approval by at least costly-action",
        'expect message contains "over the 250 USD cap"',
        "expect evidence action.cost.estimated_usd == 300",
        "expect evidence cost.max_action_usd == 250",
    )
    result = result_of(new_pack(policy), "over the cap")
    assert result.passed, result.mismatches


def test_exact_rule_set_counts_warnings(new_pack):
    policy = POLICY + block("exact", 300, "expect require_approval by costly-action")
    result = result_of(new_pack(policy), "exact")
    assert not result.passed
    (mismatch,) = result.mismatches
    assert mismatch.what == "rules"
    assert "also fired: bot-in-production" in mismatch.detail


def test_failing_block_reports_its_file_line_and_column(new_pack):
    policy = POLICY + block("wrong decision", 10, "expect deny")
    root = new_pack(policy)
    result = result_of(root, "wrong decision")
    assert result.status == "failed"
    assert result.mismatches[0].what == "decision"
    assert (result.mismatches[0].expected, result.mismatches[0].actual) == ("deny", "allow")
    lines = (root / "policies" / "main.aigre").read_text().split("\n")
    line = next(i for i, text in enumerate(lines, 1) if 'test "wrong decision"' in text)
    location = result.case.location
    assert (Path(location.file), location.line, location.column) == (
        root / "policies" / "main.aigre",
        line,
        1,
    )


def test_silent_expectation_fails_when_the_rule_fires(new_pack):
    policy = POLICY + block("quiet", 300, "expect silent costly-action")
    result = result_of(new_pack(policy), "quiet")
    assert [m.what for m in result.mismatches] == ["silent"]


def test_evidence_expectation_fails_on_another_value(new_pack):
    policy = POLICY + block("evidence", 300, "expect evidence action.cost.estimated_usd == 301")
    result = result_of(new_pack(policy), "evidence")
    (mismatch,) = result.mismatches
    assert mismatch.what == "evidence"
    assert mismatch.actual == {"action.cost.estimated_usd": [300]}


def test_with_override_recompiles_the_pack_for_that_test(new_pack):
    policy = POLICY + block(
        "raised cap", 300, "expect allow", extra="with cost.max_action_usd = 500\n  "
    )
    assert result_of(new_pack(policy), "raised cap").passed


def test_unknown_rule_in_silent_is_e108(new_pack):
    report = compile_pack(new_pack(POLICY + block("t", 1, "expect silent no-such-rule")))
    assert [d.code for d in report.diagnostics] == ["E108"]


def test_invalid_input_never_passes(new_pack):
    policy = POLICY + '\ntest "broken" {\n  action { id: "x" }\n  expect require_approval\n}\n'
    result = result_of(new_pack(policy), "broken")
    assert result.status == "failed"
    assert result.mismatches[0].what == "input"


# ------------------------------------------------------------------ YAML tests


def test_yaml_table_rows_share_one_expectation(new_pack):
    tests = {
        "tests": [
            {
                "name": "cap",
                "action": YAML_ACTION,
                "context": {"now": "2025-03-11T14:02:40Z"},
                "expect": {"decision": "require_approval", "rules": ["costly-action"]},
                "rows": [
                    {"name": "251", "set": {"action.cost.estimated_usd": 251}},
                    {"name": "1000", "set": {"action.cost.estimated_usd": 1000}},
                    {
                        "name": "250",
                        "set": {"action.cost.estimated_usd": 250},
                        "expect": {"decision": "allow", "rules": []},
                    },
                ],
            }
        ]
    }
    root = new_pack(POLICY, files={"tests/cap.yaml": tests})
    pack, cases, diagnostics = cases_of(root)
    assert diagnostics == []
    assert [c.name for c in cases] == ["cap [251]", "cap [1000]", "cap [250]"]
    suite = run_suite(pack, cases)
    assert suite.ok, [r.mismatches for r in suite.results]


def test_failing_yaml_row_reports_the_row_position(new_pack):
    text = (
        f"tests:\n  - name: cap\n    action: {YAML_ACTION}\n".replace("True", "true").replace(
            "'", '"'
        )
        + '    context: {now: "2025-03-11T14:02:40Z"}\n'
        "    expect: {decision: allow}\n"
        "    rows:\n"
        "      - name: fine\n"
        "      - name: too dear\n"
        "        set: {action.cost.estimated_usd: 900}\n"
    )
    root = new_pack(POLICY, files={"tests/cap.yaml": text})
    result = result_of(root, "cap [too dear]")
    assert result.status == "failed"
    assert str(result.case.location) == f"{root / 'tests' / 'cap.yaml'}:8:9"


def test_from_fixture_reads_a_case_file(new_pack):
    fixture = {"action": YAML_ACTION, "context": {"now": "2025-03-11T14:02:40Z"}, "usage": {}}
    tests = {
        "tests": [{"name": "fixture", "from": "cases/a.yaml", "expect": {"decision": "allow"}}]
    }
    root = new_pack(POLICY, files={"cases/a.yaml": fixture, "tests/t.yaml": tests})
    assert result_of(root, "fixture").passed


@pytest.mark.parametrize(
    ("text", "code", "position", "words"),
    [
        ("tests:\n  - name: a\n    actoin: {}\n", "E701", (3, 5), "unknown field `actoin`"),
        (
            "tests:\n  - name: a\n    action: {}\n    expect: {decision: maybe}\n",
            "E701",
            (4, 24),
            "'maybe' is not one of",
        ),
        ("tests:\n  - name: a\n    action: {}\n", "E701", (2, 5), "expects nothing"),
        ("tests:\n  - name: a\n    expect: {decision: allow}\n", "E701", (2, 5), "no action"),
        (
            "tests:\n  - name: a\n    action: {}\n    expect: {rules: [costly-acton]}\n",
            "E108",
            (4, 21),
            "unknown rule `costly-acton`",
        ),
        (
            "tests:\n  - name: a\n    from: nope.yaml\n    expect: {decision: allow}\n",
            "E702",
            (3, 11),
            "not found",
        ),
        (
            "tests:\n  - name: a\n    action: {}\n    with: {cost: {max_usd: 1}}\n"
            "    expect: {decision: allow}\n",
            "E103",
            (4, 11),
            "cost.max_usd",
        ),
        ("tests:\n  - name: a\n   action: [\n", "E501", (3, 4), "not valid YAML"),
        (
            "tests:\n  - name: a\n    action: {kind: 1}\n    set: {action.kind.x: 1}\n"
            "    expect: {decision: allow}\n",
            "E703",
            (4, 10),
            "cannot set `action.kind.x`",
        ),
    ],
)
def test_bad_test_file_gets_a_diagnostic_with_position(new_pack, text, code, position, words):
    root = new_pack(POLICY, files={"tests/bad.yaml": text})
    _, cases, diagnostics = cases_of(root)
    assert cases == []
    (diagnostic,) = diagnostics
    assert diagnostic.code == code
    assert diagnostic.span.file == str(root / "tests" / "bad.yaml")
    assert (diagnostic.span.line, diagnostic.span.column) == position
    assert words in diagnostic.message


def test_duplicate_test_names_across_forms_are_e106(new_pack):
    policy = POLICY + block("same", 10, "expect allow")
    tests = {"tests": [{"name": "same", "action": YAML_ACTION, "expect": {"decision": "allow"}}]}
    _, cases, diagnostics = cases_of(new_pack(policy, files={"tests/t.yaml": tests}))
    assert [c.name for c in cases] == ["same"]
    assert [d.code for d in diagnostics] == ["E106"]


def test_evaluator_errors_become_error_results(new_pack):
    _, cases, _ = cases_of(new_pack(POLICY + block("t", 10, "expect allow")))

    def broken(action, context, usage, overrides):
        raise RuntimeError("backend down")

    result = run_case(cases[0], broken)
    assert result.status == "error"
    assert "backend down" in (result.error or "")


def test_override_sets_compile_once_each(new_pack):
    pack = load_pack(new_pack(POLICY))
    evaluate = pack_evaluator(pack)
    first = evaluate.pack_for({"cost": {"max_action_usd": 5}})
    assert evaluate.pack_for({"cost": {"max_action_usd": 5}}) is first
    assert evaluate.pack_for({}) is pack
    assert first.envelopes["cost"]["max_action_usd"] == 5


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(), max_size=3),
    st.sampled_from(["a", "b", "c"]),
    st.integers(),
)
def test_set_then_unset_path_restores_the_input(base, key, value):
    inputs = {"action": {"x": dict(base)}}
    had = key in base
    assert set_path(inputs, f"action.x.{key}", value) is None
    assert inputs["action"]["x"][key] == value
    assert unset_path(inputs, f"action.x.{key}") is None
    expected = {k: v for k, v in base.items() if k != key}
    assert inputs["action"]["x"] == expected
    assert (key in inputs["action"]["x"]) is False or had
