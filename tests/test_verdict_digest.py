"""A verdict's input digest and decision id: the same, however they are computed.

``Verdict.input_digest`` of an evaluated input is written by orjson when it is installed
and by the standard encoder otherwise; both must give the digest ``canonical_json`` gives,
byte for byte, for every JSON document (a log verified or replayed on another install
recomputes it).
"""

from __future__ import annotations

import math
import struct
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import verdict as verdict_module
from aigre_policy.verdict import (
    Issuer,
    Verdict,
    canonical_json,
    input_digest,
    new_decision_id,
    plain_input_digest,
    refused_input_digest,
)

orjson = pytest.importorskip("orjson")

FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | FLOATS
    | st.text()
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def standard(document: Any) -> bytes | None:
    try:
        return canonical_json(document)
    except Exception:  # a lone surrogate: input_digest falls back to the repr
        return None


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS)
def test_orjson_writes_the_canonical_bytes_or_leaves_it_to_the_standard_encoder(
    document: Any,
) -> None:
    fast = verdict_module._fast_canonical(document)
    if fast is not None:
        assert fast == standard(document)
    assert plain_input_digest(document) == input_digest(document)


@pytest.mark.parametrize("exponent", range(-330, 309))
def test_floats_of_every_magnitude_are_written_alike(exponent: int) -> None:
    for mantissa in (1.0, 1.5, 2.220446049250313, 9.999999999999998):
        value = mantissa * 10.0**exponent if exponent > -324 else 5e-324
        if not math.isfinite(value):
            continue
        for number in (value, -value):
            fast = verdict_module._fast_canonical({"n": [number]})
            assert fast is None or fast == canonical_json({"n": [number]}), number


def test_floats_from_random_bits_are_written_alike() -> None:
    import random

    rng = random.Random(5)
    for _ in range(20_000):
        (number,) = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))
        if math.isfinite(number):
            fast = verdict_module._fast_canonical([number])
            assert fast is None or fast == canonical_json([number]), number


def test_keys_sort_by_code_point_as_the_standard_encoder_sorts_them() -> None:
    keys = ["\uffff", "\U00010000", "\ud7ff", "a", "B", "é", "", "\x00", "\x7f", "\ue000"]
    document = {key: index for index, key in enumerate(keys)}
    assert verdict_module._fast_canonical(document) == canonical_json(document)


@pytest.mark.parametrize(
    "document",
    [
        {"n": 2**64},  # past orjson's integers
        {"s": "\ud800"},  # a lone surrogate: the standard encoder cannot write it either
        {"f": 1e-05},  # written 0.00001 by orjson
        {"f": 1.5e-07},  # written 1.5e-7 by orjson
    ],
)
def test_what_orjson_would_write_otherwise_goes_to_the_standard_encoder(document: Any) -> None:
    assert verdict_module._fast_canonical(document) is None
    assert plain_input_digest(document) == input_digest(document)


def test_without_orjson_the_digest_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    document = {"action": {"kind": "scale", "cost": 2.5, "tags": ["a", "é"]}, "usage": {}}
    with_orjson = plain_input_digest(document)
    monkeypatch.setattr(verdict_module, "_orjson_dumps", False)
    assert plain_input_digest(document) == with_orjson == input_digest(document)


def test_a_verdict_on_any_input_is_digested_as_before() -> None:
    """A stated verdict (``given``) may hold what is not JSON data: digested within the
    bounds (``refused_input_digest``), never by orjson's reading of a UUID or an enum."""
    odd = {"id": uuid.UUID(int=7)}
    stated = Verdict.given("deny", {"name": "p"}, odd, fail_closed=True)
    assert stated.input_digest == refused_input_digest(odd)
    plain = Verdict.given("deny", {"name": "p"}, {"id": "x"}, fail_closed=True)
    assert plain.input_digest == input_digest({"id": "x"})
    judged = Verdict("allow", [], Issuer({"name": "p"}), {"id": "x"})
    assert judged.input_digest == input_digest({"id": "x"})
    assert judged.input_digest is judged.input_digest  # taken once


def test_decision_ids_are_version_4_uuids_and_differ() -> None:
    ids = {new_decision_id() for _ in range(1000)}
    assert len(ids) == 1000
    for made in list(ids)[:50]:
        parsed = uuid.UUID(made)
        assert str(parsed) == made and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
