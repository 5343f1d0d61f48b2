"""The Rego helper library against the Python runtime it mirrors, and its pruning.

Timestamps are read by ``time.parse_rfc3339_ns`` where its nanoseconds reach and by
calendar arithmetic elsewhere; ``date_time`` checks the shape with text comparisons.
Both must say what ``runtime`` and ``validation`` say, for every value the schema admits.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import regopy
from hypothesis import given, settings
from hypothesis import strategies as st
from regopy.rego_shared import LogLevel

from aigre_policy import runtime
from aigre_policy.rego.engine import _plain_input, as_term, set_input
from aigre_policy.rego.lib import LIB, library
from aigre_policy.validation import is_rfc3339_date_time

HELPERS = ("t", "hour", "minute", "weekday", "date", "date_time")


def evaluate(values: list[str], expression: str) -> list:
    """``expression`` (of ``s``) for each value, in one query: ``null`` where undefined."""
    rego = regopy.Interpreter()
    rego.log_level = LogLevel.NONE
    rego.add_module("lib.rego", f"package lib\n{LIB}")
    rego.add_module(
        "m.rego",
        "package m\nimport data.lib\n"
        "x := [y | some i; s := input[i]; y := f(s)]\n"
        f"f(s) := v if {{\n\tv := {expression}\n}} else := null\n",
    )
    rego.set_input_term(as_term(values))
    return json.loads(str(rego.query("data.m.x")))["expressions"][0]


@st.composite
def timestamps(draw) -> str:
    """RFC 3339 date-times the schema admits: years 1 to 9999 (most near the 64-bit
    nanosecond edges 1678 and 2262), any offset, fractions of any length, t and z."""
    year = draw(
        st.one_of(
            st.integers(1, 9999),
            st.integers(1670, 1690),
            st.integers(2255, 2270),
            st.integers(1960, 2040),
        )
    )
    moment = datetime(year, 1, 1) + timedelta(
        seconds=draw(st.integers(0, 365 * 86400 - 1 if year != 9999 else 364 * 86400))
    )
    fraction = draw(st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=12)))
    zone = draw(
        st.one_of(
            st.sampled_from(["Z", "z", "+00:00", "-00:00"]),
            st.tuples(st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59)).map(
                lambda z: f"{z[0]}{z[1]:02d}:{z[2]:02d}"
            ),
        )
    )
    separator = draw(st.sampled_from("Tt"))
    text = f"{moment.year:04d}-{moment:%m-%d}{separator}{moment:%H:%M:%S}"
    return f"{text}{'.' + fraction if fraction else ''}{zone}"


def native(helper: str, value: str):
    """What the runtime says, or ``None`` where it raises (a UTC year outside 1 to 9999:
    the native evaluator fails closed there, so the Rego value does not matter)."""
    try:
        return runtime.to_time(value) if helper == "t" else getattr(runtime, helper)(value)
    except (ValueError, OverflowError):
        return None


@settings(max_examples=15, deadline=None)
@given(st.lists(timestamps(), min_size=40, max_size=40))
def test_timestamps_read_as_the_runtime_reads_them(values):
    # years 1 to 9999 are all valid: the calendar arithmetic is exact where parsing is not
    assert all(datetime.fromisoformat(v.upper()).tzinfo is not None for v in values)
    seconds = evaluate(values, "lib.t(s)")
    for value, got in zip(values, seconds, strict=True):
        want = runtime.to_time(value)
        if "." in value:  # documented: the last digit of a fraction may differ
            assert math.isclose(got, want, rel_tol=1e-15, abs_tol=1e-6), value
        else:
            assert got == want, value
    for helper in ("hour", "minute", "weekday", "date"):
        got = evaluate(values, f"lib.{helper}(s)")
        want = [native(helper, v) for v in values]
        assert [g for g, w in zip(got, want, strict=True) if w is not None] == [
            w for w in want if w is not None
        ], helper


def test_the_edges_of_the_nanosecond_range_read_alike():
    edges = [
        "1677-09-21T00:12:43Z",
        "1677-12-31T23:59:59+23:59",
        "1678-01-01T00:00:00Z",
        "1678-01-01T00:00:00+23:59",
        "1969-12-31T23:59:59.999999999Z",
        "1970-01-01T00:00:00-00:01",
        "2261-12-31T23:59:59-23:59",
        "2262-01-01T00:00:00Z",
        "2262-04-11T23:47:17Z",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59.999999Z",
    ]
    assert evaluate(edges, "lib.t(s)") == [runtime.to_time(v) for v in edges]


def mutated(value: str, data) -> str:
    """``value`` with one character replaced, inserted or dropped, or a field swapped."""
    alphabet = '0123456789-:.TtZz+ x\u0663\uff15\u00e9"\\'
    chars = list(value)
    at = data.draw(st.integers(0, len(chars) - 1))
    match data.draw(st.sampled_from(["replace", "insert", "drop", "field"])):
        case "replace":
            chars[at] = data.draw(st.sampled_from(alphabet))
        case "insert":
            chars.insert(at, data.draw(st.sampled_from(alphabet)))
        case "drop":
            del chars[at]
        case "field":
            start = data.draw(st.sampled_from([0, 5, 8, 11, 14, 17]))
            width = 4 if start == 0 else 2
            field = data.draw(
                st.sampled_from(
                    ["00", "02", "12", "13", "23", "24", "28", "29", "30", "31", "59", "60"]
                )
                if width == 2
                else st.sampled_from(["0000", "0001", "1900", "2000", "2023", "2024", "9999"])
            )
            chars[start : start + width] = list(field)
    return "".join(chars)


@settings(max_examples=20, deadline=None)
@given(st.lists(timestamps(), min_size=30, max_size=30), st.data())
def test_date_time_is_the_validators_rfc3339_check(values, data):
    candidates = values + [mutated(v, data) for v in values for _ in range(2)]
    candidates += ["2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
                   "2000-02-29T12:00:00+01:00", "2025-04-31T00:00:00Z", "2025-03-11T14:02:10.Z",
                   "2025-03-11T24:00:00Z", "2025-03-11T14:02:10+24:00", "2025-03-11T14:02:10+23:60",
                   "0000-01-01T00:00:00Z", "2025-03-11 14:02:10Z", ""]  # fmt: skip
    got = evaluate(candidates, "lib.date_time(s)")
    assert got == [is_rfc3339_date_time(v) for v in candidates]


def test_the_library_keeps_what_is_called_and_what_that_calls():
    kept = library(["x := lib.hour(t0)"])
    defined = {
        line.split("(")[0].split(" ")[0]
        for line in kept.splitlines()
        if line[:1].isalpha() or line[:1] == "_"
    }
    assert {"hour", "t", "ts", "_ts_calendar", "days_from_civil", "mod"} <= defined
    assert not defined & {"date_time", "problems", "fmt", "weekday", "duration_text"}
    assert library([]).strip() == ""  # nothing called: no helper at all
    rego = regopy.Interpreter()
    rego.log_level = LogLevel.NONE
    rego.add_module("lib.rego", f"package lib\n{kept}")
    rego.add_module("m.rego", "package m\nimport data.lib\nx := lib.hour(3600 * 5 + 7)\n")
    assert json.loads(str(rego.query("data.m.x")))["expressions"] == [5]


# ---------------------------------------------------------------- input setting

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(-1e18, 1e18, allow_nan=False, allow_infinity=False).filter(
        lambda f: f == 0 or abs(f) > 1e-300
    )
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_plain_input_takes_the_fast_path_and_the_rest_the_json_text():
    assert _plain_input({"a": ["x", 1, 2.5, True, None, {"b": "é"}]})
    for odd in ('say "hi"', "back\\slash", "tab\there", 2**64, 0.1 + 0.2, 1e-7, -0.0, 1e16):
        assert not _plain_input({"a": odd}), odd
    assert not _plain_input({'k"': 1})


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=4), JSON, max_size=4))
def test_either_way_of_setting_input_gives_the_same_answers(document):
    module = (
        "package m\n"
        "keys := [k | some k; input[k]]\n"
        "types := [t | some k; t := type_name(input[k])]\n"
        "tripled := [y | some k; is_number(input[k]); y := input[k] * 3]\n"
        'matches := [y | some k; is_string(input[k]); y := input[k] == "x"]\n'
        "x := [input, keys, count(input), types, tripled, matches]\n"
    )
    answers = []
    for fast in (True, False):
        rego = regopy.Interpreter()
        rego.log_level = LogLevel.NONE
        rego.add_module("m.rego", module)
        if fast:
            set_input(rego, document)
        else:
            rego.set_input_term(as_term(document))
        answers.append(str(rego.query("data.m.x")))
    assert answers[0] == answers[1]
