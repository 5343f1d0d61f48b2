"""Inputs for property checks: hypothesis strategies built from a pack's input schema.

The strategies follow the composed JSON Schema (``action``, ``context``, ``usage``)
and are biased toward the values the pack compares against: every string and
number constant, every envelope value, each threshold and the values just past
it on either side. Timestamps are one shared anchor plus an offset, and the
offsets include the pack's durations and one second either side of them, so
``context.now - a.at <= approval.max_age`` is probed exactly at its edge.
Schema constructs the builder does not bias are handed to the general generator,
``json_schema.from_schema``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from aigre_policy import interpreter, ir
from aigre_policy.testing.json_schema import from_schema, portable_float

Key = tuple[str, ...]  # a schema path: ("action", "approvals", "[]", "by")
# from an input path in a condition to its schema key; None for an unbound local
KeyOf = Callable[[ir.Path], Key | None]
ITEM = "[]"
LENGTH = "#len"  # by_path[(*list_key, LENGTH)]: lengths a condition compares the list with

# Monday 2025-03-10 00:00 UTC: anchors cover one week, so every weekday shows up.
_WEEK_START = datetime(2025, 3, 10, tzinfo=UTC)
_NAMES = ("alice", "bob", "agent-1")  # shared identities: lets `a.by == actor.id` happen
TINY_NUMBER = 1e-307  # as rego.engine.TINY
_BOUND = 10**9  # unbounded numbers stay in a range people write


@dataclass(frozen=True)
class Hints:
    """What a pack compares against, gathered from its IR and envelope values."""

    strings: tuple[str, ...] = ()
    numbers: tuple[int | float, ...] = ()
    offsets: tuple[int, ...] = (0,)
    by_path: Mapping[Key, tuple[Any, ...]] = field(default_factory=dict)
    linked: frozenset[Key] = frozenset()  # string keys compared with another input's value
    reads: frozenset[Key] = frozenset()  # every key a condition reads
    avoid: Mapping[Key, tuple[Any, ...]] = field(default_factory=dict)  # `!=`, `not in` values


def step(value: int | float) -> int | float:
    """The smallest move past a written threshold: 1 for integers, else its last decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    if isinstance(value, int) or float(value).is_integer():
        return 1
    exponent = Decimal(repr(float(value))).normalize().as_tuple().exponent
    return 10.0 ** int(exponent) if isinstance(exponent, int) else 1


def beside(value: int | float) -> tuple[int | float, ...]:
    """``value`` and the values one step either side of it."""
    delta = step(value)
    if isinstance(value, int):
        return (value, value - delta, value + delta)
    return (value, round(value - delta, 12), round(value + delta, 12))


def collect_hints(
    program: ir.Program,
    envelopes: Mapping[str, Mapping[str, Any]],
    conditions: Iterable[ir.Node] = (),
) -> Hints:
    """Constants, envelope values and per-path comparison values of every condition."""
    strings: dict[str, None] = {}
    numbers: dict[int | float, None] = {0: None}
    by_path: dict[Key, dict[Any, None]] = {}
    linked: set[Key] = set()
    reads: set[Key] = set()
    avoid: dict[Key, dict[Any, None]] = {}

    def note(value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, str):
            for text in (value, f"x-{value}", f"{value}-x"):
                strings.setdefault(text, None)
        elif isinstance(value, int | float) and math.isfinite(value):
            for number in beside(value):
                numbers.setdefault(number, None)
        elif isinstance(value, list | tuple):
            for item in value:
                note(item)

    for fields in envelopes.values():
        for value in fields.values():
            note(value)
    everything = [r.condition for r in program.rules]
    everything += [i.condition for i in program.invariants if i.condition is not None]
    everything += list(conditions)
    for condition in everything:
        for node, key_of, positive in _nodes_with_scope(condition):
            if isinstance(node, ir.Path) and (read := key_of(node)) is not None:
                reads.add(read)
            elif isinstance(node, ir.Const):
                note(node.value)
            elif isinstance(node, ir.Arith):
                value = _constant(node, envelopes)
                if value is not None:
                    note(value)
            elif isinstance(node, ir.Compare):
                for side, other in ((node.left, node.right), (node.right, node.left)):
                    counted = _counted(side, key_of)
                    size = _constant(other, envelopes)
                    if counted is not None and isinstance(size, int) and size >= 0:
                        lengths = by_path.setdefault((*counted, LENGTH), {})
                        for value in (size, size + 1, max(size - 1, 0)):
                            lengths.setdefault(value, None)
                bucket = by_path
                if node.op in ("==", "!="):
                    linked.update(_links(node.left, node.right, key_of, member=False))
                    bucket = by_path if positive == (node.op == "==") else avoid
                _relate(node.left, node.right, key_of, envelopes, bucket, member=False)
                _relate(node.right, node.left, key_of, envelopes, bucket, member=False)
            elif isinstance(node, ir.Member):
                linked.update(_links(node.item, node.collection, key_of, member=True))
                bucket = by_path if positive != node.negated else avoid
                _relate(node.item, node.collection, key_of, envelopes, bucket, member=True)
                item = _constant(node.item, envelopes)
                key = _key(node.collection, key_of)
                if item is not None and key is not None:
                    by_path.setdefault((*key, ITEM), {}).setdefault(item, None)
    offsets: dict[int, None] = {0: None, 1: None, -1: None}
    for number in numbers:
        if number >= 1 and float(number).is_integer():
            for value in (int(number), -int(number)):
                offsets.setdefault(value, None)
    return Hints(
        tuple(strings),
        tuple(sorted(numbers)),
        tuple(sorted(offsets, key=lambda v: (abs(v), v))),
        {key: tuple(values) for key, values in by_path.items()},
        frozenset(linked),
        frozenset(reads),
        {key: tuple(values) for key, values in avoid.items()},
    )


def _links(left: ir.Node, right: ir.Node, key_of: KeyOf, member: bool) -> tuple[Key, ...]:
    """Both keys of a comparison between two input values (``a.by == action.actor.id``)."""
    a, b = _key(left, key_of), _key(right, key_of)
    if a is None or b is None:
        return ()
    return (a, (*b, ITEM) if member else b)


def _nodes_with_scope(condition: ir.Node) -> Iterator[tuple[ir.Node, KeyOf, bool]]:
    """Every node of a condition, with a resolver from quantifier variables to schema keys
    and whether the condition wants the node true (``False`` under an odd number of ``not``).
    """

    def visit(
        node: ir.Node, scope: dict[str, Key], positive: bool
    ) -> Iterator[tuple[ir.Node, KeyOf, bool]]:
        key_of = _resolver(scope)
        yield node, key_of, positive
        if isinstance(node, ir.Quantifier):
            yield from visit(node.items, scope, positive)
            items = _key(node.items, key_of)
            inner = {**scope, node.var: (*items, ITEM)} if items is not None else scope
            yield from visit(node.body, inner, positive)
            return
        flip = isinstance(node, ir.Not)
        for child in ir.children(node):
            yield from visit(child, scope, positive != flip)

    yield from visit(condition, {}, True)


def _resolver(scope: dict[str, Key]) -> KeyOf:
    def key_of(path: ir.Path) -> Key | None:
        if not path.local:
            return (path.root, *path.steps)
        base = scope.get(path.root)
        return None if base is None else (*base, *path.steps)

    return key_of


def _counted(node: ir.Node, key_of: KeyOf) -> Key | None:
    """The list whose length ``len(list)`` or ``len(list ?? [])`` reads."""
    if isinstance(node, ir.Call) and node.function == "len" and len(node.args) == 1:
        return _key(node.args[0], key_of)
    return None


def _key(node: ir.Node, key_of: KeyOf) -> Key | None:
    """The schema key a node reads, seen through ``??`` and ``lower``/``upper``."""
    match node:
        case ir.Path():
            return key_of(node)
        case ir.Default(path=path):
            return key_of(path)
        case ir.Call(function="lower" | "upper", args=(inner,)):
            return _key(inner, key_of)
    return None


def _constant(node: ir.Node, envelopes: Mapping[str, Mapping[str, Any]]) -> Any:
    """The value of a node that reads no input, else ``None``."""
    if any(isinstance(sub, ir.Path) for sub in ir.walk(node)):
        return None
    try:
        return interpreter.evaluate(node, {}, envelopes)
    except Exception:  # a constant expression that fails (1 / 0) hints nothing
        return None


def _relate(
    side: ir.Node,
    other: ir.Node,
    key_of: KeyOf,
    envelopes: Mapping[str, Mapping[str, Any]],
    by_path: dict[Key, dict[Any, None]],
    member: bool,
) -> None:
    key = _key(side, key_of)
    value = _constant(other, envelopes)
    if key is None or value is None:
        return
    values = list(value) if isinstance(value, list | tuple) else [value]
    if not member and isinstance(value, int | float) and not isinstance(value, bool):
        values = list(beside(value))
    bucket = by_path.setdefault(key, {})
    for item in values:
        bucket.setdefault(item, None)


# ------------------------------------------------------------------ strategies


@dataclass(frozen=True)
class Offset:
    """A timestamp not yet placed: seconds from the document's anchor."""

    seconds: int


def documents(
    schema: Mapping[str, Any], hints: Hints, focus: Hints | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Whole input documents ``{action, context, usage}`` valid against ``schema``.

    ``focus`` holds the hints of one condition (an invariant's ``when``): the
    optional fields it reads are present, its lists non-empty and its compared
    values drawn, far more often than elsewhere.
    """
    builder = _Builder(schema, hints, focus or Hints())
    body = builder.build(schema, ())
    anchor = st.tuples(
        st.integers(0, 6),
        st.one_of(st.sampled_from(builder.hours), st.integers(0, 23)),
        st.sampled_from((0, 3599)),
    ).map(lambda t: _WEEK_START + timedelta(days=t[0], hours=t[1], seconds=t[2]))
    return st.tuples(anchor, body).map(lambda pair: _place(pair[1], pair[0]))


def _prefixes(keys: Iterable[Key]) -> set[Key]:
    return {key[:i] for key in keys for i in range(1, len(key) + 1)}


def _place(value: Any, anchor: datetime) -> Any:
    if isinstance(value, Offset):
        moment = anchor + timedelta(seconds=value.seconds)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _place(v, anchor) for k, v in value.items()}
    if isinstance(value, list):
        return [_place(v, anchor) for v in value]
    return value


class _Builder:
    def __init__(self, root: Mapping[str, Any], hints: Hints, focus: Hints):
        self.root = root
        self.defs = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.hints = hints
        self.focus = focus.by_path
        self.avoid = focus.avoid
        self.focused = _prefixes(focus.reads)
        self.read = _prefixes(hints.reads)
        self.hours = tuple(
            int(n) for n in hints.numbers if float(n).is_integer() and 0 <= n <= 23
        ) or (0,)

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:
            ref = schema["$ref"]
            match = re.fullmatch(r"#/(\$defs|definitions)/(.+)", ref)
            if match is None or match.group(2) not in self.defs:
                break
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**self.defs[match.group(2)], **rest}
            seen += 1
        return schema

    def delegate(self, schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
        return from_schema(schema, root=self.root)

    def build(self, schema: Any, key: Key) -> st.SearchStrategy[Any]:
        if schema is True or schema == {}:
            return st.none()
        if not isinstance(schema, Mapping):
            return st.nothing()
        schema = self.resolve(schema)
        if "$ref" in schema:
            return self.delegate(schema)
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema and set(schema) <= {combinator, "title", "description"}:
                return st.one_of([self.build(branch, key) for branch in schema[combinator]])
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return self.enum(schema, key)
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.build({**schema, "type": k}, key) for k in kind])
        builders = {
            "object": self.object,
            "array": self.array,
            "string": self.string,
            "integer": self.number,
            "number": self.number,
            "boolean": lambda s, k: st.booleans(),
            "null": lambda s, k: st.none(),
        }
        known = {
            "type", "title", "description", "default", "examples", "properties", "required",
            "additionalProperties", "items", "minItems", "maxItems", "uniqueItems", "format",
            "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
            "exclusiveMaximum", "$schema", "$defs", "definitions",
        }  # fmt: skip
        # `x-` keywords annotate (x-aigre-claim, ...); they never constrain a value
        if kind not in builders or not {k for k in schema if not k.startswith("x-")} <= known:
            return self.delegate(schema)
        return builders[kind](schema, key)

    def focused_on(
        self, key: Key, strategy: st.SearchStrategy[Any], fits: Callable[[Any], bool]
    ) -> Any:
        """Half the time a value the focused condition compares ``key`` with."""
        wanted = [v for v in self.focus.get(key, ()) if fits(v)]
        if not wanted:
            return strategy
        return st.one_of(st.sampled_from(wanted), st.sampled_from(wanted), strategy)

    def enum(self, schema: Mapping[str, Any], key: Key) -> st.SearchStrategy[Any]:
        values = list(schema["enum"])
        if not values:  # an empty enum admits no value: the search meets none
            return st.nothing()
        preferred = [v for v in self.hints.by_path.get(key, ()) if v in values]
        plain = st.sampled_from(values)
        if preferred:
            plain = st.one_of(st.sampled_from(preferred), plain)
        avoided = set(self.avoid.get(key, ()))
        others = [v for v in values if v not in avoided]
        if avoided and others:  # `kind not in [...]`: the values the condition does not name
            plain = st.one_of(st.sampled_from(others), st.sampled_from(others), plain)
        return self.focused_on(key, plain, lambda v: v in values)

    def object(self, schema: Mapping[str, Any], key: Key) -> st.SearchStrategy[Any]:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        if not properties and schema.get("additionalProperties", True) not in (False, {}):
            return self.delegate(schema)
        needed = {n: self.build(s, (*key, n)) for n, s in properties.items() if n in required}
        optional = {n: self.build(s, (*key, n)) for n, s in properties.items() if n not in required}
        missing = required - set(properties)
        if missing:
            return self.delegate(schema)
        plain = st.fixed_dictionaries(needed, optional=optional)
        # optional fields no condition reads cannot change a decision: leave them out
        optional = {n: s for n, s in optional.items() if (*key, n) in self.read}
        wanted = {n: s for n, s in optional.items() if (*key, n) in self.focused}
        if not wanted:
            return plain
        rest = {n: s for n, s in optional.items() if n not in wanted}
        return st.one_of(st.fixed_dictionaries({**needed, **wanted}, optional=rest), plain)

    def array(self, schema: Mapping[str, Any], key: Key) -> st.SearchStrategy[Any]:
        low = int(schema.get("minItems", 0))
        high = max(low, min(int(schema.get("maxItems", low + 3)), low + 3))
        items = self.build(schema.get("items", {}), (*key, ITEM))
        unique_by = repr if schema.get("uniqueItems") else None
        plain = st.lists(items, min_size=low, max_size=high, unique_by=unique_by)
        if (*key, ITEM) in self.focused:
            non_empty = st.lists(items, min_size=max(low, 1), max_size=high, unique_by=unique_by)
            plain = st.one_of(non_empty, plain)
        sizes = [n for n in self.focus.get((*key, LENGTH), ()) if low <= n <= high]
        if sizes:  # `len(list) == 0` and the like: lists of exactly the compared lengths
            exact = st.sampled_from(sizes).flatmap(
                lambda n: st.lists(items, min_size=n, max_size=n, unique_by=unique_by)
            )
            plain = st.one_of(exact, plain)
        return plain

    def string(self, schema: Mapping[str, Any], key: Key) -> st.SearchStrategy[Any]:
        if schema.get("format") == "date-time":
            offsets = st.one_of(
                st.sampled_from(self.hints.offsets), st.integers(-30 * 86400, 30 * 86400)
            )
            return offsets.map(Offset)
        if "format" in schema:
            return self.delegate(schema)
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")

        def fits(text: str) -> bool:
            return len(text) >= low and (high is None or len(text) <= high)

        pool = [
            v for v in (*self.hints.by_path.get(key, ()), *_NAMES) if isinstance(v, str) and fits(v)
        ]
        constants = [s for s in self.hints.strings if fits(s)]
        alphabet = st.sampled_from("abcdefghijklmnopqrstuvwxyz-0123456789")
        text = st.text(alphabet, min_size=max(low, 1), max_size=max(low, 1) + 11)
        if high is not None:
            text = text.filter(fits)
        choices = [st.sampled_from(pool)] if pool else []
        if constants:
            choices.append(st.sampled_from(constants))
        anything = st.one_of(*choices, text)
        if key in self.hints.linked:  # half the time one shared name: equal values are common
            anything = st.one_of(st.just(_NAMES[0]), anything)
        return self.focused_on(key, anything, lambda v: isinstance(v, str) and fits(v))

    def number(self, schema: Mapping[str, Any], key: Key) -> st.SearchStrategy[Any]:
        integer = schema["type"] == "integer"
        low = schema.get("minimum", -_BOUND)
        high = schema.get("maximum", _BOUND)
        xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")

        def fits(value: Any) -> bool:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            if integer and not float(value).is_integer():
                return False
            return (
                low <= value <= high
                and (xlow is None or value > xlow)
                and (xhigh is None or value < xhigh)
            )

        wanted = (*self.hints.by_path.get(key, ()), *self.hints.numbers, low, high)
        pool = list(dict.fromkeys(int(v) if integer else v for v in wanted if fits(v)))
        if integer:
            plain: st.SearchStrategy[Any] = st.integers(math.ceil(low), math.floor(high))
        else:
            # numbers every engine holds as native does (docs/rego.md): 15 significant
            # digits, nothing within 1e-307 of zero but zero; no limit needs more
            plain = (
                st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)
                .map(portable_float)
                .filter(lambda v: v == 0 or abs(v) >= TINY_NUMBER)
            )
        plain = plain.filter(fits)
        return self.focused_on(
            key, st.one_of(st.sampled_from(pool), plain) if pool else plain, fits
        )
