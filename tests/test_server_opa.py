"""OPA clients work unchanged against ``aigre-policy serve``: the project's own ``opa``
engine, pointed at a real ``serve`` process, decides every fixture as native does."""

from __future__ import annotations

import pytest
from conftest import fixture_input, verdict_core
from serving import ROOT, serve_process

pytest.importorskip("starlette")

from aigre_policy.pack import load_pack
from aigre_policy.rego.engine import ENGINES, register_engine
from aigre_policy.rego.opa_server import OpaOptions, opa_engine

BASELINE = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    ledger = tmp_path_factory.mktemp("opa") / "ledger.db"
    with serve_process(str(BASELINE), "--ledger", f"sqlite:///{ledger}") as url:
        yield url


def test_the_opa_engine_on_serve_decides_every_fixture_as_native(served):
    register_engine("opa-serve", opa_engine(OpaOptions(url=served, timeout=30)))
    try:
        remote = load_pack(BASELINE, engine="opa-serve")
        native = load_pack(BASELINE)
        decisions = set()
        for path in FIXTURES:
            document = fixture_input(path)
            args = (document["action"], document["context"], document["usage"])
            expected = native.evaluate(*args).to_dict()
            answered = remote.evaluate(*args).to_dict()
            assert verdict_core(answered) == verdict_core(expected), path.name
            decisions.add(expected["decision"])
        assert decisions == {"allow", "deny", "require_approval", "escalate"}
        assert len(FIXTURES) > 50
    finally:
        ENGINES.pop("opa-serve", None)


def test_an_input_breaking_the_schema_fails_closed_on_both(served):
    register_engine("opa-serve", opa_engine(OpaOptions(url=served, timeout=30)))
    try:
        remote = load_pack(BASELINE, engine="opa-serve")
        verdict = remote.evaluate({"kind": "rollback"}, {}, {})
        assert verdict.fail_closed and verdict.decision != "allow"
    finally:
        ENGINES.pop("opa-serve", None)
