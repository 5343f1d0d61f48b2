"""The input schema as Rego: ``errors``, what is wrong with an input, so Rego fails closed too.

Each place in the input the schema constrains gets a rule binding its value with plain
references (``walk`` is not used: regorus yields nothing for ``[p, v] := walk(x)``) and
its keywords as JSON text; ``errors`` lists what they find in the native validator's
order. ``rego.validity`` emits ``_valid``, the cheap test ``decision`` asks first.

rego-cpp has no ``json.match_schema``, so the checks are emitted for the
keywords the pack's schema uses, with the meaning ``aigre_policy.validation``
gives them: paths as it prints them, ``format: date-time`` as
``is_rfc3339_date_time`` reads it, other formats as annotations. A keyword
without an exact Rego form is a diagnostic, never skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.diagnostics import Diagnostic
from aigre_policy.rego.expr import literal
from aigre_policy.rego.layout import WIDTH
from aigre_policy.rego.validity import validity_rules
from aigre_policy.targets import local_ref

BOUNDS = {
    "minimum": ("<", "is less than the minimum of"),
    "maximum": (">", "is greater than the maximum of"),
    "exclusiveMinimum": ("<=", "is less than or equal to the minimum of"),
    "exclusiveMaximum": (">=", "is greater than or equal to the maximum of"),
    "minLength": ("<", "is shorter than"),
    "maxLength": (">", "is longer than"),
    "minItems": ("<", "has fewer items than"),
    "maxItems": (">", "has more items than"),
}


@dataclass(frozen=True)
class Where:
    """A value in the input: the body lines binding it, its Rego term, its path as a string."""

    guards: tuple[str, ...]
    term: str
    path: tuple[tuple[str, str], ...]  # ("key", name) | ("index", var) | ("dynamic", var)

    @property
    def static(self) -> bool:
        """No step is a key only known at run time (``additionalProperties``)."""
        return all(kind != "dynamic" for kind, _ in self.path)

    def steps(self) -> str:
        """The path as a Rego array: keys as strings, indices and run-time keys as variables."""
        return "[" + ", ".join(literal(v) if k == "key" else v for k, v in self.path) + "]"

    def rendered(self) -> str:
        """The path as validation prints it, a literal where it is static (most of it)."""
        parts: list[str] = []
        text = ""
        for kind, value in self.path:
            if kind == "key":
                text += _key(value, first=not text and not parts)
            elif kind == "index":
                parts += [literal(text + "["), f"format_int({value}, 10)"]
                text = "]"
            else:
                prefix = literal(text) if text or parts else '""'
                parts += [f"lib.child({prefix}, {value})"]
                text = ""
        if not parts:
            return literal(text)
        if text:
            parts.append(literal(text))
        return 'concat("", [' + ", ".join(parts) + "])"


@dataclass
class SchemaEmitter:
    root: dict[str, Any]
    rules: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    counter: int = 0
    refs: list[str] = field(default_factory=list)

    def fresh(self) -> str:
        self.counter += 1
        return f"i{self.counter}"

    def problems_rule(self, where: Where, params: dict[str, Any]) -> None:
        """The keywords of one schema at one place: a rule of its own, its values bound by
        plain references (never ``walk``, which engines answer differently). Each error
        carries the key ``lib.sorted_problems`` orders by, so every engine lists them in
        the order the native validator does."""
        if not params:
            return
        guards = "".join(f"\t{line}\n" for line in where.guards)
        keywords = f"json.unmarshal({json_text(params)})"
        self.rules.append(
            f"_problems contains [lib.problem_key({where.steps()}, e), e] if {{\n{guards}"
            f"\tsome e in lib.problems({where.term}, {where.rendered()}, {keywords})\n}}"
        )

    def check(self, schema: Any, where: Where) -> None:
        if schema is True:
            return
        if schema is False:
            self.problems_rule(where, {"false": True})
            return
        if not isinstance(schema, dict):
            return
        # a keyword outside targets.CHECKED never gets here: the check stage refuses it (E604)
        term = where.term
        if "$ref" in schema:
            self.reference(schema["$ref"], where)
        for part in schema.get("allOf", []):
            self.check(part, where)
        params: dict[str, Any] = {}
        if "type" in schema:
            params["type"] = (
                schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            )
        if "enum" in schema:
            params["enum"] = schema["enum"]
        if "const" in schema:
            params["const"] = [schema["const"]]  # in a list: a `false` or `null` const is data
        params |= {keyword: schema[keyword] for keyword in BOUNDS if keyword in schema}
        if "pattern" in schema:
            params["pattern"] = schema["pattern"]
        if schema.get("format") == "date-time":
            params["date_time"] = True
        if schema.get("required"):
            params["required"] = list(schema["required"])
        properties = schema.get("properties", {})
        if schema.get("additionalProperties", True) is False:
            params["closed"] = sorted(properties)  # the only keys allowed
        self.problems_rule(where, params)
        for key, sub in properties.items():
            self.fresh()
            child = f"x{self.counter}"  # bound only when present: absent optional fields pass
            path = (*where.path, ("key", key))
            guards = (*where.guards, f"{child} := {term}[{literal(key)}]")
            self.check(sub, Where(guards, child, path))
        self.additional(schema, properties, where)
        if "items" in schema:
            index, item = self.fresh(), f"x{self.counter}"
            guards = (
                *where.guards,
                f"is_array({term})",
                f"some {index}",
                f"{item} := {term}[{index}]",
            )
            path = (*where.path, ("index", index))
            self.check(schema["items"], Where(guards, item, path))

    def additional(self, schema: dict[str, Any], properties: dict[str, Any], where: Where) -> None:
        extra = schema.get("additionalProperties", True)
        if extra is True or extra is False:  # false: the `closed` keyword of problems_rule
            return
        declared = literal(sorted(properties))
        term = where.term
        key, value = self.fresh(), f"x{self.counter}"
        guards = (
            *where.guards,
            f"is_object({term})",
            f"some {key} in object.keys({term})",
            f"not {key} in {declared}",
            f"{value} := {term}[{key}]",
        )
        path = (*where.path, ("dynamic", key))
        self.check(extra, Where(guards, value, path))

    def reference(self, ref: Any, where: Where) -> None:
        target = self.resolve(ref)
        # an unresolvable or recursive reference never gets here: the check stage refuses
        # it (E604); skipping it keeps the walk finite all the same
        if target is None or ref in self.refs:
            return
        self.refs.append(ref)
        self.check(target, where)
        self.refs.pop()

    def resolve(self, ref: Any) -> Any:
        return local_ref(self.root, ref)


def emit_schema(schema: dict[str, Any]) -> tuple[list[str], list[Diagnostic]]:
    """The ``errors`` rules checking ``input`` against ``schema``, then ``_valid``
    (``rego.validity``) and the helpers it calls."""
    emitter = SchemaEmitter(schema)
    emitter.check(schema, Where((), "input", ()))
    unique = list(dict.fromkeys(d for d in emitter.diagnostics))
    errors = (
        "# errors: what is wrong with the input, in the native validator's order\n"
        "errors := lib.sorted_problems(_problems)\n\n"
        "_problems contains x if {\n\tx := null\n\tfalse\n}"
    )
    return [errors, *emitter.rules, *validity_rules(schema)], unique


def json_text(value: Any) -> str:
    """``value`` as JSON in a Rego string: a constant string costs rego-cpp no local
    variable, an object literal one per object and list in it; `lib.problems` reads it
    with ``json.unmarshal``, and only for input that breaks the schema. Long text is laid
    out a value a line (JSON whitespace), or left to ``layout.fit`` to cut in pieces."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if len(text) > WIDTH:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1)
    fits = all(len(line) <= WIDTH for line in text.splitlines())
    plain = "`" not in text and all(line.isprintable() for line in text.splitlines())
    return f"`{text}`" if fits and plain else literal(text)


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _key(name: str, first: bool) -> str:
    """One key of a path as ``validation._dotted`` prints it."""
    if _PLAIN_KEY.fullmatch(name):
        return name if first else f".{name}"
    return f"[{json.dumps(name, ensure_ascii=False)}]"
