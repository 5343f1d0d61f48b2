"""Reads a JSON Schema into the language's types.

Understood: ``type`` (object, array, string, number, integer, boolean), ``enum``
and ``const`` of strings, ``format: date-time`` (a timestamp), ``properties`` with
``required``, ``items``, local ``$ref`` into ``$defs``/``definitions``, and
``anyOf``/``oneOf`` of one type with ``null`` (read as optional). Anything else
becomes ``UnsupportedType``, an error only where a rule reads it.
"""

from __future__ import annotations

import math
from typing import Any

from aigre_policy.types import (
    BOOL,
    TIMESTAMP,
    FieldType,
    ListType,
    NumberType,
    ObjectType,
    StringType,
    Type,
    UnsupportedType,
)

_MAX_DEPTH = 24


class SchemaReader:
    def __init__(self, root: dict[str, Any]):
        self.root = root
        self._refs: dict[str, Type] = {}

    def read(self, schema: Any, name: str = "", depth: int = 0) -> tuple[Type, bool]:
        """The type of ``schema`` and whether it admits ``null`` (then it reads as optional)."""
        if depth > _MAX_DEPTH:
            return UnsupportedType("schema nested too deep or recursive"), False
        if not isinstance(schema, dict):
            return UnsupportedType("schema is not an object"), False
        if "$ref" in schema:
            return self._ref(schema["$ref"], depth), False
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [s for s in schema[key] if not _is_null(s)]
                nullable = len(options) < len(schema[key])
                if len(options) == 1:
                    inner, _ = self.read(options[0], name, depth + 1)
                    return inner, nullable
                return UnsupportedType(f"`{key}` of several types"), nullable
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.read(schema["allOf"][0], name, depth + 1)
        types = schema.get("type")
        nullable = False
        if isinstance(types, list):
            rest = [t for t in types if t != "null"]
            nullable = len(rest) < len(types)
            types = rest[0] if len(rest) == 1 else None
            if types is None:
                return UnsupportedType("several types"), nullable
        if "enum" in schema or "const" in schema:
            values = schema["enum"] if "enum" in schema else [schema["const"]]
            strings = [v for v in values if v is not None]
            if strings and all(isinstance(v, str) for v in strings):
                return StringType(tuple(strings)), nullable or None in values
            return UnsupportedType("enum of non-strings"), nullable
        if types is None and "properties" in schema:
            types = "object"
        match types:
            case "string":
                if schema.get("format") == "date-time":
                    return TIMESTAMP, nullable
                return StringType(), nullable
            case "integer" | "number":
                return (
                    NumberType(
                        types == "integer", _num(schema, "minimum"), _num(schema, "maximum")
                    ),
                    nullable,
                )
            case "boolean":
                return BOOL, nullable
            case "array":
                item, _ = self.read(schema.get("items", {}), name, depth + 1)
                return ListType(item), nullable
            case "object":
                return self._object(schema, name, depth), nullable
        return UnsupportedType("no `type`"), nullable

    def _object(self, schema: dict[str, Any], name: str, depth: int) -> ObjectType:
        required = set(schema.get("required", ()))
        fields: dict[str, FieldType] = {}
        for key, sub in (schema.get("properties") or {}).items():
            field_type, nullable = self.read(sub, key, depth + 1)
            default = _usable_default(sub, field_type)
            fields[key] = FieldType(field_type, key in required and not nullable, default)
        return ObjectType(schema.get("title") or name, fields)

    def _ref(self, ref: str, depth: int) -> Type:
        if ref in self._refs:
            return self._refs[ref]
        prefix = next((p for p in ("#/$defs/", "#/definitions/") if ref.startswith(p)), None)
        if prefix is None:
            return UnsupportedType(f"non-local $ref `{ref}`")
        target = self.root.get(prefix[2:-1], {}).get(ref[len(prefix) :])
        if target is None:
            return UnsupportedType(f"unresolved $ref `{ref}`")
        self._refs[ref] = UnsupportedType("recursive schema")
        resolved, _ = self.read(target, ref[len(prefix) :], depth + 1)
        self._refs[ref] = resolved
        return resolved


def _usable_default(schema: Any, typ: Type) -> tuple[Any, ...]:
    """The schema's ``default`` when it is a plain value of the field's kind, as ``(value,)``."""
    if not isinstance(schema, dict) or "default" not in schema:
        return ()
    value = schema["default"]
    plain = {
        StringType: isinstance(value, str),
        NumberType: isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value),
        type(BOOL): isinstance(value, bool),
        ListType: isinstance(value, list)
        and all(isinstance(v, str | int | float | bool) for v in value),
    }.get(type(typ), False)
    return (value,) if plain else ()


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _num(schema: dict[str, Any], key: str) -> float | None:
    value = schema.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def input_type(schema: dict[str, Any]) -> ObjectType:
    """The object type of a whole input document (``action``, ``context``, ``usage``)."""
    read, _ = SchemaReader(schema).read(schema, "input")
    if not isinstance(read, ObjectType):
        return ObjectType("input", {})
    return read
