"""The input schema as Rego: one ``errors`` rule per check, so Rego fails closed too.

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

from aigre_policy.diagnostics import Diagnostic, error
from aigre_policy.rego.expr import literal

ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$comment", "$defs", "definitions", "title", "description",
        "default", "examples", "deprecated", "readOnly", "writeOnly",
        "contentEncoding", "contentMediaType",
    }
)  # fmt: skip
CHECKED = frozenset(
    {
        "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "minLength", "maxLength", "minItems", "maxItems", "pattern", "format", "required",
        "properties", "additionalProperties", "items", "$ref", "allOf",
    }
)  # fmt: skip
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
SIZED = {"minLength": "string", "maxLength": "string", "minItems": "array", "maxItems": "array"}


@dataclass(frozen=True)
class Where:
    """A value in the input: the body lines binding it, its Rego term, its path as a string."""

    guards: tuple[str, ...]
    term: str
    path: tuple[tuple[str, str], ...]  # ("key", name) | ("index", var) | ("dynamic", var)

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

    def error_rule(self, where: Where, keyword: str, message: str, tests: list[str]) -> None:
        document = (
            f'{{"kind": "input", "path": {where.rendered()}, "keyword": {literal(keyword)}, '
            f'"message": {message}}}'
        )
        body = "\n".join(f"\t{line}" for line in (*where.guards, *tests))
        self.rules.append(f"errors contains {document} if {{\n{body}\n}}")

    def check(self, schema: Any, where: Where) -> None:
        if schema is True:
            return
        if schema is False:
            self.error_rule(where, "false", '"no value is allowed here"', [f"_ = {where.term}"])
            return
        if not isinstance(schema, dict):
            return
        for keyword in schema:
            if keyword not in CHECKED and keyword not in ANNOTATIONS:
                self.diagnostics.append(
                    error(
                        "E604",
                        f"the input schema keyword `{keyword}` has no Rego check",
                        hint="supported: " + ", ".join(sorted(CHECKED)),
                    )
                )
        term = where.term
        if "$ref" in schema:
            self.reference(schema["$ref"], where)
        for part in schema.get("allOf", []):
            self.check(part, where)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            self.error_rule(
                where,
                "type",
                f'concat("", ["expected ", {literal(" or ".join(types))}])',
                [f"count([1 | some t in {literal(types)}; lib.type_ok({term}, t)]) == 0"],
            )
        if "enum" in schema:
            self.error_rule(
                where,
                "enum",
                f'concat("", [lib.fmt({term}), " is not one of ", '
                f"lib.fmt({literal(schema['enum'])})])",
                [f"not {term} in {literal(schema['enum'])}"],
            )
        if "const" in schema:
            self.error_rule(
                where,
                "const",
                f'concat("", ["expected ", lib.fmt({literal(schema["const"])})])',
                [f"{term} != {literal(schema['const'])}"],
            )
        for keyword, (op, text) in BOUNDS.items():
            if keyword not in schema:
                continue
            limit = literal(schema[keyword])
            kind = SIZED.get(keyword)
            guard = f"is_{kind}({term})" if kind else f"is_number({term})"
            measured = f"count({term})" if kind else term
            message = f'concat("", [lib.fmt({measured}), " {text} ", lib.fmt({limit})])'
            self.error_rule(where, keyword, message, [guard, f"{measured} {op} {limit}"])
        if "pattern" in schema:
            pattern = literal(schema["pattern"])
            self.error_rule(
                where,
                "pattern",
                f'concat("", [{term}, " does not match ", {pattern}])',
                [f"is_string({term})", f"not regex.match({pattern}, {term})"],
            )
        if schema.get("format") == "date-time":
            self.error_rule(
                where,
                "format",
                f'concat("", [{term}, " is not a date-time"])',
                [f"is_string({term})", f"not lib.date_time({term})"],
            )
        for key in schema.get("required", []):
            self.error_rule(
                where,
                "required",
                f'concat("", [{literal(key)}, " is a required property"])',
                [f"is_object({term})", f"not lib.has_key({term}, {literal(key)})"],
            )
        properties = schema.get("properties", {})
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
        if extra is True:
            return
        declared = literal(sorted(properties))
        term = where.term
        if extra is False:
            self.error_rule(
                where,
                "additionalProperties",
                'concat("", ["unexpected properties: ", concat(", ", extras)])',
                [
                    f"is_object({term})",
                    f"extras := [k | some k in object.keys({term}); not k in {declared}]",
                    "count(extras) > 0",
                ],
            )
            return
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
        if target is None:
            self.diagnostics.append(
                error("E604", f"the input schema reference `{ref}` has no Rego check")
            )
            return
        if ref in self.refs:
            self.diagnostics.append(
                error(
                    "E604", f"the input schema reference `{ref}` is recursive; Rego cannot check it"
                )
            )
            return
        self.refs.append(ref)
        self.check(target, where)
        self.refs.pop()

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return None
        node: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


def emit_schema(schema: dict[str, Any]) -> tuple[list[str], list[Diagnostic]]:
    """The ``errors`` rules checking ``input`` against ``schema``."""
    emitter = SchemaEmitter(schema)
    emitter.check(schema, Where((), "input", ()))
    unique = list(dict.fromkeys(d for d in emitter.diagnostics))
    return emitter.rules, unique


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _key(name: str, first: bool) -> str:
    """One key of a path as ``validation._dotted`` prints it."""
    if _PLAIN_KEY.fullmatch(name):
        return name if first else f".{name}"
    return f"[{json.dumps(name, ensure_ascii=False)}]"
