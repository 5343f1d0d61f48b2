# ruff: noqa: E501 - policy source lines are as long as their messages
"""The Rego emitter: layout, safe names, annotations, data, and what it refuses to emit."""

from __future__ import annotations

import re

import pytest
import regopy
import yaml
from regopy.rego_shared import LogLevel

from aigre_policy.compiler import compile_pack
from aigre_policy.pack import load_pack
from aigre_policy.rego.emit import emit_rego, segment

RULE = """
envelope limits {
  max_lines: 200
  quiet: 15m
}

rule big-patch {
  title: "Big patches go to a reviewer"
  description: "More lines than a reviewer reads in one sitting."
  category: risk
  severity: high
  tags: ["code", "review"]
  escalate to ["reviewers"] when action.change.lines > limits.max_lines
  because "a {action.change.lines}-line patch; the limit is {limits.max_lines} and quiet time {limits.quiet}"
}
"""


def emitted(path):
    report = compile_pack(path)
    assert report.ok, report.diagnostics
    return emit_rego(report.compiled)


def compiles_in_regopy(program) -> None:
    rego = regopy.Interpreter()
    rego.log_level = LogLevel.NONE
    for name, source in program.modules.items():
        rego.add_module(name, source)
    rego.add_data(program.data)
    assert rego.build(None, [program.entrypoint]).ok()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aigre-baseline", "aigre_baseline"),
        ("My.Pack", "my_pack"),
        ("9lives", "p_9lives"),
        ("import", "import_"),
        ("data", "data_"),
        ('x"; import data.secret\npackage y', "x___import_data_secret_package_y"),
        ("", "p_"),
        ("ünï", "p__n_"),
    ],
)
def test_pack_names_become_one_safe_package_segment(name, expected):
    assert segment(name) == expected
    assert re.fullmatch(r"[a-z][a-z0-9_]*", segment(name))


def test_layout_roots_entrypoint_and_data(new_pack):
    program = emitted(
        new_pack(
            RULE, manifest={"name": "code-review", "envelopes": {"limits": {"max_lines": 300}}}
        )
    )
    assert program.package == "aigre.code_review"
    assert program.roots == ("aigre/code_review",)
    assert program.entrypoint == "aigre/code_review/decision"
    assert program.query == "data.aigre.code_review.decision"
    assert set(program.modules) == {
        "aigre/code_review/decision.rego",
        "aigre/code_review/verdict.rego",
        "aigre/code_review/lib.rego",
        "aigre/code_review/handwritten.rego",
        "aigre/code_review/policies/main.rego",
    }
    # envelopes are data, with the pack.yaml override applied and durations in seconds
    assert program.data == {
        "aigre": {"code_review": {"envelopes": {"limits": {"max_lines": 300, "quiet": 900}}}}
    }
    for path, source in program.modules.items():
        package = re.search(r"^package (\S+)$", source, re.MULTILINE).group(1)
        assert package.startswith("aigre.code_review"), path
        assert "import rego.v1" not in source  # Rego v1 syntax throughout
    assert program.ok
    compiles_in_regopy(program)


def test_rule_metadata_is_an_opa_annotation(new_pack):
    source = emitted(new_pack(RULE)).modules["aigre/t/policies/main.rego"]
    block = re.search(
        r"((?:^# .*\n)+)^r0 if \{", source[source.index("# METADATA") :], re.MULTILINE
    )
    annotation = yaml.safe_load("\n".join(line[2:] for line in block.group(1).splitlines()[1:]))
    assert annotation == {
        "title": "Big patches go to a reviewer",
        "description": "More lines than a reviewer reads in one sitting.",
        "custom": {
            "id": "big-patch",
            "verdict": "escalate",
            "category": "risk",
            "severity": "high",
            "tags": ["code", "review"],
            "groups": ["reviewers"],
        },
    }


def test_hostile_texts_stay_data(new_pack):
    policy = r"""
envelope odd {
  texts: ["`raw`", "{x}", "\" } \ndeny := true #"]
}

rule evil {
  title: "x\" } \n# METADATA\npackage evil"
  deny when action.target in odd.texts
  because "target {action.target}: \"quoted\" `tick` \\ back {odd.texts}"
}
"""
    root = new_pack(policy)
    compiles_in_regopy(emitted(root))
    native, rego = load_pack(root), load_pack(root, engine="rego")
    action = {
        "id": "a",
        "kind": "rollback",
        "target": "checkout",
        "environment": "production",
        "actor": {"kind": "llm", "id": "x", "trust": 3},
        "change": {"type": "code", "lines": 1},
        "reversible": True,
        "blast_radius": {"users_share": 0.1, "services": []},
        "cost": {"estimated_usd": 0},
        "requested_at": "2026-11-20T10:00:00Z",
    }
    context = {"now": "2026-11-20T10:00:00Z"}
    for target in ("checkout", "`raw`", '" } \ndeny := true #'):
        a = native.evaluate({**action, "target": target}, context)
        b = rego.evaluate({**action, "target": target}, context)
        assert (a.decision, a.rule_ids) == (b.decision, b.rule_ids)
        assert [r["message"] for r in a.fired] == [r["message"] for r in b.fired]
    assert b.decision == "deny"
    assert b.fired[0]["message"].startswith(
        'target " } \ndeny := true #: "quoted" `tick` \\ back `raw`, {x}'
    )


@pytest.mark.parametrize(
    "condition",
    [
        "action.change.lines % 7 == 0",
        "action.change.lines / action.cost.estimated_usd > 1",
        "action.change.lines / limits.zero > 1",
    ],
)
def test_remainder_and_any_division_are_emitted_and_fail_closed_as_native(
    new_pack, make_action, valid_context, condition
):
    """`%` and `/` by a value that may be zero were refused for Rego (E601, E602, retired);
    they are emitted now, and a zero divisor fails the decision closed as native does."""
    root = new_pack(f"envelope limits {{\n  zero: 0\n}}\nrule r {{\n  deny when {condition}\n}}\n")
    program = emitted(root)
    assert program.diagnostics == () and program.ok
    native, rego = load_pack(root), load_pack(root, engine="rego")
    for cost, lines in ((0, 0), (0, 7), (2, 14)):
        action = make_action(change={"type": "code", "lines": lines}, cost={"estimated_usd": cost})
        a, b = native.evaluate(action, valid_context), rego.evaluate(action, valid_context)
        assert (a.decision, a.fail_closed, a.rule_ids, a.errors) == (
            b.decision,
            b.fail_closed,
            b.rule_ids,
            b.errors,
        )
    zero = make_action(change={"type": "code", "lines": 0}, cost={"estimated_usd": 0})
    # `% 7` never fails; a zero divisor does, naming the rule
    verdict = rego.evaluate(zero, valid_context)
    assert verdict.fail_closed == ("/" in condition)
    assert [e.get("rule") for e in verdict.errors] == (["r"] if "/" in condition else [])


def test_division_by_a_nonzero_constant_is_emitted(new_pack):
    root = new_pack("rule r {\n  deny when action.change.lines / 4 > 10\n}\n")
    assert emitted(root).ok
    pack = load_pack(root, engine="rego")
    assert pack.engine == "rego"


def test_case_folding_warns_for_the_rego_target(new_pack):
    program = emitted(new_pack('rule r {\n  deny when lower(action.target) == "x"\n}\n'))
    assert [(d.code, d.severity.name) for d in program.diagnostics] == [("W603", "WARNING")]
    assert program.ok


def test_schema_keywords_without_a_rego_check_are_diagnostics(new_pack):
    schema = {
        "type": "object",
        "properties": {
            "action": {"type": "object", "properties": {"kind": {"anyOf": [{"type": "string"}]}}},
            "context": {"type": "object"},
        },
        "required": ["action", "context"],
    }
    root = new_pack(
        "rule r {\n  deny when context.x ?? 0 > 1\n}\n",
        manifest={"input_schema": "schema.json"},
        files={"schema.json": schema},
    )
    report = compile_pack(root)
    if not report.ok:  # the checker may refuse the schema first; then nothing reaches Rego
        return
    program = emit_rego(report.compiled)
    assert "E604" in {d.code for d in program.diagnostics}


SHARED = """
rule first {
  deny when action.environment == "production" and (action.change.lines > 100 or action.change.lines < 0)
  because "one"
}

rule second {
  escalate to ["sre"] when action.environment == "production" and (action.change.lines > 100 or action.change.lines < 0)
  because "two"
}

rule third {
  warn when action.kind == "deploy"
  because "three"
}
"""


def test_a_test_the_pack_repeats_is_one_rule_and_a_test_made_once_stays_in_line(new_pack):
    source = emitted(new_pack(SHARED)).modules["aigre/t/policies/main.rego"]
    hoisted = re.findall(
        r'^(c\d+) if input\.action\["environment"\] == "production"$', source, re.M
    )
    assert len(hoisted) == 1
    assert source.count(f'\t{hoisted[0]}  # input.action["environment"] == "production"') == 2
    assert f"default {hoisted[0]} := false" in source
    assert '\tinput.action["kind"] == "deploy"\n' in source  # made once: in the rule itself


def test_parts_that_say_the_same_thing_are_one_rule(new_pack):
    source = emitted(new_pack(SHARED)).modules["aigre/t/policies/main.rego"]
    parts = re.findall(r"^(r\d+_\d+) := true if \{", source, re.M)
    assert parts == ["r0_1"]  # the `or` of the second rule is the first rule's part
    assert re.search(r"^r1 if \{[^}]*\n\tr0_1\n\}", source, re.M)


def test_checked_runs_without_the_input_checks(new_pack):
    from aigre_policy.rego.emit import checked_modules
    from aigre_policy.rego.engine import RegopyEngine

    program = emitted(new_pack(RULE))
    modules = checked_modules(program)
    assert set(program.modules) - set(modules) == {"aigre/t/decision.rego"}
    assert "date_time(" in program.modules["aigre/t/lib.rego"]  # the input checks call it
    assert "date_time(" not in modules["aigre/t/lib.rego"]
    document = {
        "action": {
            "id": "a",
            "kind": "code_patch",
            "target": "checkout",
            "environment": "production",
            "actor": {"kind": "llm", "id": "x", "trust": 3},
            "change": {"type": "code", "lines": 900},
            "reversible": True,
            "blast_radius": {"users_share": 0.1, "services": []},
            "cost": {"estimated_usd": 0},
            "requested_at": "2026-11-20T10:00:00Z",
        },
        "context": {"now": "2026-11-20T10:00:00Z"},
        "usage": {},
    }
    checked = RegopyEngine(program).decide(document)
    assert checked == RegopyEngine(program, validate_in_rego=True).decide(document)
    assert [r["id"] for r in checked["fired"]] == ["big-patch"]
