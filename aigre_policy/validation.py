"""Input validation for every evaluation: a compiled fast path and a complete slow path.

Every evaluation checks its input (``{"action": ..., "context": ..., "usage": ...}``) against a
JSON Schema (draft 2020-12) before any rule reads it. The check sits on the hot path, so
:meth:`InputValidator.is_valid` runs a validator that jsonschema-rs compiled once (native code;
the schema is first rewritten by ``_FastCopy``, which keeps the meaning jsonschema gives it).
Only when it says no does :meth:`InputValidator.errors` ask jsonschema for every error, with a
path and a message a person can act on.

The two validators must accept and reject exactly the same inputs (the tests check this with
hypothesis), so this module owns every point where they could differ:

* A numeric bound written as an integral float (``maximum: 1e12``) is given to the fast
  validator as the equal integer: the same comparisons, without its slow path for floats.
* ``format: date-time``: jsonschema calls :func:`is_rfc3339_date_time`; the fast validator
  matches :data:`DATE_TIME_PATTERN`, the same set of strings as one regular expression, so it
  never calls back into Python (the tests check every day of years around each leap-year
  rule). Every other format is an annotation for both.
* The fast validator sees a copy of the schema (:class:`_FastCopy`): non-recursive local
  ``$ref`` s inlined, a ``$ref`` with siblings wrapped in ``allOf``, ``pattern`` rewritten so
  ``$`` keeps the meaning ``re.search`` gives it, ``contentEncoding``/``contentMediaType``
  dropped (annotations in 2020-12).
* Keywords whose meaning the two could read differently (``prefixItems``,
  ``unevaluatedProperties``, ``multipleOf``, remote ``$ref`` ...) are refused when the schema is
  loaded, with a :class:`ValueError` naming them, rather than checked differently.

Inputs are JSON values as decoded from JSON or YAML (dict, list, str, int, float, bool, None):
``Pack.evaluate`` hands over only such data, within the evaluation bounds
(:mod:`aigre_policy.plain`), so neither validator ever sees a subclass, a cycle or a nesting deep
enough to overflow the compiled validator's stack.

Measured by hand, not by a test (timed tests flake): ``is_valid`` on the realistic valid input
of ``tests/test_validation.py`` (five timestamps) took about 8 us on a 2-core box with
jsonschema-rs 0.60 while date-times called back into Python (``benchmarks/bench_eval.py``
prints today's figure); ``errors`` on an invalid input about 0.4 ms::

    python -m timeit -s "from tests.test_validation import INPUT_SCHEMA, VALID_INPUT" \\
        -s "from aigre_policy.validation import InputValidator; v = InputValidator(INPUT_SCHEMA)" \\
        "v.is_valid(VALID_INPUT)"

Deferred imports: jsonschema loads only when an input is refused or a schema is checked,
so a cached start that meets valid input never imports it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import jsonschema_rs

if TYPE_CHECKING:  # jsonschema loads when an input is rejected or a schema first checked
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.exceptions import SchemaError, ValidationError

__all__ = ["DRAFT_2020_12", "InputError", "InputValidator", "dotted", "is_rfc3339_date_time"]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# RFC 3339 section 5.6: full-date "T" full-time, with a mandatory offset. T and Z may be lower
# case (the grammar is case-insensitive). Leap seconds (:60) are refused because no datetime
# can hold them. [0-9], not \d, which would also match non-ASCII digits.
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def is_rfc3339_date_time(value: object) -> bool:
    """Whether ``value`` is an RFC 3339 date-time with a timezone offset or ``Z``.

    The regex fixes the shape; the parse rejects dates that do not exist (month 13, 30 February,
    year 0). Non-strings pass: a format only constrains strings, ``type`` rejects the rest.
    This is the single check both validators use, so they cannot disagree on timestamps.
    """
    if not isinstance(value, str):
        return True
    if _DATE_TIME.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    return True


# The same set of strings as ``is_rfc3339_date_time`` accepts, as one regular expression the
# compiled validator runs without calling back into Python: the shape of ``_DATE_TIME``, with
# each month's days spelled out, 29 February in leap years only (the proleptic Gregorian rule
# ``datetime`` follows) and no year 0000. Anchored: a ``pattern`` is a search.
_YEAR = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"  # 0001 to 9999
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
DATE_TIME_PATTERN = (
    "^(?:"
    + _YEAR
    + "-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"  # every month has days 1 to 28
    + "|(?:0[13-9]|1[0-2])-(?:29|30)"  # every month but February has 29 and 30
    + "|(?:0[13578]|1[02])-31)"
    + "|"
    + _LEAP_YEAR
    + "-02-29)"
    + "[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
    + "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _format_checker() -> FormatChecker:
    """A jsonschema format checker that knows date-time only, with this module's check."""
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())
    checker.checks("date-time")(is_rfc3339_date_time)
    return checker


@dataclass(frozen=True, slots=True)
class InputError:
    """One reason an evaluation input does not match its schema."""

    path: str
    """Dotted path to the bad value, list indices in brackets (``action.approvals[0].at``);
    ``""`` for the root. Keys that are not plain names are quoted: ``labels["a b"]``."""
    message: str
    """One line, e.g. ``'estimated_usd' is a required property``."""
    keyword: str
    """The JSON Schema keyword that failed: ``required``, ``enum``, ``type``, ... (``false`` for
    a ``false`` subschema)."""

    def to_dict(self) -> dict[str, str]:
        """The error as plain JSON, for reports and the CLI."""
        return {"path": self.path, "message": self.message, "keyword": self.keyword}


def local_ref_target(root: Any, ref: str, where: str = "") -> Any:
    """What the local ``$ref`` (``#/a/b``, RFC 6901 escapes) points at in ``root``;
    ``LookupError`` saying why (naming ``where`` the ref stands) when it is an anchor or
    points at nothing."""
    at = f" at {where}" if where else ""
    target: Any = root
    fragment = unquote(ref[1:])
    if fragment and not fragment.startswith("/"):
        raise LookupError(f"$ref to an anchor ({ref!r}{at}) is not supported")
    for token in fragment.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and token in target:
            target = target[token]
        elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
            target = target[int(token)]
        else:
            raise LookupError(f"$ref {ref!r}{at} points at nothing")
    return target


class InputValidator:
    """Validates evaluation inputs against one draft 2020-12 JSON Schema.

    Build one per schema and reuse it: compiling the fast validator is the expensive part.
    Safe to share between threads; it never modifies the inputs it checks.
    """

    __slots__ = ("_fast", "_schema", "_slow")

    def __init__(self, schema: dict[str, Any], *, schema_checked: bool = False) -> None:
        """Check ``schema`` and compile both validators; ``ValueError`` if it is invalid.

        ``schema_checked``: the schema passed this check before (a compile cache entry that
        verified) and the metaschema walk, most of the cost, is skipped."""
        if not isinstance(schema, dict):
            raise ValueError(f"input schema must be a JSON object, not {type(schema).__name__}")
        dialect = schema.get("$schema", DRAFT_2020_12)
        if dialect not in (DRAFT_2020_12, DRAFT_2020_12 + "#"):
            raise ValueError(
                f"input schema must be draft 2020-12 ({DRAFT_2020_12}), not {dialect!r}"
            )
        if not schema_checked:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise ValueError(
                    f"invalid input schema at {_pointer(exc.absolute_path)}: {_message(exc)}"
                ) from None
        fast_schema = _FastCopy(schema).build()
        # Only date-time is checked, by DATE_TIME_PATTERN in the fast copy (the set of
        # strings the one function jsonschema uses accepts); every other format a schema
        # names is an annotation, as in jsonschema without a checker for it.
        try:
            self._fast = jsonschema_rs.validator_for(fast_schema, validate_formats=False).is_valid
        except (jsonschema_rs.ValidationError, ValueError) as exc:
            raise ValueError(f"input schema cannot be compiled: {exc}") from None
        # A private copy: the fast validator is compiled from a snapshot, so the slow one must
        # not follow later edits of the caller's dict (or of a library that rewrites it).
        self._schema = copy.deepcopy(schema)
        # jsonschema is built on the first rejected input: a valid one never needs it, and a
        # cached start (``aigre_policy.cache``) then never imports it
        self._slow: Draft202012Validator | None = None

    def is_valid(self, instance: object) -> bool:
        """Whether ``instance`` matches the schema: the hot path (see above)."""
        return self._fast(instance)

    @property
    def compiled_is_valid(self) -> Callable[[object], bool]:
        """``is_valid`` as the compiled validator's own function, with no Python call in
        between: what ``Pack.evaluate`` calls on every decision."""
        return self._fast

    def errors(self, instance: object) -> list[InputError]:
        """Every error in ``instance``, sorted by path then message; ``[]`` when it is valid.

        Paths sort segment by segment, list indices numerically (``[2]`` before ``[10]``).
        Slow (jsonschema walks the whole input): call it once ``is_valid`` has said no.
        """
        slow = self._slow
        if slow is None:
            from jsonschema import Draft202012Validator

            slow = self._slow = Draft202012Validator(self._schema, format_checker=_format_checker())
        found = sorted(
            (
                (_sort_key(error.absolute_path), _error(error))
                for error in slow.iter_errors(instance)
            ),
            key=lambda keyed: (keyed[0], keyed[1].message),
        )
        if found:
            return [error for _, error in found]
        if not self._fast(instance):
            # Unreachable while both libraries agree (the tests prove they do), except for
            # values JSON cannot carry (NaN, infinity); never reject with no reason at all.
            return [
                InputError(
                    "",
                    "rejected by the compiled validator (a value JSON cannot "
                    "carry, such as NaN or infinity?)",
                    "unknown",
                )
            ]
        return []


# --- errors -------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MAX_VALUE_CHARS = 80


def _error(error: ValidationError) -> InputError:
    return InputError(
        path=dotted(error.absolute_path),
        message=_message(error),
        keyword=str(error.validator) if error.validator is not None else "false",
    )


def dotted(path: Iterable[str | int]) -> str:
    """``["action", "approvals", 0, "at"]`` as ``action.approvals[0].at``."""
    parts: list[str] = []
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _PLAIN_KEY.fullmatch(step):
            parts.append(f".{step}" if parts else step)
        else:
            parts.append(f"[{json.dumps(step, ensure_ascii=False)}]")
    return "".join(parts)


def _pointer(path: Iterable[str | int]) -> str:
    """A schema location as a JSON Pointer fragment: ``#/properties/action``."""
    return "#" + "".join("/" + _escape(str(step)) for step in path)


def _sort_key(path: Iterable[str | int]) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, step) if isinstance(step, int) else (1, step) for step in path)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _message(error: ValidationError | SchemaError) -> str:
    """jsonschema's message, on one line and without pages of the offending value."""
    if error.validator == "enum" and isinstance(error.validator_value, list):
        allowed = ", ".join(_short(value) for value in error.validator_value)
        return f"{_short(error.instance)} is not one of {allowed}"
    message = error.message
    value = repr(error.instance)
    if len(value) > _MAX_VALUE_CHARS and message.startswith(value):
        message = _short(error.instance) + message[len(value) :]
    return " ".join(message.split())


# --- the schema as the fast validator must see it ---------------------------------------------

# Where subschemas live in draft 2020-12 (plus draft 7 "definitions", still a valid $ref target).
_SUBSCHEMA = frozenset(
    {"additionalProperties", "items", "contains", "propertyNames", "not", "if", "then", "else"}
)
_SUBSCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf"})
# Keywords that neither validate nor hold schemas a $ref elsewhere may point into: a $ref
# with only these beside it is replaced by its target outright.
_ANNOTATIONS = frozenset(
    {
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
# Numeric bounds: an integral float one becomes the equal integer for the fast validator.
_BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
# 2020-12 annotations the fast validator could turn into checks.
_DROPPED = frozenset({"$schema", "contentEncoding", "contentMediaType", "contentSchema"})
# Keywords refused at load time: the fast and the complete validator are not known to check
# them alike, and a gate must not accept an input that its error report would reject.
_NOT_ALIKE = "input validation does not support it"
_UNSUPPORTED = {
    "prefixItems": _NOT_ALIKE,
    "unevaluatedProperties": _NOT_ALIKE,
    "unevaluatedItems": _NOT_ALIKE,
    "dependentRequired": _NOT_ALIKE,
    "dependentSchemas": _NOT_ALIKE,
    "minContains": _NOT_ALIKE,
    "maxContains": _NOT_ALIKE,
    "$anchor": _NOT_ALIKE,
    "$dynamicRef": _NOT_ALIKE,
    "$dynamicAnchor": _NOT_ALIKE,
    "$recursiveRef": "it is not a draft 2020-12 keyword",
    "$recursiveAnchor": "it is not a draft 2020-12 keyword",
    "dependencies": "it is not a draft 2020-12 keyword (use required inside if/then)",
    "additionalItems": "it is not a draft 2020-12 keyword",
    "multipleOf": "the two validators round floats differently, so it is not supported",
}
# An inline flag group that turns on MULTILINE, which changes what $ means.
_MULTILINE_FLAG = re.compile(r"\(\?[aiLmsux-]*m[aiLmsux-]*[:)]")


class _FastCopy:
    """The copy of a schema that jsonschema-rs checks exactly as jsonschema does.

    Besides the rewrites listed in the module docstring, local ``$ref`` s are inlined: the
    validator compiled for each ``$ref`` builds a path string on every call
    (``str.format(**locals())`` for list items), which more than doubled the cost of a valid
    input. Recursive references stay ``$ref`` s. The caller's schema is never modified.
    """

    _MAX_INLINED = 10_000  # past this many inlined references, keep the rest as $refs

    def __init__(self, root: dict[str, Any]) -> None:
        self._root = root
        self._expanding: list[str] = []
        self._inlined = 0

    def build(self) -> dict[str, Any]:
        return self._schema(self._root, "#")

    def _schema(self, schema: Any, where: str) -> Any:
        """``schema`` (found at JSON Pointer ``where``) as the fast validator must see it."""
        if not isinstance(schema, dict):  # a boolean schema; check_schema allows nothing else
            return schema
        out: dict[str, Any] = {}
        for key, value in schema.items():
            at = f"{where}/{_escape(key)}"
            if key in _UNSUPPORTED:
                raise ValueError(
                    f"input schema keyword {key!r} at {at} is not supported: {_UNSUPPORTED[key]}"
                )
            if key in _DROPPED:
                continue
            if key == "$id" and schema is not self._root:
                raise ValueError(f"input schema: $id is only supported at the root, found at {at}")
            if key in _SUBSCHEMA:
                out[key] = self._schema(value, at)
            elif key in _SUBSCHEMA_MAP:
                out[key] = {
                    name: self._schema(sub, f"{at}/{_escape(name)}") for name, sub in value.items()
                }
            elif key in _SUBSCHEMA_LIST:
                out[key] = [self._schema(sub, f"{at}/{i}") for i, sub in enumerate(value)]
            elif key == "format":
                continue  # date-time becomes a pattern, below; other formats annotate
            elif key == "pattern":
                out[key] = _keep_dollar_meaning(value, at)
            elif key in _BOUNDS and type(value) is float and value.is_integer():
                # the same number as an integer: jsonschema-rs compares both exactly, but a
                # float bound through exact fractions, five to ten times slower (1e12 from
                # pydantic's `le=1e12` on every cost field)
                out[key] = int(value)
            elif key != "$ref":
                out[key] = copy.deepcopy(value)
        if schema.get("format") == "date-time":
            if "pattern" in out:  # both must hold: the second pattern goes in an allOf
                out["allOf"] = [*out.get("allOf", []), {"pattern": DATE_TIME_PATTERN}]
            else:
                out["pattern"] = DATE_TIME_PATTERN
        if out.get("additionalProperties") == {}:
            # Same meaning, but a fast validator may read {} as false when it checks `required`.
            out["additionalProperties"] = True
        if "$ref" not in schema:
            return out
        target = self._reference(schema["$ref"], f"{where}/$ref")
        if _ANNOTATIONS.issuperset(out):
            return target
        # a draft 7 reading ignores a $ref's siblings; 2020-12 applies them.
        out["allOf"] = [target, *out.get("allOf", [])]
        return out

    def _reference(self, ref: str, where: str) -> Any:
        """What ``{"$ref": ref}`` becomes: the target inlined, or the ``$ref`` if recursive."""
        if not ref.startswith("#"):
            raise ValueError(
                f"input schema: only local $ref ('#...') is supported, found {ref!r} at {where}"
            )
        if ref in self._expanding or self._inlined >= self._MAX_INLINED:
            return {"$ref": ref}
        try:
            target = local_ref_target(self._root, ref, where)
        except LookupError as exc:
            raise ValueError(f"input schema: {exc}") from None
        self._inlined += 1
        self._expanding.append(ref)
        try:
            return self._schema(target, ref)
        finally:
            self._expanding.pop()


def _escape(key: str) -> str:
    """``key`` as one JSON Pointer token."""
    return key.replace("~", "~0").replace("/", "~1")


def _keep_dollar_meaning(pattern: str, where: str) -> str:
    """``pattern`` rewritten so that the fast validator, whose regex reads an unescaped ``$`` as
    ``\\Z``, matches what ``re.search(pattern, ...)`` matches in jsonschema: outside a character
    class ``$`` becomes the lookahead Python's ``$`` stands for (end, or before a final newline);
    inside one it becomes an escaped literal."""
    if _MULTILINE_FLAG.search(pattern):
        raise ValueError(f"input schema pattern at {where}: the multiline flag is not supported")
    out: list[str] = []
    in_class = False
    class_start = -1
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if char == "]" and i != class_start:
                in_class = False
            elif char == "$":
                char = "\\$"
        elif char == "[":
            in_class = True
            class_start = i + 2 if pattern.startswith("^", i + 1) else i + 1
        elif char == "$":
            char = r"(?=\n?\Z)"
        out.append(char)
        i += 1
    return "".join(out)
