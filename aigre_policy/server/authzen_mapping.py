"""How an AuthZEN request becomes a proposed action and an attested actor, per pack.

A pack served over AuthZEN carries ``authzen.yaml`` (or the server config names one):

```yaml
subjects:                      # the PIP the server holds: who each subject is
  directory: users.json        # an object keyed by subject id, or a list with `key`
  key: id                      # (lists only) the field that names each record
  aliases: [email]             # more fields a request may name a subject by
  lookup: [subject.identity, subject.id]   # where the request names the subject
resources:                     # optional: server-held attributes of resources
  directory: records.json
  key: id
  type: record                 # the resource type its records are (for search)
actions: [view, edit, delete]  # the action names a search may try
actor:                         # attested as context.actor, from the subject's record
  id: subject_record.id
  kind: {value: human}
  trust: {value: 1}
  groups: subject_record.roles
action:                        # the proposed action, field by field
  id: {digest: request}
  kind: action.name
  resource:
    id: resource.id
    owner: [resource.properties.ownerID, resource.ownerID]
```

A field's source is a path (``subject.id``, ``resource.properties.ownerID``, or into
the directory records ``subject_record.*`` / ``resource_record.*``), a list of paths
(the first present wins), ``{from: PATH, default: VALUE}``, a constant
``{value: VALUE}`` (a bare number or boolean is one too), or ``{digest: request}``
(a stable id: the SHA-256 of the request's subject, action, resource and context, so
asking again after an approval names the same action). A mapping without these keys
is a nested object. A path that is absent leaves the field out: the pack's schema then
decides, and an action missing a required field fails closed.

The subject is attested by the caller (the PEP), which is why only callers with the
``authzen`` scope may ask; a subject the directory does not know gets no actor, so the
pack treats it as the least trusted. Without ``actor``, no actor is attested.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from aigre_policy.server.config import located
from aigre_policy.verdict import canonical_json
from aigre_policy.yamlio import read_document

ROOTS = ("subject", "action", "resource", "context", "subject_record", "resource_record")
_MISSING = object()


class MappingError(Exception):
    """The AuthZEN mapping cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DirectorySpec(_Strict):
    directory: Path
    key: str = "id"
    aliases: tuple[str, ...] = ()
    lookup: tuple[str, ...] | None = None  # default: subject.id, or resource.id
    type: str | None = None


class MappingSpec(_Strict):
    subjects: DirectorySpec | None = None
    resources: DirectorySpec | None = None
    actions: tuple[str, ...] = ()
    actor: dict[str, Any] | None = None
    action: dict[str, Any]


# -- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FromPath:
    paths: tuple[tuple[str, ...], ...]
    default: Any = _MISSING

    def value(self, roots: Mapping[str, Any]) -> Any:
        for path in self.paths:
            node: Any = roots
            for key in path:
                if not isinstance(node, Mapping) or key not in node:
                    node = _MISSING
                    break
                node = node[key]
            if node is not _MISSING:
                return node
        return self.default


@dataclass(frozen=True, slots=True)
class Constant:
    constant: Any

    def value(self, roots: Mapping[str, Any]) -> Any:
        return self.constant


@dataclass(frozen=True, slots=True)
class Digest:
    def value(self, roots: Mapping[str, Any]) -> Any:
        asked = {k: roots.get(k) for k in ("subject", "action", "resource", "context")}
        return "authzen-" + hashlib.sha256(canonical_json(asked)).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Nested:
    fields: tuple[tuple[str, Any], ...]

    def value(self, roots: Mapping[str, Any]) -> Any:
        built = {}
        for name, source in self.fields:
            found = source.value(roots)
            if found is not _MISSING:
                built[name] = found
        return built


def _path(text: Any, where: str) -> tuple[str, ...]:
    if not isinstance(text, str) or not text:
        raise MappingError(f"{where}: a path must be a non-empty string, not {text!r}")
    parts = tuple(text.split("."))
    if parts[0] not in ROOTS or not all(parts):
        raise MappingError(f"{where}: `{text}` does not start with one of {', '.join(ROOTS)}")
    return parts


def source(spec: Any, where: str) -> Any:
    """The source a mapping value describes (see the module's docstring)."""
    if isinstance(spec, str):
        return FromPath((_path(spec, where),))
    if isinstance(spec, list):
        if not spec:
            raise MappingError(f"{where}: an empty list of paths")
        return FromPath(tuple(_path(p, where) for p in spec))
    if spec is None or isinstance(spec, bool | int | float):
        return Constant(spec)
    if not isinstance(spec, Mapping):
        raise MappingError(f"{where}: {type(spec).__name__} is not a source")
    if "value" in spec:
        _only(spec, {"value"}, where)
        return Constant(spec["value"])
    if "digest" in spec:
        _only(spec, {"digest"}, where)
        if spec["digest"] != "request":
            raise MappingError(f"{where}: `digest` takes `request`")
        return Digest()
    if "from" in spec:
        _only(spec, {"from", "default"}, where)
        paths = spec["from"] if isinstance(spec["from"], list) else [spec["from"]]
        found = FromPath(tuple(_path(p, where) for p in paths), spec.get("default", _MISSING))
        return found
    return Nested(tuple((str(k), source(v, f"{where}.{k}")) for k, v in spec.items()))


def _only(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(spec) - allowed)
    if extra:
        raise MappingError(f"{where}: `{extra[0]}` does not go with {sorted(allowed)}")


# -- directories -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Directory:
    """Records by every name a request may use for them; ``primary``: the names to search."""

    records: dict[str, dict[str, Any]]
    primary: tuple[str, ...]
    lookup: tuple[tuple[str, ...], ...]
    type: str | None

    def find(self, roots: Mapping[str, Any]) -> dict[str, Any] | None:
        for path in self.lookup:
            name = FromPath((path,)).value(roots)
            if isinstance(name, str | int) and not isinstance(name, bool):
                record = self.records.get(str(name))
                if record is not None:
                    return record
        return None


def _directory(spec: DirectorySpec, base: Path, where: str, lookup: str) -> Directory:
    path = spec.directory if spec.directory.is_absolute() else base / spec.directory
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MappingError(f"{where}: cannot read {path}: {exc}") from None
    if isinstance(data, list):
        items = [(r.get(spec.key), r) for r in data if isinstance(r, dict)]
    elif isinstance(data, dict):
        items = [(k, r) for k, r in data.items() if isinstance(r, dict)]
    else:
        raise MappingError(f"{where}: {path} holds neither an object nor a list of records")
    records: dict[str, dict[str, Any]] = {}
    primary = []
    for name, record in items:
        if not isinstance(name, str | int) or isinstance(name, bool):
            raise MappingError(f"{where}: a record of {path} has no `{spec.key}`")
        primary.append(str(name))
        records[str(name)] = record
    for _name, record in items:
        for alias in spec.aliases:
            other = record.get(alias)
            if isinstance(other, str | int) and not isinstance(other, bool):
                records.setdefault(str(other), record)
    paths = tuple(_path(p, f"{where}.lookup") for p in spec.lookup or (lookup,))
    return Directory(records, tuple(primary), paths, spec.type)


# -- the mapping -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthzenMapping:
    """The compiled mapping: request in, ``(action, actor)`` out."""

    action: Nested
    actor: Nested | None
    subjects: Directory | None
    resources: Directory | None
    actions: tuple[str, ...]
    file: str

    def roots(self, request: Mapping[str, Any]) -> dict[str, Any]:
        roots = {k: request.get(k) for k in ("subject", "action", "resource", "context")}
        if self.resources is not None:
            roots["resource_record"] = self.resources.find(roots)
        roots["subject_record"] = self.subjects.find(roots) if self.subjects else None
        return roots

    def proposal(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The proposed action and the attested actor (``None``: none) for one request."""
        roots = self.roots(request)
        action = self.action.value(roots)
        if self.actor is None:
            return action, None
        if self.subjects is not None and roots["subject_record"] is None:
            return action, None  # an unknown subject: no actor, the least trusted
        return action, self.actor.value(roots)


def load_mapping(path: Path) -> AuthzenMapping:
    """The mapping at ``path``; ``MappingError`` with ``file:line:col`` where there is one."""
    document, problems = read_document(path)
    if document is None:
        raise MappingError("; ".join(located(path, p) for p in problems))
    try:
        spec = MappingSpec.model_validate(document.data)
    except ValidationError as exc:
        err = exc.errors()[0]
        span = document.span_of(tuple(err["loc"]))
        where = ".".join(str(k) for k in err["loc"])
        raise MappingError(f"{path}:{span.line}:{span.column}: {where}: {err['msg']}") from None
    base = path.parent
    action = source(spec.action, f"{path}: action")
    actor = source(spec.actor, f"{path}: actor") if spec.actor is not None else None
    if not isinstance(action, Nested) or (actor is not None and not isinstance(actor, Nested)):
        raise MappingError(f"{path}: `action` and `actor` map field names to sources")
    subjects = resources = None
    if spec.subjects is not None:
        subjects = _directory(spec.subjects, base, f"{path}: subjects", "subject.id")
    if spec.resources is not None:
        resources = _directory(spec.resources, base, f"{path}: resources", "resource.id")
    return AuthzenMapping(action, actor, subjects, resources, spec.actions, str(path))
