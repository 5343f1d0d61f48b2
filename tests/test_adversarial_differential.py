"""Adversarial differential: random well-typed packs, random valid inputs, three engines.

Each generated pack (``strategies_packs.packs``: every verdict kind, every construct,
over a small custom schema) is compiled once; every generated input is judged by the
native evaluator, the reference interpreter and the Rego engine (regopy). They must
agree on the decision, on failing closed, and rule by rule on the ids, verdicts,
messages and bindings; native and Rego also on defaults, groups and metadata. The same
inputs passed as OrderedDict, MappingProxyType, UserDict, tuples or str/int subclasses
get the verdict of their JSON round trip on native and Rego.

Counts: ``adversarial.count`` (``AIGRE_ADVERSARIAL_SCALE`` multiplies them).
"""

from __future__ import annotations

from collections import OrderedDict, UserDict
from types import MappingProxyType
from typing import Any

from adversarial import (
    bounded,
    built,
    comparable,
    engines,
    from_verdict,
    pack_on_disk,
    reference,
)
from hypothesis import event, given
from hypothesis import strategies as st
from strategies_packs import documents, packs

from aigre_policy.compiler import compile_pack
from aigre_policy.pack import load_pack

PACKS = 8  # generated packs judged on three engines (each also built for Rego)
INPUTS = 6  # inputs judged per pack
NATIVE_PACKS = 12  # packs using what Rego refuses, with any text: native and interpreter


def native_agrees_with_reference(native, document) -> Any:
    expected = reference(native, document)
    got = native.evaluate(document["action"], document["context"], document["usage"])
    if got.fail_closed:
        assert expected == {"decision": got.decision, "fail_closed": True, "rules": []}
        assert got.decision != "allow"
    else:
        assert from_verdict(got) == expected
    event(f"decision {got.decision}{' (failed closed)' if got.fail_closed else ''}")
    event(f"{len(expected['rules'])} rules fired")
    return got


@bounded(PACKS)
@given(packs(), st.data())
def test_random_packs_agree_on_native_interpreter_and_rego(spec, data):
    with pack_on_disk(spec) as root:
        report = compile_pack(root)
        assert report.ok, [str(d) for d in report.diagnostics]
        native, rego = engines(root)
        # with exemptions, the bundle too: its own Rego lists what they kept from firing
        bundle = built(root) if "exemptions" in spec else None
        for document in data.draw(st.lists(documents(), min_size=INPUTS, max_size=INPUTS)):
            got = native_agrees_with_reference(native, document)
            on_rego = rego.evaluate(document["action"], document["context"], document["usage"])
            assert comparable(on_rego) == comparable(got)
            if bundle is not None:
                event(f"exempted {len(got.exempted)}")
                judged = bundle.evaluate(document["action"], document["context"], document["usage"])
                assert comparable(judged) == comparable(got)


@bounded(NATIVE_PACKS)
@given(packs(portable=False, hostile=True), st.data())
def test_random_packs_with_any_text_and_arithmetic_agree_on_native_and_interpreter(spec, data):
    """``%``, divisors that may be zero (fail closed on both), and strings with quotes,
    backslashes, control characters and non-ASCII case folding."""
    with pack_on_disk(spec) as root:
        native = load_pack(root)
        for document in data.draw(
            st.lists(documents(hostile=True), min_size=INPUTS, max_size=INPUTS)
        ):
            native_agrees_with_reference(native, document)


@bounded(PACKS // 2)
@given(packs(hostile=True, folding=False), st.data())
def test_rego_on_hostile_text_agrees_or_fails_closed(spec, data):
    """Text rego-cpp keeps escaped inside (docs/rego.md, known limits) may make the rego
    engine fail closed where native decides; it must never decide otherwise. Case
    folding of non-ASCII letters is a documented difference (W603), left out here."""
    with pack_on_disk(spec) as root:
        native, rego = engines(root)
        for document in data.draw(
            st.lists(documents(hostile=True), min_size=INPUTS, max_size=INPUTS)
        ):
            got = native.evaluate(document["action"], document["context"], document["usage"])
            on_rego = rego.evaluate(document["action"], document["context"], document["usage"])
            if on_rego.fail_closed and not got.fail_closed:
                event("rego failed closed where native decided")
                assert on_rego.decision == rego.fail_closed != "allow"
                continue
            assert comparable(on_rego) == comparable(got)


# ---------------------------------------------------------------- the same input, other types


class Text(str):
    pass


class Whole(int):
    pass


def wrapped(value: Any, how: str) -> Any:
    """``value`` with its mappings, lists or scalars in another Python type, same JSON."""
    if isinstance(value, dict):
        inner = {k: wrapped(v, how) for k, v in value.items()}
        kinds = {"OrderedDict": OrderedDict, "MappingProxyType": MappingProxyType}
        return kinds.get(how, UserDict if how == "UserDict" else dict)(inner)
    if isinstance(value, list):
        items = [wrapped(v, how) for v in value]
        return tuple(items) if how == "tuple" else items
    if how == "subclass" and isinstance(value, str):
        return Text(value)
    if how == "subclass" and isinstance(value, int) and not isinstance(value, bool):
        return Whole(value)
    return value


WRAPPERS = ("OrderedDict", "MappingProxyType", "UserDict", "tuple", "subclass")


@bounded(PACKS // 2)
@given(packs(), st.data())
def test_an_input_in_other_python_types_gets_the_verdict_of_its_json(spec, data):
    """Any value a caller passes is judged as its JSON round trip, or fails closed."""
    with pack_on_disk(spec) as root:
        native, rego = engines(root)
        for document in data.draw(st.lists(documents(), min_size=2, max_size=2)):
            how = data.draw(st.sampled_from(WRAPPERS))
            other = {root_: wrapped(v, how) for root_, v in document.items()}
            for pack in (native, rego):
                plain = comparable(pack.evaluate(**document))
                verdict = pack.evaluate(**other)
                assert verdict.fail_closed or comparable(verdict) == plain, how
