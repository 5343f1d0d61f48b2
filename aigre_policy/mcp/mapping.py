"""The MCP mapping: how a tool call becomes the proposed action a pack judges.

A pack's ``mcp.yaml`` lists tools by name or glob; each entry gives the action
fields a call of that tool proposes. A field is a constant, or a *source*
``{from: arguments.PATH, times: N, plus: N, default: V}`` read from the call's
arguments. ``defaults`` gives the fields every entry starts from. A call whose
tool no entry matches gets ``unmapped`` (``deny`` unless the file says
``forward``). When the pack's input schema declares ``action.tool``, the call's
name and arguments are put there as ``{name, arguments}`` so rules can read them.

Loading checks the file against ``schemas/mcp-mapping.schema.json`` (E520) and
then against the pack: every field must be one the pack's input schema declares
for ``action``, every entry must give a ``kind`` (E521). Problems are
diagnostics at file:line:col, raised together as one ``CompileError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from aigre_policy.diagnostics import (
    CompileError,
    Diagnostic,
    SourceText,
    Span,
    error,
    sorted_diagnostics,
)
from aigre_policy.testing.schema_values import at_path, resolve
from aigre_policy.yamlio import Document, read_document

FILE_NAME = "mcp.yaml"
UNMAPPED = ("deny", "forward")
_SOURCE_KEYS = frozenset({"from", "times", "plus", "default"})
_FILLED = ("id", "requested_at")  # the proxy fills these; a mapping never does


class MappingError(ValueError):
    """A call's arguments cannot give the action its mapping asks for."""


@dataclass(frozen=True, slots=True)
class Source:
    """A field read from the call's arguments: ``from`` path, then ``times`` and ``plus``."""

    path: tuple[str, ...]  # below ``arguments``; empty: the whole arguments object
    times: float | None = None
    plus: float | None = None
    default: Any = None
    has_default: bool = False

    @property
    def text(self) -> str:
        return ".".join(("arguments", *self.path))

    def read(self, arguments: Mapping[str, Any]) -> Any:
        value: Any = arguments
        for step in self.path:
            if not isinstance(value, Mapping) or step not in value:
                if self.has_default:
                    return self.default
                raise MappingError(f"the call has no `{self.text}`, which the mapping reads")
            value = value[step]
        if self.times is None and self.plus is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MappingError(f"`{self.text}` is {json.dumps(value)[:60]}, not a number")
        return value * (1 if self.times is None else self.times) + (self.plus or 0)


@dataclass(frozen=True, slots=True)
class ToolRule:
    """One entry of ``tools``: the glob it matches and the action fields it proposes."""

    pattern: str
    fields: Mapping[str, Any]  # constants and ``Source`` leaves, defaults merged in
    hide: bool = False
    span: Span | None = field(default=None, compare=False)

    def matches(self, tool: str) -> bool:
        return fnmatchcase(tool, self.pattern)

    def sources(self) -> Iterator[tuple[tuple[str, ...], Source]]:
        """Each field read from the arguments, with the action path it fills."""
        yield from _sources(self.fields, ())


@dataclass(frozen=True, slots=True)
class ToolMapping:
    """A loaded ``mcp.yaml``: the entries in order and the choice for unmapped tools."""

    rules: tuple[ToolRule, ...]
    unmapped: str = "deny"
    with_tool: bool = False  # the pack's schema declares ``action.tool``: arguments go there
    file: str = FILE_NAME

    def match(self, tool: str) -> ToolRule | None:
        return next((rule for rule in self.rules if rule.matches(tool)), None)

    def propose(self, rule: ToolRule, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The action fields a call proposes (without ``id`` and ``requested_at``).

        Raises ``MappingError`` when an argument the mapping reads is missing or of
        the wrong kind: the call fails closed.
        """
        action = _filled(rule.fields, arguments)
        if self.with_tool:
            action["tool"] = {"name": tool, "arguments": dict(arguments)}
        return action


def _filled(fields: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Source):
            out[name] = value.read(arguments)
        elif isinstance(value, Mapping):
            out[name] = _filled(value, arguments)
        else:
            out[name] = value
    return out


def _sources(fields: Mapping[str, Any], at: tuple[str, ...]) -> Iterator[Any]:
    for name, value in fields.items():
        if isinstance(value, Source):
            yield (*at, name), value
        elif isinstance(value, Mapping):
            yield from _sources(value, (*at, name))


@lru_cache(maxsize=1)
def mapping_schema() -> dict[str, Any]:
    text = resources.files("aigre_policy").joinpath("schemas", "mcp-mapping.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


def load_mapping(path: str | Path, input_schema: Mapping[str, Any] | None = None) -> ToolMapping:
    """Read and check ``mcp.yaml``; raises ``CompileError`` with every diagnostic.

    ``input_schema``: the pack's composed input schema (``pack.input_schema``); the
    fields of each entry are checked against its ``action``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    doc, diagnostics = read_document(path)
    if doc is None:
        raise CompileError(diagnostics, _sources_of(path, None))
    mapping, problems = parse_mapping(doc, input_schema)
    if mapping is None:
        raise CompileError(problems, _sources_of(path, doc))
    return mapping


def _sources_of(path: Path, doc: Document | None) -> SourceText:
    return SourceText({doc.file: doc.text} if doc is not None else {})


def parse_mapping(
    doc: Document, input_schema: Mapping[str, Any] | None = None
) -> tuple[ToolMapping | None, list[Diagnostic]]:
    """The mapping a document holds, or ``None`` and the diagnostics that say why not."""
    validator = jsonschema.Draft202012Validator(mapping_schema())
    problems = [
        error(
            "E520",
            f"{'.'.join(str(p) for p in e.path) or FILE_NAME}: {_short(e)}",
            doc.span_of(tuple(e.path)),
        )
        for e in sorted(validator.iter_errors(doc.data), key=lambda e: [str(p) for p in e.path])
    ]
    if problems:
        return None, sorted_diagnostics(problems)
    data = doc.data
    schema = dict(input_schema) if input_schema is not None else None
    defaults = data.get("defaults") or {}
    problems.extend(_check_fields(doc, ("defaults",), defaults, schema))
    rules: list[ToolRule] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data["tools"]):
        where = ("tools", index)
        problems.extend(_check_fields(doc, (*where, "action"), entry["action"], schema))
        pattern = entry["tool"]
        if pattern in seen:
            problems.append(
                error(
                    "E521",
                    f"tool `{pattern}` is mapped twice (entries {seen[pattern]} and {index})",
                    doc.span_of((*where, "tool")),
                    "the first entry that matches wins: remove or merge the later one",
                )
            )
        seen.setdefault(pattern, index)
        merged = _merged(defaults, entry["action"])
        if "kind" not in merged:
            problems.append(
                error(
                    "E521",
                    f"tool `{pattern}` proposes no `kind`",
                    doc.span_of((*where, "action")),
                    "give `kind` in the entry's `action` or in `defaults`",
                )
            )
        rules.append(
            ToolRule(
                pattern,
                _compiled(merged),
                bool(entry.get("hide", False)),
                doc.span_of((*where, "tool")),
            )
        )
    if problems:
        return None, sorted_diagnostics(problems)
    with_tool = schema is not None and bool(at_path(schema, ["action", "tool"]))
    return ToolMapping(tuple(rules), data.get("unmapped", "deny"), with_tool, doc.file), []


def _short(problem: jsonschema.ValidationError) -> str:
    """The schema's own message, cut to one readable line (an ``anyOf`` lists every branch)."""
    if problem.validator == "anyOf":
        return f"{json.dumps(problem.instance)[:60]} is not a constant, a source or fields"
    return problem.message[:200]


def _merged(defaults: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` over ``defaults``: nested field groups merge key by key, sources replace."""
    out = dict(defaults)
    for name, value in fields.items():
        old = out.get(name)
        if isinstance(old, Mapping) and _is_group(value) and _is_group(old):
            out[name] = _merged(old, value)
        else:
            out[name] = value
    return out


def _is_group(value: Any) -> bool:
    return isinstance(value, Mapping) and "from" not in value


def _compiled(fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Mapping) and "from" in value:
            steps = tuple(value["from"].split("."))[1:]
            out[name] = Source(
                steps,
                value.get("times"),
                value.get("plus"),
                value.get("default"),
                "default" in value,
            )
        elif isinstance(value, Mapping):
            out[name] = _compiled(value)
        else:
            out[name] = value
    return out


def _check_fields(
    doc: Document,
    at: tuple[Any, ...],
    fields: Mapping[str, Any],
    schema: dict[str, Any] | None,
    path: tuple[str, ...] = ("action",),
) -> Iterator[Diagnostic]:
    """E521 for a source with unknown keys, a field the pack's schema does not declare,
    and the fields the gate fills itself."""
    for name, value in fields.items():
        here = (*at, name)
        field_path = (*path, name)
        if path == ("action",) and name in _FILLED:
            yield error(
                "E521",
                f"`action.{name}` is filled by the gate for each call, not by the mapping",
                doc.span_of(here),
            )
            continue
        if path == ("action",) and name == "tool":
            yield error(
                "E521",
                "`action.tool` holds the call's name and arguments, filled by the gate",
                doc.span_of(here),
                "read the arguments in rules at `action.tool.arguments`",
            )
            continue
        if schema is not None:
            parent = resolve(schema, at_path(schema, list(path)))
            declared = parent.get("properties")
            if isinstance(declared, dict) and name not in declared:
                yield error(
                    "E521",
                    f"`{'.'.join(field_path)}` is not a field of the pack's input schema",
                    doc.span_of(here),
                    f"fields of `{'.'.join(path)}`: {', '.join(sorted(declared))}",
                )
                continue
        if isinstance(value, Mapping) and "from" in value:
            extra = sorted(set(value) - _SOURCE_KEYS)
            if extra:
                yield error(
                    "E521",
                    f"a source takes from, times, plus and default, not {', '.join(extra)}",
                    doc.span_of((*here, extra[0])),
                )
        elif isinstance(value, Mapping):
            yield from _check_fields(doc, here, value, schema, field_path)
