"""``_valid``: the input schema as one Rego test that holds exactly when ``errors`` is empty.

The ``errors`` rules (``rego.schema``) say what is wrong with an input; finding none
costs rego-cpp milliseconds. ``decision`` asks ``_valid`` first and evaluates ``errors``
only when it fails, so a valid input pays for one walk of the schema:

* values are bound once (``x3 := x1["kind"]``) and tested positively (``x3 in [...]``);
* an optional property reads as a value that passes its schema when it is absent
  (``object.get(x1, "tested", false)``), so it is checked in line, without a helper;
* items are checked with ``every``;
* every builtin is called only on the type it takes, its type tested first: regorus
  (and OPA with strict builtin errors) raises where rego-cpp is undefined, and a raise
  aborts the decision rather than failing the test.

Each test is the negation of an ``errors`` rule, keyword by keyword; where a schema
needs more than these forms, a helper function says whether the value breaks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.rego.expr import literal
from aigre_policy.targets import ANNOTATIONS, local_ref
from aigre_policy.validation import is_rfc3339_date_time

TYPE_TESTS = {
    "object": "is_object({x})",
    "array": "is_array({x})",
    "string": "is_string({x})",
    "number": "is_number({x})",
    "integer": "is_number({x})\nfloor({x}) == {x}",  # floor raises on the rest in some engines
    "boolean": "is_boolean({x})",
    "null": "is_null({x})",
}
BOUNDS = {
    "minimum": ("<", "number"),
    "maximum": (">", "number"),
    "exclusiveMinimum": ("<=", "number"),
    "exclusiveMaximum": (">=", "number"),
    "minLength": ("<", "string"),
    "maxLength": (">", "string"),
    "minItems": ("<", "array"),
    "maxItems": (">", "array"),
}
HOLDS = {"<": ">=", ">": "<=", "<=": ">", ">=": "<"}  # the bound holds: the opposite test
# keywords a stand-in for an absent property is checked against (others: no stand-in)
STAND_IN = frozenset(
    {"type", "enum", "const", "format", "required", "properties", "additionalProperties"}
    | {"items", *BOUNDS}
)
_ABSENT = object()


@dataclass
class Block:
    """The lines of one Rego body."""

    lines: list[str] = field(default_factory=list)

    def close(self) -> list[str]:
        return self.lines


@dataclass
class ValidityEmitter:
    root: dict[str, Any]
    helpers: list[str] = field(default_factory=list)
    counter: int = 0
    refs: list[str] = field(default_factory=list)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # ------------------------------------------------------------ bodies
    def body(self, schema: Any, term: str, where: str) -> list[str]:
        """A whole body testing that ``term`` matches ``schema``."""
        block = Block()
        self.valid(schema, term, where, block)
        return block.close()

    def valid(self, schema: Any, term: str, where: str, block: Block) -> None:
        """Add to ``block`` the tests that hold exactly when ``term`` matches ``schema``."""
        if schema is False:
            block.lines.append("false")
            return
        if not isinstance(schema, dict):
            return
        parts = self.parts(schema)
        types = _types(parts)
        # type tests first: the builtins after them take only that type, and some engines
        # (and OPA with strict builtin errors) raise on another rather than fail the test
        for part in parts:
            if "type" in part:
                self.type_test(part["type"], term, block)
        for part in parts:
            self.keywords(part, term, types, where, block)

    def parts(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """``schema`` with what its ``$ref`` and ``allOf`` add (as ``check`` follows them)."""
        found = [schema]
        ref = schema.get("$ref")
        if ref is not None and ref not in self.refs:
            target = local_ref(self.root, ref)
            if isinstance(target, dict):
                self.refs.append(ref)
                found += self.parts(target)
                self.refs.pop()
            elif target is False:
                found.append({"not": True})
        for part in schema.get("allOf", []):
            if isinstance(part, dict):
                found += self.parts(part)
            elif part is False:
                found.append({"not": True})
        return found

    def type_test(self, declared: Any, term: str, block: Block) -> None:
        names = declared if isinstance(declared, list) else [declared]
        if len(names) != 1 or names[0] not in TYPE_TESTS:
            block.lines.append(
                f"count([1 | some kind in {literal(names)}; lib.type_ok({term}, kind)]) > 0"
            )
        else:
            block.lines += TYPE_TESTS[names[0]].replace("{x}", term).split("\n")

    def keywords(
        self,
        part: dict[str, Any],
        term: str,
        types: frozenset[str] | None,
        where: str,
        block: Block,
    ) -> None:
        def known(kind: str) -> bool:
            return types is not None and types <= {kind}

        lines = block.lines
        if part.get("not") is True:  # a `false` schema reached through $ref or allOf
            lines.append("false")
        if "enum" in part:
            lines.append(f"{term} in {literal(part['enum'])}")
        if "const" in part:
            lines.append(f"{term} == {literal(part['const'])}")
        for keyword, (op, kind) in BOUNDS.items():
            if keyword not in part:
                continue
            limit = literal(part[keyword])
            measured = "{x}" if kind == "number" else "count({x})"
            if known(kind):
                lines.append(f"{measured.replace('{x}', term)} {HOLDS[op]} {limit}")
            else:
                self.unless(term, where, [f"is_{kind}({{x}})", f"{measured} {op} {limit}"], block)
        if "pattern" in part:
            pattern = literal(part["pattern"])
            if known("string"):
                lines.append(f"regex.match({pattern}, {term})")
            else:
                failing = ["is_string({x})", f"not regex.match({pattern}, {{x}})"]
                self.unless(term, where, failing, block)
        if part.get("format") == "date-time":
            if known("string"):
                lines.append(f"lib.date_time({term})")
            else:
                self.unless(term, where, ["is_string({x})", "not lib.date_time({x})"], block)
        self.object_keywords(part, term, known("object"), where, block)
        if "items" in part:
            self.items(part["items"], term, known("array"), where, block)

    def items(self, schema: Any, term: str, is_array: bool, where: str, block: Block) -> None:
        item = self.fresh("v")
        checks = self.body(schema, item, f"an item of {where}")
        if not checks:
            return
        if is_array:
            block.lines += [f"every {item} in {term} {{", *(f"\t{c}" for c in checks), "}"]
            return
        broken = ["is_array(a)", f"some {item} in a", *self.negation(checks, where, item)]
        name = self.helper(f"an item of {where} breaks the schema", "a", [broken])
        block.lines.append(f"not {name}({term})")

    def object_keywords(
        self, part: dict[str, Any], term: str, is_object: bool, where: str, block: Block
    ) -> None:
        required = [k for k in part.get("required", []) if isinstance(k, str)]
        properties = part.get("properties", {})
        if not is_object:
            self.loose_object(part, required, properties, term, where, block)
            return
        for key in required:
            if key not in properties:
                block.lines.append(f"_ = {term}[{literal(key)}]")
        for key, sub in properties.items():
            child = f"{where}.{key}" if where else key
            value = self.fresh("x")
            if key in required:
                read = f"{term}[{literal(key)}]"
            else:
                stand_in = self.passing(sub)
                if stand_in is _ABSENT:  # no value passes for sure: a helper
                    checks = self.body(sub, "v", child)
                    if checks:
                        broken = [f"v := o[{literal(key)}]", *self.negation(checks, child, "v")]
                        name = self.helper(
                            f"{child}, where present, breaks the schema", "o", [broken]
                        )
                        block.lines.append(f"not {name}({term})")
                    continue
                read = f"object.get({term}, {literal(key)}, {literal(stand_in)})"
            mark = len(block.lines)
            block.lines.append(f"{value} := {read}")
            self.valid(sub, value, child, block)
            if len(block.lines) == mark + 1:  # untested
                block.lines[-1] = f"_ = {read}" if key in required else ""
        extra = part.get("additionalProperties", True)
        declared = literal(sorted(properties))
        if extra is False:
            block.lines.append(f"object.remove({term}, {declared}) == {{}}")
        elif extra is not True:
            checks = self.body(extra, "v", f"an extra property of {where}")
            if checks:
                broken = [
                    "some k in object.keys(o)",
                    f"not k in {declared}",
                    "v := o[k]",
                    *self.negation(checks, f"an extra property of {where}", "v"),
                ]
                name = self.helper(f"an extra property of {where} breaks the schema", "o", [broken])
                block.lines.append(f"not {name}({term})")
        block.lines[:] = [line for line in block.lines if line]

    def loose_object(
        self,
        part: dict[str, Any],
        required: list[str],
        properties: dict[str, Any],
        term: str,
        where: str,
        block: Block,
    ) -> None:
        """The object keywords of a value that need not be an object: each applies only
        where it is one, so each is a helper saying whether the value breaks it."""
        if required:
            failing = [
                "is_object({x})",
                f"some k in {literal(required)}",
                "not lib.has_key({x}, k)",
            ]
            self.unless(term, where, failing, block)
        for key, sub in properties.items():
            child = f"{where}.{key}" if where else key
            checks = self.body(sub, "v", child)
            if checks:
                broken = [f"v := o[{literal(key)}]", *self.negation(checks, child, "v")]
                name = self.helper(f"{child}, where present, breaks the schema", "o", [broken])
                block.lines.append(f"not {name}({term})")
        extra = part.get("additionalProperties", True)
        declared = literal(sorted(properties))
        if extra is False:
            failing = ["is_object({x})", f"count(object.remove({{x}}, {declared})) > 0"]
            self.unless(term, where, failing, block)
        elif extra is not True:
            checks = self.body(extra, "v", f"an extra property of {where}")
            if checks:
                broken = [
                    "is_object(o)",
                    "some k in object.keys(o)",
                    f"not k in {declared}",
                    "v := o[k]",
                    *self.negation(checks, f"an extra property of {where}", "v"),
                ]
                name = self.helper(f"an extra property of {where} breaks the schema", "o", [broken])
                block.lines.append(f"not {name}({term})")

    # ------------------------------------------------------------ helpers
    def helper(self, comment_text: str, params: str, bodies: list[list[str]]) -> str:
        """A function of the value, true when one of ``bodies`` holds."""
        name = self.fresh("_input_")
        text = "\n".join(
            f"{name}({params}) if {{\n" + "\n".join(f"\t{line}" for line in body) + "\n}"
            for body in bodies
        )
        self.helpers.append(f"# {comment_text}\n{text}")
        return name

    def negation(self, lines: list[str], where: str, var: str) -> list[str]:
        """A body that holds when ``lines`` (about the variable ``var``) do not all hold."""
        single = lines[0] if len(lines) == 1 else ""
        if single and " := " not in single and not single.startswith(("not ", "every ", "_ =")):
            return [f"not {single}"]
        return [f"not {self.helper(f'{where} is valid', var, [lines])}({var})"]

    def unless(self, term: str, where: str, failing: list[str], block: Block) -> None:
        """``term`` does not meet the failure condition ``failing`` (about ``{x}``)."""
        name = self.helper(
            f"{where or 'the input'} breaks a keyword",
            "x",
            [[f.replace("{x}", "x") for f in failing]],
        )
        block.lines.append(f"not {name}({term})")

    # ------------------------------------------------------------ stand-ins
    def passing(self, schema: Any, depth: int = 0) -> Any:
        """A value that matches ``schema`` for sure, to read in place of an absent
        property; ``_ABSENT`` when the schema is not simple enough to be sure."""
        if not isinstance(schema, dict) or schema == {} or depth > 8:
            return _ABSENT
        parts = self.parts(schema)
        keywords = {k for part in parts for k in part}
        if not keywords <= STAND_IN | ANNOTATIONS | {"$ref", "allOf"}:
            return _ABSENT
        for candidate in self.candidates(parts, depth):
            if self.matches(candidate, parts, depth):
                return candidate
        return _ABSENT

    def candidates(self, parts: list[dict[str, Any]], depth: int) -> list[Any]:
        found: list[Any] = []
        for part in parts:
            if "const" in part:
                found.append(part["const"])
            found += part.get("enum", []) if isinstance(part.get("enum"), list) else []
        types = _types(parts) or frozenset()
        if "string" in types:
            lengths = [p["minLength"] for p in parts if isinstance(p.get("minLength"), int)]
            found.append("a" * max(lengths or [0]))
            if any(p.get("format") == "date-time" for p in parts):
                found.insert(0, "2000-01-01T00:00:00Z")
        if "number" in types:
            for part in parts:
                for keyword in ("minimum", "maximum"):
                    if isinstance(part.get(keyword), int | float):
                        found.append(part[keyword])
                if isinstance(part.get("exclusiveMinimum"), int | float):
                    found.append(math.floor(part["exclusiveMinimum"]) + 1)
                if isinstance(part.get("exclusiveMaximum"), int | float):
                    found.append(math.ceil(part["exclusiveMaximum"]) - 1)
            found += [0, 1]
        if "boolean" in types:
            found.append(False)
        if "array" in types:
            found.append([])
        if "object" in types:  # the required properties, each with a stand-in of its own
            candidate: dict[str, Any] = {}
            for part in parts:
                for key in part.get("required", []):
                    sub = next(
                        (p["properties"][key] for p in parts if key in p.get("properties", {})),
                        None,
                    )
                    value = self.passing(sub, depth + 1) if sub is not None else _ABSENT
                    if value is _ABSENT:
                        return found
                    candidate[key] = value
            found.append(candidate)
        return found

    def matches(self, value: Any, parts: list[dict[str, Any]], depth: int) -> bool:
        """Whether ``value`` meets every keyword of ``parts`` (as ``lib.problems`` tests)."""
        for part in parts:
            if not _passes(value, part):
                return False
            if isinstance(value, dict):
                if any(k not in value for k in part.get("required", [])):
                    return False
                properties = part.get("properties", {})
                for key, item in value.items():
                    if key in properties:
                        if not self.matches(item, self.parts(properties[key]), depth + 1):
                            return False
                    elif part.get("additionalProperties", True) is not True:
                        return False
            if isinstance(value, list) and value:
                return False  # only the empty list stands in
        return True


def _types(parts: list[dict[str, Any]]) -> frozenset[str] | None:
    """The JSON types every part allows (``integer`` counted as ``number``), if any says."""
    found: frozenset[str] | None = None
    for part in parts:
        if "type" in part:
            named = part["type"] if isinstance(part["type"], list) else [part["type"]]
            kinds = frozenset("number" if t == "integer" else t for t in named)
            found = kinds if found is None else found & kinds
    return found


def _passes(value: Any, part: dict[str, Any]) -> bool:
    """Whether ``value`` meets the simple keywords of ``part`` (as ``lib.problems`` tests)."""
    if part.get("not") is True:
        return False
    if "type" in part:
        names = part["type"] if isinstance(part["type"], list) else [part["type"]]
        if not any(_is(value, name) for name in names):
            return False
    if "enum" in part and not any(_same(value, v) for v in part["enum"]):
        return False
    if "const" in part and not _same(value, part["const"]):
        return False
    for keyword, (op, kind) in BOUNDS.items():
        if keyword in part and _is(value, kind):
            measured = value if kind == "number" else len(value)
            breaks = {"<": measured < part[keyword], ">": measured > part[keyword]}.get(op)
            if breaks is None:
                breaks = measured <= part[keyword] if op == "<=" else measured >= part[keyword]
            if breaks:
                return False
    if part.get("format") == "date-time" and isinstance(value, str):
        return is_rfc3339_date_time(value)
    return True


def _is(value: Any, kind: str) -> bool:
    match kind:
        case "string":
            return isinstance(value, str)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "integer":
            return _is(value, "number") and float(value).is_integer()
        case "boolean":
            return isinstance(value, bool)
        case "null":
            return value is None
        case "array":
            return isinstance(value, list)
        case "object":
            return isinstance(value, dict)
    return False


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``false`` is not ``0``."""
    return (type(a) is type(b) and a == b) or (_is(a, "number") and _is(b, "number") and a == b)


def validity_rules(schema: dict[str, Any]) -> list[str]:
    """``_valid`` and the helpers it calls."""
    emitter = ValidityEmitter(schema)
    lines = emitter.body(schema, "input", "")
    valid = "_valid if {\n" + "\n".join(f"\t{line}" for line in lines or ["true"]) + "\n}"
    intro = "# the input matches the schema, so `errors` is empty (see rego.validity)"
    return [f"{intro}\n{valid}", *emitter.helpers]
