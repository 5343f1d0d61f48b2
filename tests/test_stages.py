"""The compiler as a list of stages, the CheckedPack it ends in, and the backend seam."""

from __future__ import annotations

import dataclasses

import pytest

from aigre_policy import compiler
from aigre_policy.compiler import STAGES, CheckedPack, Stage, compile_pack
from aigre_policy.pack import Pack, load_pack

RULE = "rule r {\n  deny when action.change.lines > 10\n}\n"


def test_the_driver_runs_the_stages_it_lists_in_their_order(new_pack):
    report = compile_pack(new_pack(RULE))
    assert report.ok
    assert report.stages_run == [s.name for s in STAGES if s.name != "rego"]


def test_a_stage_added_to_the_list_is_run(new_pack, monkeypatch):
    seen: list[str] = []

    def watch(work):
        seen.append(work.checked.manifest.name)
        return work

    extra = Stage("watch", "records the pack it sees", watch)
    monkeypatch.setattr(compiler, "STAGES", (*STAGES[:3], extra, *STAGES[3:]))
    report = compile_pack(new_pack(RULE))
    assert report.ok and "watch" in report.stages_run and len(seen) == 1


@pytest.mark.parametrize("name", ["check", "emit", "load"])
def test_a_stage_too_deep_to_run_is_one_e004_and_no_pack(new_pack, monkeypatch, name):
    def too_deep(work):
        raise RecursionError("maximum recursion depth exceeded")

    stages = tuple(dataclasses.replace(s, run=too_deep) if s.name == name else s for s in STAGES)
    monkeypatch.setattr(compiler, "STAGES", stages)
    report = compile_pack(new_pack(RULE))
    assert not report.ok and report.compiled is None
    assert [d.code for d in report.diagnostics] == ["E004"]
    assert report.stages_run[-1] == name


def test_the_checked_pack_is_immutable_and_holds_the_decision_policy(new_pack):
    pack = load_pack(new_pack(RULE))
    checked = pack.checked
    assert isinstance(checked, CheckedPack)
    assert checked.policy.default == pack.default
    assert checked.policy.fail_closed == pack.fail_closed
    assert checked.digest == pack.digest
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.digest = "sha256:0"  # type: ignore[misc]


def test_a_pack_receives_its_rego_evaluator_when_it_is_built(new_pack, make_action, valid_context):
    from aigre_policy.rego.attach import rego_backend

    report = compile_pack(new_pack(RULE))
    assert report.compiled is not None
    backend = rego_backend(report.compiled.checked, "rego", report.sources)
    pack = Pack(report.compiled, report.diagnostics, backend)
    assert pack.engine == "rego" and pack.rego is backend.program
    for lines, decision in ((20, "deny"), (1, pack.default)):
        action = make_action(change={"type": "code", "lines": lines})
        verdict = pack.evaluate(action, valid_context)
        assert not verdict.fail_closed and verdict.decision == decision
