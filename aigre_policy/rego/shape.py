"""What a pack's input schema promises of the values a rule reads.

Rules only ever run on input that matches the schema (the pack validates it first,
and the ``decision`` entrypoint checks it in Rego), so the emitter may rely on the
schema's promises: a value that is always an object is read with ``object.get``,
a string goes into a message as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shape:
    """What the input schema promises of one value of a valid input.

    ``parts`` are the schemas that all constrain the value (``$ref`` and ``allOf``
    followed); none means nothing is known. The emitter reads cheaper Rego where a
    promise makes it exact: ``object.get`` for a value that is always an object, a
    string inserted as it is into a message.
    """

    root: Any
    parts: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, schema: Any) -> Shape:
        return cls(schema, tuple(_constraints(schema, schema, ())))

    def _under(self, schemas: list[Any]) -> Shape:
        parts: list[dict[str, Any]] = []
        for schema in schemas:
            parts += _constraints(self.root, schema, ())
        return Shape(self.root, tuple(parts))

    def child(self, key: str) -> Shape:
        """The value at ``key`` of this object (known only where a part declares it)."""
        return self._under(
            [p["properties"][key] for p in self.parts if key in p.get("properties", {})]
        )

    def requires(self, key: str) -> bool:
        """Whether a valid value (an object) always has ``key``."""
        return any(key in p.get("required", []) for p in self.parts)

    def item(self) -> Shape:
        """An item of this array (known only where a part gives one ``items`` schema)."""
        return self._under([p["items"] for p in self.parts if isinstance(p.get("items"), dict)])

    @property
    def types(self) -> frozenset[str] | None:
        """The JSON types a valid value may have, or ``None`` when the schema does not say."""
        found: frozenset[str] | None = None
        for part in self.parts:
            if "type" in part:
                named = part["type"] if isinstance(part["type"], list) else [part["type"]]
                kinds = frozenset("number" if t == "integer" else t for t in named)
                found = kinds if found is None else found & kinds
        return found

    def only(self, kind: str) -> bool:
        """Whether every valid value is of JSON type ``kind`` (``object``, ``string``, ...)."""
        return self.types == frozenset({kind})

    @property
    def never_null(self) -> bool:
        types = self.types
        return types is not None and "null" not in types


def _constraints(root: Any, schema: Any, seen: tuple[str, ...]) -> list[dict[str, Any]]:
    """``schema`` and what its local ``$ref`` and ``allOf`` add, as plain schema objects."""
    if not isinstance(schema, dict):
        return []
    found = [schema]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        found += _constraints(root, target, (*seen, ref))
    for part in schema.get("allOf", []) if isinstance(schema.get("allOf"), list) else []:
        found += _constraints(root, part, seen)
    return found
