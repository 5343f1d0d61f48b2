"""``aigre_policy.plain``: a caller's value as JSON data, its fast check and the bounds."""

from __future__ import annotations

import json
import time
from collections import OrderedDict, UserDict
from collections.abc import Iterator, Mapping
from datetime import date
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from aigre_policy.plain import BOUNDS, Bounds, NotPlain, _Conversion, _fits, as_plain


class Text(str):
    pass


class Whole(int):
    pass


class Real(float):
    pass


def rejected(value: Any, bounds: Bounds = BOUNDS, root: str = "") -> NotPlain:
    with pytest.raises(NotPlain) as raised:
        as_plain(value, root, bounds)
    return raised.value


# -- JSON data: the same object, never a copy -------------------------------------------------


def test_plain_data_is_returned_as_it_is() -> None:
    value = {"a": [1, 2.5, "x", None, True, {"b": []}]}
    assert as_plain(value) is value


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=30,
)


def clothed(value: Any, data: st.DataObject) -> Any:
    """``value`` with each container and scalar in a wrapper ``data`` chooses."""
    pick = data.draw
    if isinstance(value, dict):
        items = {pick(st.sampled_from([str, Text]))(k): clothed(v, data) for k, v in value.items()}
        return pick(st.sampled_from([dict, OrderedDict, MappingProxyType, UserDict]))(items)
    if isinstance(value, list):
        return pick(st.sampled_from([list, tuple]))([clothed(v, data) for v in value])
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return pick(st.sampled_from([str, Text]))(value)
    if isinstance(value, int):
        return pick(st.sampled_from([int, Whole]))(value)
    return pick(st.sampled_from([float, Real]))(value)


def exact(value: Any) -> bool:
    """Whether every container and scalar in ``value`` has an exact JSON type."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and exact(v) for k, v in value.items())
    if kind is list:
        return all(exact(v) for v in value)
    return kind in (str, int, float, bool, type(None))


@settings(max_examples=150, deadline=None)
@given(JSON, st.data())
def test_any_clothing_reads_as_the_json_round_trip(value: Any, data: st.DataObject) -> None:
    document = {"v": clothed(value, data)}
    converted = as_plain(document)
    assert converted == json.loads(json.dumps({"v": value}))
    assert exact(converted)


# A bound small enough for generated values to cross every one of them.
SMALL = Bounds(depth=4, items=4, values=12, text=12, digits=5)

ANY_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats()
    | st.text(max_size=6)
    | st.builds(Text, st.text(max_size=3))
    | st.integers(-(10**7), 10**7).map(Whole)
    | st.sampled_from([b"x", 1j, ..., frozenset(), date(2026, 1, 1), object()]),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=2) | st.integers(0, 3), inner, max_size=5)
        | st.dictionaries(st.text(max_size=2), inner, max_size=3).map(OrderedDict)
        | st.lists(inner, max_size=3).map(tuple)
        | st.lists(st.text(max_size=2), max_size=3).map(set)
    ),
    max_leaves=40,
)


@settings(max_examples=250, deadline=None)
@given(ANY_VALUE)
def test_the_fast_check_never_accepts_what_the_conversion_refuses(value: Any) -> None:
    """The fast check decides alone on the hot path: it may only say yes to what the
    conversion accepts unchanged."""
    document = {"v": value}
    try:
        converted: Any = _Conversion(SMALL).value(document, [])
    except NotPlain as exc:
        converted = exc
    if _fits(document, 0, SMALL):
        assert converted == document
        assert as_plain(document, "", SMALL) is document
    elif isinstance(converted, NotPlain):
        assert rejected(document, SMALL).problem() == converted.problem()
    else:
        assert as_plain(document, "", SMALL) == converted


# -- what JSON cannot carry ---------------------------------------------------------------------


def test_a_key_that_reads_twice_once_plain_is_refused() -> None:
    class Twice(Mapping):
        def __getitem__(self, key: str) -> int:
            return 1

        def __iter__(self) -> Iterator[str]:
            return iter(["a", Text("a")])

        def __len__(self) -> int:
            return 2

    assert rejected({"m": Twice()}).path == "m.a"


def test_a_mapping_that_cannot_be_read_is_refused_naming_it() -> None:
    class Broken(Mapping):
        def __getitem__(self, key: str) -> int:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError("gone")

        def __len__(self) -> int:
            return 1

    error = rejected({"a": {"b": Broken()}})
    assert (error.path, error.message) == ("a.b", "cannot be read: RuntimeError")


def test_a_pydantic_model_inside_the_data_reads_as_its_json_dump() -> None:
    class Actor(BaseModel):
        kind: str
        trust: int | None = None

    assert as_plain({"actor": Actor(kind="llm")}) == {"actor": {"kind": "llm"}}


def test_paths_start_at_the_root_given() -> None:
    assert rejected({"a": [1, {2}]}, root="action").path == "action.a[1]"
    assert rejected({"odd key": b"x"}, root="action").path == 'action["odd key"]'


def test_a_shared_value_is_data_but_a_cycle_is_not() -> None:
    shared = ["x"]
    assert as_plain({"a": shared, "b": (shared, shared)}) == {"a": ["x"], "b": [["x"], ["x"]]}
    loop: dict[str, Any] = {}
    loop["self"] = loop
    assert rejected({"a": loop}).path == "a.self"


# -- the bounds ---------------------------------------------------------------------------------


def deep(levels: int) -> Any:
    """A document whose longest path has ``levels`` steps."""
    value: Any = 0
    for _ in range(levels - 1):
        value = [value]
    return {"a": value}


@pytest.mark.parametrize("wrap", [lambda v: v, OrderedDict], ids=["plain", "converted"])
def test_each_bound_admits_its_limit_and_refuses_one_more(wrap) -> None:
    """Checked on plain data (the fast check) and on data that must be converted."""
    cases = {
        "depth": (deep(BOUNDS.depth), deep(BOUNDS.depth + 1)),
        "items": ({"a": [0] * BOUNDS.items}, {"a": [0] * (BOUNDS.items + 1)}),
        "values": (
            {f"k{i}": [0] * 999 for i in range(10)},  # 10 + 9990 values
            {f"k{i}": [0] * 999 for i in range(11)},
        ),
        "text": (
            {"a": "x" * (BOUNDS.text // 2), "b": "y" * (BOUNDS.text // 2)},
            {"a": "x" * (BOUNDS.text // 2), "b": "y" * (BOUNDS.text // 2 + 1)},
        ),
        "digits": ({"a": -(10**BOUNDS.digits - 1)}, {"a": 10**BOUNDS.digits}),
    }
    for name, (limit, past) in cases.items():
        assert as_plain(wrap(limit)) == limit, name
        error = rejected(wrap(past))
        assert error.keyword == "bounds", name
        assert "evaluation bound" in error.message, name


def test_a_value_shared_many_times_is_counted_each_time_and_refused_fast() -> None:
    """2**40 values by reference: refused without walking them."""
    value: Any = "x"
    for _ in range(40):
        value = [value, value]
    started = time.perf_counter()
    error = rejected({"a": value}, bounds=Bounds(depth=64))
    assert time.perf_counter() - started < 1.0
    assert error.keyword == "bounds" and "10000 values" in error.message


def test_a_mapping_that_never_ends_is_read_one_past_the_bound_and_refused() -> None:
    class Endless(Mapping):
        def __getitem__(self, key: str) -> int:
            return 0

        def __iter__(self) -> Iterator[str]:
            n = 0
            while True:
                yield f"k{n}"
                n += 1

        def __len__(self) -> int:
            return 1

    error = rejected({"a": Endless()})
    assert (error.path, error.keyword) == ("a", "bounds")
    assert error.message == f"has more than {BOUNDS.items} members (evaluation bound)"
