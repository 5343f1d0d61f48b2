"""The default pack compiles clean and every labelled fixture gets the verdict it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigre_policy import load_pack
from aigre_policy.compiler import compile_pack
from aigre_policy.models.verdict import VerdictDocument
from aigre_policy.yamlio import read_document

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))


@pytest.fixture(scope="module")
def pack():
    return load_pack(PACK)


def test_default_pack_compiles_without_any_diagnostic():
    report = compile_pack(PACK)
    assert report.ok
    assert report.diagnostics == []


def test_corpus_is_large_and_covers_every_decision():
    decisions = set()
    for path in FIXTURES:
        doc, problems = read_document(path)
        assert doc is not None, problems
        decisions.add(doc.data["expect"]["decision"])
    assert len(FIXTURES) >= 30
    assert decisions == {"allow", "escalate", "require_approval", "deny"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_gets_its_expected_verdict(pack, path):
    doc, _ = read_document(path)
    case = doc.data
    verdict = pack.evaluate(case["action"], case["context"], case.get("usage"))
    assert not verdict.fail_closed, verdict.errors
    assert verdict.decision == case["expect"]["decision"]
    fired = sorted(verdict.rule_ids + [w["id"] for w in verdict.warnings])
    assert fired == sorted(case["expect"].get("rules", []))
    for record in verdict.fired + verdict.warnings:
        assert record["message"]
        assert record["bindings"], f"{record['id']} fired without evidence"
    VerdictDocument.model_validate(verdict.to_dict())


def test_every_rule_of_the_default_pack_fires_in_some_fixture(pack):
    seen: set[str] = set()
    for path in FIXTURES:
        case = read_document(path)[0].data
        verdict = pack.evaluate(case["action"], case["context"], case.get("usage"))
        seen.update(verdict.rule_ids)
        seen.update(w["id"] for w in verdict.warnings)
    assert {r.id for r in pack.rules} - seen == set()
