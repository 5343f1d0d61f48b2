"""The compiler as a list of stages, the CheckedPack it ends in, and the backend seam."""

from __future__ import annotations

import dataclasses

import pytest

from aigre_policy import backend, compiler
from aigre_policy.compiler import STAGES, CheckedPack, CompiledPack, Stage, compile_pack
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


@pytest.mark.parametrize("name", ["check", "backend"])
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
    from aigre_policy.rego.attach import build

    report = compile_pack(new_pack(RULE), engine=None)
    assert report.ok and report.checked is not None and report.compiled is None
    evaluator = build(report.checked, "rego")
    pack = Pack(CompiledPack(report.checked, evaluator), report.diagnostics)
    assert pack.engine == "rego" and pack.rego is evaluator.rego
    for lines, decision in ((20, "deny"), (1, pack.default)):
        action = make_action(change={"type": "code", "lines": lines})
        verdict = pack.evaluate(action, valid_context)
        assert not verdict.fail_closed and verdict.decision == decision


@pytest.mark.parametrize("engine", ["native", "interpreter", "rego"])
def test_every_backend_reads_only_the_checked_pack(new_pack, make_action, valid_context, engine):
    """A backend built from a CheckedPack alone, the pack directory gone, judges alike."""
    import shutil

    root = new_pack(RULE)
    checked = compile_pack(root, engine=None).checked
    assert checked is not None
    shutil.rmtree(root)
    pack = Pack(CompiledPack(checked, backend.build(checked, engine)), [])
    assert pack.engine == engine
    verdict = pack.evaluate(make_action(change={"type": "code", "lines": 20}), valid_context)
    assert verdict.decision == "deny" and [r["id"] for r in verdict.fired] == ["r"]
    quiet = pack.evaluate(make_action(change={"type": "code", "lines": 1}), valid_context)
    assert quiet.decision == pack.default and not quiet.fired


def test_a_fault_in_any_engine_fails_closed_naming_the_rule(new_pack, make_action, valid_context):
    root = new_pack("rule per-line {\n  deny when action.cost.estimated_usd / usage.n > 1\n}\n")
    (root / "policies" / "usage.aigre").write_text("usage n = count() over last 1h\n")
    for engine in ("native", "interpreter"):
        pack = load_pack(root, engine=engine)
        verdict = pack.evaluate(make_action(), valid_context, {"n": 0})
        assert verdict.fail_closed and verdict.errors[0]["rule"] == "per-line", engine


def test_an_unknown_engine_is_refused(new_pack):
    with pytest.raises(ValueError, match="unknown engine"):
        load_pack(new_pack(RULE), engine="nope")
