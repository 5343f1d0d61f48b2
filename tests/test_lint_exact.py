"""The exact lint: L101-L103 and L105 decided by the solver for any condition.

Each case is a pack the range search cannot settle (arithmetic, two fields compared,
`has` guards, enums compared with each other, lengths) and its near twin: the exact
lint reports the first with a proof note and stays quiet on the second. A rule that
only looks dead — dead in the solver's whole seconds or cut-short lists — is left to
the range search with a note, never reported. Every witness the solver gives is
judged again by a freshly loaded pack.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("z3")

from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.lint import lint_pack
from aigre_policy.pack import load_pack
from aigre_policy.solver.lint import SAT, UNSAT, RuleQuestions
from aigre_policy.testing.runner import fired_ids

DENY_DEFAULT = {"default": "deny"}


def rule(body: str, rule_id: str = "r") -> str:
    return f'rule {rule_id} {{\n  severity: high\n  {body}\n  because "it fired"\n}}\n'


def lint(pack: Path, *, exact: bool = True) -> tuple[list[Diagnostic], tuple[str, ...]]:
    report = compile_pack(pack)
    assert report.ok, [d.message for d in report.diagnostics]
    result = lint_pack(report, exact=exact)
    return result.findings, result.notes


def of(found: list[Diagnostic], code: str) -> list[Diagnostic]:
    return [d for d in found if d.code == code]


# (code, pack the range search cannot settle, its twin that is fine, manifest)
CASES = [
    pytest.param(
        "L101",
        rule(
            "deny when action.actor.trust > 3 and (action.change.lines ?? 0) < 3 "
            "and action.actor.trust < (action.change.lines ?? 0) - 10"
        ),
        rule(
            "deny when action.actor.trust > 3 and (action.change.lines ?? 0) > 3 "
            "and action.actor.trust < (action.change.lines ?? 0) - 10"
        ),
        None,
        id="arithmetic-across-fields",
    ),
    pytest.param(
        "L101",
        rule("deny when action.environment == action.kind"),
        rule('deny when action.environment == action.kind or action.kind == "deploy"'),
        None,
        id="enums-with-no-common-value",
    ),
    pytest.param(
        "L101",
        rule("deny when has action.data.records and (action.data.records ?? (-1)) < 0"),
        rule("deny when not has action.data.records and (action.data.records ?? (-1)) < 0"),
        None,
        id="has-guard",
    ),
    pytest.param(
        "L101",
        # the schema gives `lines` a default: `has` holds whether the proposal names it or not
        rule("deny when not has action.change.lines and action.actor.trust > 2"),
        rule("deny when not has action.data.records and action.actor.trust > 2"),
        None,
        id="has-on-a-field-the-schema-defaults",
    ),
    pytest.param(
        "L101",
        rule("deny when len(action.approvals ?? []) > 40"),
        rule("deny when len(action.approvals ?? []) > 30"),
        None,
        id="length-past-max-items",
    ),
    pytest.param(
        "L102",
        rule("deny when action.environment != action.kind"),
        rule('deny when action.environment != action.kind and action.kind != "deploy"'),
        None,
        id="always-by-enums",
    ),
    pytest.param(
        "L102",
        rule("deny when action.actor.trust * 2 <= 10"),
        rule("deny when action.actor.trust * 2 <= 9"),
        None,
        id="always-by-arithmetic",
    ),
    pytest.param(
        "L103",
        rule("escalate when action.actor.trust + (action.change.lines ?? 0) > 50", "a")
        + rule("deny when (action.change.lines ?? 0) > 45", "b"),
        rule("escalate when action.actor.trust + (action.change.lines ?? 0) > 50", "a")
        + rule("deny when (action.change.lines ?? 0) > 46", "b"),
        None,
        id="shadowed-through-arithmetic",
    ),
    pytest.param(
        "L105",
        rule('permit when action.kind == "restart" and action.actor.trust >= 3', "p")
        + rule("deny when action.actor.trust + (action.change.lines ?? 0) > 100", "d"),
        rule('permit when action.kind == "restart" and action.actor.trust >= 3', "p")
        + rule(
            "deny when action.actor.trust + (action.change.lines ?? 0) > 100 "
            'and action.kind != "restart"',
            "d",
        ),
        DENY_DEFAULT,
        id="permit-overruled",
    ),
]


@pytest.mark.parametrize(("code", "bad", "good", "manifest"), CASES)
def test_the_solver_finds_what_the_range_search_misses(new_pack, code, bad, good, manifest):
    pack = new_pack(bad, manifest=manifest)
    assert of(lint(pack, exact=False)[0], code) == []  # the range search alone misses it
    found = of(lint(pack)[0], code)
    assert len(found) == 1, found
    if code == "L105":
        assert "both fire on" in found[0].message
    else:
        assert "proved by the solver" in found[0].message
    assert of(lint(new_pack(good, manifest=manifest))[0], code) == []


def test_a_range_search_finding_is_not_reported_twice(new_pack):
    pack = new_pack(rule("deny when action.actor.trust > 5"))
    (finding,) = of(lint(pack)[0], "L101")
    assert "proved by the solver" not in finding.message


def test_a_conflict_carries_a_witness_the_engine_confirms(new_pack):
    pack_dir = new_pack(
        rule('permit when action.kind == "restart" and action.actor.trust >= 3', "p")
        + rule("deny when action.actor.trust + (action.change.lines ?? 0) > 100", "d"),
        manifest=DENY_DEFAULT,
    )
    (finding,) = of(lint(pack_dir)[0], "L105")
    assert 'action.kind = "restart"' in finding.message
    pack = load_pack(pack_dir)
    report = compile_pack(pack_dir)
    questions = RuleQuestions(report.compiled.checked, pack)
    answer = questions.fire_together("p", "d")
    assert answer.status == SAT
    verdict = load_pack(pack_dir).evaluate(**_inputs(answer.document))
    assert not verdict.fail_closed and {"p", "d"} <= set(fired_ids(verdict))


def test_a_rule_dead_only_in_whole_seconds_is_not_reported(new_pack, make_action):
    """Between two whole seconds there is no whole second, but the engine reads fractions:
    the rule fires at half a second past, so it is no L101, and a note says why."""
    pack_dir = new_pack(
        rule(
            "deny when context.now > action.requested_at and context.now < action.requested_at + 1s"
        )
    )
    found, notes = lint(pack_dir)
    assert of(found, "L101") == []
    assert any("whole seconds" in n for n in notes), notes
    verdict = load_pack(pack_dir).evaluate(
        make_action(requested_at="2026-11-20T10:00:00Z"), {"now": "2026-11-20T10:00:00.500Z"}
    )
    assert verdict.decision == "deny" and not verdict.fail_closed


def test_a_proof_over_a_cut_short_list_is_left_to_the_range_search(new_pack):
    pack_dir = new_pack(
        rule('deny when any(s in action.blast_radius.services ?? []: s == "a" and s == "b")')
    )
    found, notes = lint(pack_dir)
    assert of(found, "L101") == []
    assert any("at most 3 items of `action.blast_radius.services`" in n for n in notes), notes


def test_a_rule_that_only_looks_dead_gets_a_witness_the_engine_confirms(new_pack):
    pack_dir = new_pack(
        rule(
            "deny when action.actor.trust > 3 and (action.change.lines ?? 0) > 3 "
            "and action.actor.trust * 10 < (action.change.lines ?? 0) "
            "and action.cost.estimated_usd * 3 > action.blast_radius.users_share * 1000"
        )
    )
    found, _ = lint(pack_dir)
    assert not of(found, "L101") and not of(found, "L102")
    pack = load_pack(pack_dir)
    questions = RuleQuestions(compile_pack(pack_dir).compiled.checked, pack)
    questions.judged.clear()  # no free witness: the solver must find it
    for answer, fires in (
        (questions.can_fire("r", witness=True), True),
        (questions.can_stay_quiet("r", witness=True), False),
    ):
        assert answer.status == SAT
        verdict = load_pack(pack_dir).evaluate(**_inputs(answer.document))
        assert not verdict.fail_closed and ("r" in verdict.rule_ids) is fires


def test_every_proof_survives_a_random_search(new_pack):
    """What the solver proves dead, no generated input makes fire."""
    from aigre_policy.testing.strategies import collect_hints, documents

    dead = rule("deny when action.environment == action.kind", "e")
    pack_dir = new_pack(CASES[0].values[1] + dead)
    pack = load_pack(pack_dir)
    questions = RuleQuestions(compile_pack(pack_dir).compiled.checked, pack)
    assert questions.can_fire("r").status == UNSAT and questions.can_fire("e").status == UNSAT

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(documents(pack.input_schema, collect_hints(pack.program, pack.envelopes)))
    def search(document):
        verdict = pack.evaluate(**_inputs(document))
        assert not {"r", "e"} & set(verdict.rule_ids)

    search()


def test_without_z3_the_range_search_decides_and_a_note_says_so(new_pack, monkeypatch):
    monkeypatch.setitem(sys.modules, "aigre_policy.solver.lint", None)  # import fails
    pack = new_pack(rule("deny when action.environment == action.kind"))
    found, notes = lint(pack)
    assert of(found, "L101") == []
    assert any("z3 is not installed" in n for n in notes), notes


def test_check_strict_reports_the_exact_finding_and_the_notes(new_pack, capsys, plain_console):
    from aigre_policy.cli.main import main

    pack = new_pack(
        rule("deny when action.environment == action.kind", "dead")
        + rule('deny when any(s in action.blast_radius.services ?? []: s == "a" and s == "b")')
    )
    assert main(["check", "--strict", str(pack)]) == 1
    out = capsys.readouterr().out
    assert "error[L101]: rule `dead` never fires" in out and "proved by the solver" in out
    assert "note: the solver left questions about 1 rule to the range search" in out
    assert main(["check", "--strict", "--format", "json", str(pack)]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert report["lint_notes"] and [d["code"] for d in report["diagnostics"]].count("L101") == 1


def _inputs(document):
    return {
        "action": document["action"],
        "context": document["context"],
        "usage": document["usage"],
    }


_TERMS = ["action.actor.trust", "(context.actor.trust ?? 0)"]  # absent reads as 0: in range


@st.composite
def _conditions(draw, depth: int = 2) -> str:
    """Linear arithmetic over two fields of 0..5, combined with and/or/not."""
    if depth == 0 or draw(st.booleans()):
        a, b = draw(st.permutations(_TERMS))
        left = draw(st.sampled_from([a, f"{a} + {b}", f"{a} * 2", f"{a} - {b}"]))
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        right = draw(st.sampled_from([str(draw(st.integers(-3, 12))), b, f"{b} + 3"]))
        return f"{left} {op} {right}"
    left, right = draw(_conditions(depth - 1)), draw(_conditions(depth - 1))
    form = draw(st.sampled_from(["({}) and ({})", "({}) or ({})", "not ({}) and ({})"]))
    return form.format(left, right)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(condition=_conditions())
def test_the_solver_agrees_with_every_input_of_a_small_domain(tmp_path_factory, condition):
    """Two fields of 0..5 are every input that matters: the solver's never/always answers
    agree with evaluating all 36, and its witnesses reproduce."""
    from conftest import CONTEXT, _action, write_pack

    root = write_pack(tmp_path_factory.mktemp("small"), rule(f"deny when {condition}"))
    pack = load_pack(root)
    fires = set()
    for mine in range(6):
        for theirs in range(6):
            action = _action(actor={"kind": "llm", "id": "a", "trust": mine})
            context = {**CONTEXT, "actor": {"kind": "llm", "id": "a", "trust": theirs}}
            verdict = pack.evaluate(action, context)
            assert not verdict.fail_closed, verdict.errors
            fires.add("r" in verdict.rule_ids)
    questions = RuleQuestions(compile_pack(root).compiled.checked, pack)
    questions.judged.clear()
    fire, quiet = questions.can_fire("r"), questions.can_stay_quiet("r")
    assert (fire.status == UNSAT) == (True not in fires), condition
    assert (quiet.status == UNSAT) == (False not in fires), condition


def test_ci_says_the_same_notes_as_check_strict(new_pack, capsys, plain_console):
    """What the linter left undecided is told by ``ci`` too, in text and in JSON."""
    from aigre_policy.cli.main import main

    pack = new_pack(
        rule('deny when any(s in action.blast_radius.services ?? []: s == "a" and s == "b")')
    )
    main(["check", "--strict", "--format", "json", str(pack)])
    (checked,) = json.loads(capsys.readouterr().out)
    assert checked["lint_notes"]
    main(["ci", str(pack)])
    out = capsys.readouterr().out
    assert all(f"note: {note}" in out for note in checked["lint_notes"])
    main(["ci", "--format", "json", str(pack)])
    (result,) = json.loads(capsys.readouterr().out)["packs"]
    assert result["lint_notes"] == checked["lint_notes"]
