"""Hypothesis strategies that generate JSON values valid against a JSON Schema (draft 2020-12).

Covers what pack input schemas use: ``type`` (one or a list), ``enum``, ``const``,
``properties``/``required``/``additionalProperties``/``patternProperties``, ``items``,
``minItems``/``maxItems``/``uniqueItems``/``contains``, number bounds (inclusive and
exclusive) and ``multipleOf``, string lengths, ``pattern``, ``format`` (``date-time`` as
RFC 3339, ``duration`` as ISO 8601; other formats are annotations), local ``$ref`` into
``$defs``/``definitions`` (recursion bounded), ``allOf``/``anyOf``/``oneOf``/``not`` and
``if``/``then``/``else``. ``nullable`` is not a 2020-12 keyword and adds nothing: ``null``
comes only from ``type``, ``enum`` or a branch that allows it.

Values are built to fit; the keywords that cannot be built directly (``not``, ``oneOf``'s
"exactly one", ``if``, overlapping property patterns, ...) are kept by filtering the built
values through jsonschema, the same referee the input validator is tested against.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from aigre_policy.validation import is_rfc3339_date_time, local_ref_target

__all__ = ["UnsupportedSchema", "from_schema", "json_values"]

TINY_NUMBER = 1e-307  # rego-cpp cannot read a number this close to zero (rego.engine.TINY)
_EXACT = 2**53 - 1  # the largest magnitude every engine holds as an exact integer
_RECURSION = 2  # a recursive $ref expands this many times with optional parts, then bare
_MAX_RECURSION = 10  # past this, only an infinitely deep value would fit: nothing
_EXTRA_ITEMS = 4  # past minItems: lists stay short, so documents stay small
_EXTRA_PROPERTIES = 3
_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
_ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$comment", "$defs", "definitions", "title", "description",
        "default", "examples", "deprecated", "readOnly", "writeOnly", "nullable",
        "contentEncoding", "contentMediaType", "contentSchema", "$anchor", "$vocabulary",
    }
)  # fmt: skip
_PROPERTY_WORDS = frozenset({"properties", "patternProperties", "additionalProperties"})
# Keywords that constrain a value only by filtering what the rest of the schema built.
_FILTERED = frozenset({"not", "if", "then", "else", "propertyNames", "dependentRequired"})
_UNSUPPORTED = frozenset(
    {"$dynamicRef", "$dynamicAnchor", "$recursiveRef", "unevaluatedProperties",
     "unevaluatedItems", "prefixItems", "additionalItems", "dependencies", "dependentSchemas"}
)  # fmt: skip


Trail = tuple[str, ...]  # the $refs followed on the way to a subschema


class UnsupportedSchema(ValueError):
    """The schema uses a construct the generator does not build."""


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value, small: what ``{}`` or ``true`` allows."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        _floats(None, None, False, False),
        st.text(max_size=10),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.text(max_size=6), inner, max_size=3),
        ),
        max_leaves=max_leaves,
    )


def from_schema(schema: Any, root: Mapping[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values valid against ``schema``; ``$ref``s resolve against ``root`` (default: itself)."""
    base = schema if root is None else root
    return _Generator(base).build(schema, ())


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(is_rfc3339_date_time)
    return checker


class _Generator:
    def __init__(self, root: Any):
        self.root = root
        self.referee = Draft202012Validator(
            root if isinstance(root, dict | bool) else {}, format_checker=_format_checker()
        )

    # -------------------------------------------------------------- plumbing

    def valid(self, schema: Any) -> Callable[[Any], bool]:
        """A test that a value satisfies ``schema`` (refs resolved against the root)."""
        checker = self.referee.evolve(schema=schema)
        return checker.is_valid

    def resolve(self, ref: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise UnsupportedSchema(f"only local $ref ('#/...') is supported, found {ref!r}")
        try:
            return local_ref_target(self.root, ref)
        except LookupError as exc:
            raise UnsupportedSchema(str(exc)) from None

    # -------------------------------------------------------------- schemas

    def build(self, schema: Any, trail: Trail) -> st.SearchStrategy[Any]:
        if schema is True:
            return json_values()
        if schema is False:
            return st.nothing()
        if not isinstance(schema, Mapping):
            raise UnsupportedSchema(f"a schema is an object or a boolean, not {schema!r}")
        unknown = _UNSUPPORTED & set(schema)
        if unknown:
            raise UnsupportedSchema(f"schema keyword {sorted(unknown)[0]!r} is not supported")
        schema = dict(schema)
        if "$ref" in schema:
            ref = schema.pop("$ref")
            if trail.count(ref) >= _MAX_RECURSION:
                return st.nothing()
            return self.build({"allOf": [self.resolve(ref), schema]}, (*trail, ref))
        if "allOf" in schema:
            return self.all_of(schema, trail)
        if "anyOf" in schema or "oneOf" in schema:
            return self.branches(schema, trail)
        filters = {k: schema[k] for k in _FILTERED if k in schema}
        if "enum" in schema or "const" in schema:
            values = [schema["const"]] if "const" in schema else list(schema["enum"])
            return st.sampled_from(values).filter(self.valid(schema)) if values else st.nothing()
        kinds = schema.get("type", list(_TYPES))
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if "number" in kinds and "integer" in kinds:
            kinds.remove("integer")  # numbers already include the integers
        built = st.one_of([self.typed(kind, schema, trail) for kind in kinds])
        if filters:
            built = built.filter(self.valid(schema))
        return built

    def all_of(self, schema: dict[str, Any], trail: Trail) -> st.SearchStrategy[Any]:
        """Merge the parts when they do not overlap; else build the first, filter by all."""
        parts = [p for p in schema.pop("allOf") if p is not True and p != {}]
        if any(p is False for p in parts):
            return st.nothing()
        merged: dict[str, Any] = dict(schema)
        rest: list[Any] = []
        for part in parts:
            if (
                isinstance(part, Mapping)
                and all(
                    k in _ANNOTATIONS or k not in merged or merged[k] == v for k, v in part.items()
                )
                # `additionalProperties` sees only the properties beside it: never mix parts
                and not (_PROPERTY_WORDS & set(part) and _PROPERTY_WORDS & set(merged))
            ):
                merged.update({k: v for k, v in part.items() if k not in merged})
            else:
                rest.append(part)
        built = self.build(merged, trail)
        if rest:
            built = built.filter(self.valid({"allOf": rest}))
        return built

    def branches(self, schema: dict[str, Any], trail: Trail) -> st.SearchStrategy[Any]:
        """``anyOf``/``oneOf``: a value of one branch together with the keywords beside it."""
        whole = dict(schema)
        any_of = schema.pop("anyOf", None)
        one_of = schema.pop("oneOf", None)
        options = any_of if any_of is not None else one_of
        others = {"oneOf": one_of} if any_of is not None and one_of is not None else {}
        built = st.one_of(
            [self.build({"allOf": [branch, {**schema, **others}]}, trail) for branch in options]
        )
        if one_of is not None or others:
            built = built.filter(self.valid(whole))
        return built

    # -------------------------------------------------------------- types

    def typed(self, kind: str, schema: Mapping[str, Any], trail: Trail) -> st.SearchStrategy[Any]:
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind in ("integer", "number"):
            return self.number(schema, kind == "integer")
        if kind == "string":
            return self.string(schema)
        if kind == "array":
            return self.array(schema, trail)
        if kind == "object":
            return self.object(schema, trail)
        raise UnsupportedSchema(f"unknown type {kind!r}")

    def number(self, schema: Mapping[str, Any], integer: bool) -> st.SearchStrategy[Any]:
        low, high = schema.get("minimum"), schema.get("maximum")
        xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        step = schema.get("multipleOf")
        bounds = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
        in_bounds = self.valid({k: schema[k] for k in bounds if k in schema})

        def fits(value: Any) -> bool:
            return in_bounds(value) and (not integer or float(value).is_integer())

        ilow = _tighter(_ceil(low), None if xlow is None else math.floor(xlow) + 1, max)
        ihigh = _tighter(_floor(high), None if xhigh is None else math.ceil(xhigh) - 1, min)
        if step is not None:  # multiples of the step within the bounds (or a sane range)
            lo = math.ceil((-(10**6) if ilow is None else ilow) / step)
            hi = math.floor((10**6 if ihigh is None else ihigh) / step)
            if lo > hi:
                return st.nothing()
            return st.integers(lo, hi).map(lambda n: n * step).filter(fits)
        # past 2**53 the Rego engines do not hold an integer as native does (docs/rego.md)
        ilow = _tighter(ilow, -_EXACT, max)
        ihigh = _tighter(ihigh, _EXACT, min)
        if ilow is not None and ihigh is not None and ilow > ihigh:
            ints: st.SearchStrategy[Any] = st.nothing()
        else:
            ints = st.integers(ilow, ihigh)
        if integer:
            return ints
        fl_low, exclude_low = _bound(low, xlow, max)
        fl_high, exclude_high = _bound(high, xhigh, min)
        if (
            fl_low is not None
            and fl_high is not None
            and (fl_low > fl_high or (fl_low == fl_high and (exclude_low or exclude_high)))
        ):
            return ints
        return st.one_of(ints, _floats(fl_low, fl_high, exclude_low, exclude_high).filter(fits))

    def string(self, schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        fmt = schema.get("format")
        pattern = schema.get("pattern")
        if fmt == "date-time":
            text = date_times()
        elif fmt == "duration":
            text = durations()
        elif pattern is not None:
            text = st.from_regex(pattern)
        else:
            text = st.text(min_size=low, max_size=max(low + 12, 0) if high is None else high)
        if high is not None and high < low:
            return st.nothing()

        def fits(value: str) -> bool:
            return len(value) >= low and (high is None or len(value) <= high)

        built = text.filter(fits)
        if pattern is not None and fmt in ("date-time", "duration"):
            built = built.filter(lambda v: re.search(pattern, v) is not None)
        return built

    def array(self, schema: Mapping[str, Any], trail: Trail) -> st.SearchStrategy[Any]:
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        high = low + _EXTRA_ITEMS if high is None else min(int(high), low + _EXTRA_ITEMS)
        if high < low:
            return st.nothing()
        if _deep(trail) and low == 0:
            return st.just([])  # deep in a recursive schema: the empty list ends it
        items = self.build(schema.get("items", True), trail)
        if items.is_empty:  # `items: false`: only the empty list
            return st.just([]) if low == 0 else st.nothing()
        unique = _identity if schema.get("uniqueItems") else None
        if "contains" not in schema:
            return st.lists(items, min_size=low, max_size=high, unique_by=unique)
        if high == 0:
            return st.nothing()
        # one item drawn from `contains`, put among the others at a drawn place
        others = st.lists(items, min_size=max(low - 1, 0), max_size=high - 1, unique_by=unique)
        wanted = self.build(schema["contains"], trail)
        built = st.tuples(others, wanted, st.integers(0, high - 1)).map(_with_item)
        return built.filter(self.valid(schema))

    def object(self, schema: Mapping[str, Any], trail: Trail) -> st.SearchStrategy[Any]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        patterns: Mapping[str, Any] = schema.get("patternProperties", {})
        extra = schema.get("additionalProperties", True)
        required = list(dict.fromkeys(schema.get("required", ())))
        deep = _deep(trail)

        def schema_of(name: str) -> Any:
            if name in properties:
                return properties[name]
            matching = [s for p, s in patterns.items() if re.search(p, name)]
            if matching:
                return {"allOf": matching}
            return extra

        needed = {name: self.build(schema_of(name), trail) for name in required}
        optional = {} if deep else {
            name: self.build(sub, trail) for name, sub in properties.items() if name not in needed
        }  # fmt: skip
        built = st.fixed_dictionaries(needed, optional=optional)
        pieces = [built]
        if not deep and extra is not False:
            known = set(properties)
            free_keys = st.text(max_size=8).filter(
                lambda k: k not in known and not any(re.search(p, k) for p in patterns)
            )
            pieces.append(
                st.dictionaries(free_keys, self.build(extra, trail), max_size=_EXTRA_PROPERTIES)
            )
        if not deep:
            for pattern, sub in patterns.items():
                keys = st.from_regex(pattern).filter(lambda k: k not in properties)
                pieces.append(st.dictionaries(keys, self.build(sub, trail), max_size=2))
        built = st.tuples(*pieces).map(_merged)
        checks = {"patternProperties", "minProperties", "maxProperties", "propertyNames"}
        if patterns or checks & set(schema):
            built = built.filter(self.valid(schema))
        return built


def _deep(trail: Trail) -> bool:
    """Whether some ``$ref`` on the way here already recursed: build only what is required."""
    return any(trail.count(ref) > _RECURSION for ref in set(trail))


def _merged(parts: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The first part (declared properties) wins: extra keys never replace them."""
    out: dict[str, Any] = {}
    for part in reversed(parts):
        out.update(part)
    return out


def _with_item(drawn: tuple[list[Any], Any, int]) -> list[Any]:
    items, item, at = drawn
    items = list(items)
    items.insert(min(at, len(items)), item)
    return items


def _identity(value: Any) -> str:
    """What jsonschema's uniqueItems compares: 1 and 1.0 alike, true and 1 not."""

    def plain(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int | float):
            return ["n", float(v) if not float(v).is_integer() else int(v)]
        if isinstance(v, list):
            return [plain(x) for x in v]
        return {k: plain(x) for k, x in v.items()}

    return json.dumps(plain(value), sort_keys=True)


def _ceil(value: Any) -> int | None:
    return None if value is None else math.ceil(value)


def _floor(value: Any) -> int | None:
    return None if value is None else math.floor(value)


def _tighter(a: int | None, b: int | None, pick: Callable[[int, int], int]) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


def _bound(
    inclusive: Any, exclusive: Any, pick: Callable[[Any, Any], Any]
) -> tuple[float | None, bool]:
    """The tighter of an inclusive and an exclusive bound, and whether it excludes itself."""
    if inclusive is None and exclusive is None:
        return None, False
    if exclusive is None:
        return inclusive, False
    if inclusive is None:
        return exclusive, True
    tighter = pick(inclusive, exclusive)
    return tighter, tighter == exclusive


def _floats(
    low: float | None, high: float | None, exclude_low: bool, exclude_high: bool
) -> st.SearchStrategy[float]:
    """Finite floats, none within ``TINY_NUMBER`` of zero but zero itself."""
    if low is None and high is None:
        low, high = -1e12, 1e12  # past this a limit written in a pack does not reach
    return (
        st.floats(
            low,
            high,
            exclude_min=exclude_low and low is not None,
            exclude_max=exclude_high and high is not None,
            allow_nan=False,
            allow_infinity=False,
            allow_subnormal=False,
        )
        .map(portable_float)
        .filter(lambda v: (v == 0 or TINY_NUMBER <= abs(v) <= _EXACT) and _within(v, low, high))
    )


def portable_float(value: float) -> float:
    """``value`` to 15 significant digits: a number rego-cpp, which keeps 16, reads back as
    itself, as every engine does (docs/rego.md)."""
    return float(f"{value:.15g}")


def _within(value: float, low: float | None, high: float | None) -> bool:
    """Rounding may step over a bound; ``exclusive`` bounds are kept by the caller's filter."""
    return (low is None or value >= low) and (high is None or value <= high)


def date_times() -> st.SearchStrategy[str]:
    """RFC 3339 date-times with ``Z`` or a numeric offset, sometimes with a fraction."""
    moments = st.datetimes(datetime(1970, 1, 2), datetime(2099, 12, 30))
    offsets = st.one_of(st.just(None), st.integers(-23 * 60 - 59, 23 * 60 + 59))
    fraction = st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True))
    return st.tuples(moments, offsets, fraction).map(_rfc3339)


def _rfc3339(drawn: tuple[datetime, int | None, str]) -> str:
    moment, minutes, fraction = drawn
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction
    if minutes is None:
        return text + "Z"
    zone = timezone(timedelta(minutes=minutes))
    offset = moment.replace(tzinfo=UTC).astimezone(zone).strftime("%z")
    return f"{text}{offset[:3]}:{offset[3:]}"


def durations() -> st.SearchStrategy[str]:
    """ISO 8601 durations: ``P3D``, ``PT15M``, ``P1DT2H30M5S``, ``P2W``."""
    part = st.one_of(st.just(0), st.integers(1, 400))
    return st.one_of(
        st.integers(1, 52).map(lambda w: f"P{w}W"),
        st.tuples(part, part, part, part).filter(any).map(_duration),
    )


def _duration(drawn: tuple[int, int, int, int]) -> str:
    days, hours, minutes, seconds = drawn
    clock = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")
