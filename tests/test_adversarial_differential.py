"""Adversarial differential: random well-typed packs, random valid inputs, three engines.

Each generated pack (``strategies_packs.packs``: every verdict kind, every construct,
over a small custom schema) is compiled once; every generated input is judged by the
native evaluator, the reference interpreter and the Rego engine (regopy). They must
agree on the decision, on fail-closed, and rule by rule on the ids, verdicts,
messages and bindings; native and Rego also on defaults, groups and metadata.

Counts: ``adversarial.count`` (``AIGRE_ADVERSARIAL_SCALE`` multiplies them).
"""

from __future__ import annotations

from hypothesis import event, given
from hypothesis import strategies as st

from adversarial import bounded, comparable, engines, from_verdict, pack_on_disk, reference
from aigre_policy.compiler import compile_pack
from strategies_packs import documents, packs

PACKS = 20  # generated packs per run (each also built for Rego)
INPUTS = 8  # inputs judged per pack, on each of three engines


def agree(native, rego, document) -> str:
    """The three engines judge ``document`` alike; the decision they agree on."""
    expected = reference(native, document)
    got = native.evaluate(document["action"], document["context"], document["usage"])
    assert from_verdict(got) == expected if not got.fail_closed else {
        "decision": got.decision,
        "fail_closed": True,
        "rules": [],
    } == expected
    on_rego = rego.evaluate(document["action"], document["context"], document["usage"])
    assert comparable(on_rego) == comparable(got)
    event(f"decision {got.decision}{' (failed closed)' if got.fail_closed else ''}")
    event(f"{len(expected['rules'])} rules fired")
    return got.decision


@bounded(PACKS)
@given(packs(), st.data())
def test_random_packs_agree_on_native_interpreter_and_rego(spec, data):
    with pack_on_disk(spec) as root:
        report = compile_pack(root)
        assert report.ok, [str(d) for d in report.diagnostics]
        native, rego = engines(root)
        for document in data.draw(st.lists(documents(), min_size=INPUTS, max_size=INPUTS)):
            agree(native, rego, document)
