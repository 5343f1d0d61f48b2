"""Hover, go to definition and completion over a ``PackView`` and the text being edited.

Each answer is plain data (``Hover``, ``Target``, ``Item``); ``server`` turns it into
the protocol's types. Positions are 0-based lines and code-point columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigre_policy import functions
from aigre_policy import nodes as n
from aigre_policy.diagnostics import Span
from aigre_policy.lsp import cursor
from aigre_policy.lsp.project import PackView
from aigre_policy.lsp.schema_docs import field_doc
from aigre_policy.runtime import duration_text
from aigre_policy.typecheck import INPUT_ROOTS, constant_type
from aigre_policy.types import (
    WEEKDAYS,
    DurationType,
    FieldType,
    ListType,
    ObjectType,
    StringType,
    Type,
)

KEYWORDS = ("and", "or", "not", "in", "has", "any", "all", "true", "false")


@dataclass(frozen=True, slots=True)
class Hover:
    markdown: str
    word: cursor.Word  # the text the hover is about


@dataclass(frozen=True, slots=True)
class Target:
    """Where a name is declared: a span of a pack file, or the top of a file (``span`` None)."""

    file: str
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One completion: ``kind`` is field, enum, key (of a keyed envelope value), envelope,
    usage, rule, function, root, keyword."""

    label: str
    kind: str
    detail: str | None = None
    documentation: str | None = None
    insert: str | None = None  # the text to insert when it differs from the label


# ------------------------------------------------------------------ resolving paths


@dataclass(frozen=True, slots=True)
class _Resolved:
    """What a dotted path names."""

    kind: str  # input, envelope, envelope_field, usage, variable
    path: tuple[str, ...]
    type: Type | None = None
    field: FieldType | None = None
    declaration: Any = None  # the Envelope, EnvelopeField or Usage node


def _resolve(view: PackView, segments: tuple[str, ...], text: str, offset: int) -> _Resolved | None:
    root, rest = segments[0], segments[1:]
    if root == "usage" and len(rest) == 1 and rest[0] in view.usages:
        usage = view.usages[rest[0]]
        field = view.shape.fields["usage"].type
        typ = field.fields[rest[0]].type if isinstance(field, ObjectType) else None
        return _Resolved("usage", segments, typ, None, usage)
    if root in INPUT_ROOTS:
        return _walk(view.shape, segments, "input", segments)
    if root in view.envelopes:
        envelope = view.envelopes[root]
        if not rest:
            return _Resolved("envelope", segments, None, None, envelope)
        item = next((f for f in envelope.fields if f.name == rest[0]), None)
        if item is None or len(rest) > 1:
            return None
        return _Resolved("envelope_field", segments, constant_type(item.value), None, item)
    binding = _quantified(text[:offset], root)
    if binding is not None:
        items, bound_at = binding  # read the list from the text before its binding
        over = _resolve(view, items, text, bound_at)
        if over is None or not isinstance(over.type, ListType):
            return None
        item_type = over.type.item
        if not rest:
            return _Resolved("variable", segments, item_type)
        return _walk(item_type, rest, "variable", segments)
    return None


def _walk(
    start: Type, steps: tuple[str, ...], kind: str, path: tuple[str, ...]
) -> _Resolved | None:
    current: Type = start
    field: FieldType | None = None
    for step in steps:
        if not isinstance(current, ObjectType) or step not in current.fields:
            return None
        field = current.fields[step]
        current = field.type
    return _Resolved(kind, path, current, field)


def _quantified(before: str, name: str) -> tuple[tuple[str, ...], int] | None:
    """The list path an ``any``/``all`` item variable ranges over, from the text before it,
    and where that binding starts."""
    pattern = re.compile(
        r"\b(?:any|all)\s*\(\s*" + re.escape(name) + r"\s+in\s+([A-Za-z_]\w*(?:\.\w+)*)"
    )
    found = list(pattern.finditer(before))  # the nearest binding before the position
    if not found:
        return None
    return tuple(found[-1].group(1).split(".")), found[-1].start()


# ------------------------------------------------------------------ hover


def _rule_named(view: PackView, text: str, line: int, column: int) -> cursor.Word | None:
    """The rule id under the position; a word of a dotted path is never one."""
    word = cursor.rule_id_at(text, line, column)
    if word is None or word.text not in view.rules:
        return None
    line_text = cursor.line_at(text, line)
    if line_text[word.start - 1 : word.start] == "." or line_text[word.end : word.end + 1] == ".":
        return None
    return word


def hover(view: PackView, file: str, text: str, line: int, column: int) -> Hover | None:
    """What the word under the position is: a field, an envelope value, a rule, a function."""
    rule_word = _rule_named(view, text, line, column)
    if rule_word is not None:
        return Hover(_rule_text(view, view.rules[rule_word.text]), rule_word)
    at = cursor.path_at(text, line, column)
    if at is None:
        return None
    declared = _declared_field(view, file, at.word)
    if declared is not None:
        return Hover(_resolved_text(view, declared), at.word)
    if at.called:
        function = _function(at.segments[0])
        if function is not None:
            return Hover(_function_text(function), at.word)
        return None
    resolved = _resolve(view, at.segments, text, _offset(text, line, column))
    if resolved is None:
        return None
    return Hover(_resolved_text(view, resolved), at.word)


def _declared_field(view: PackView, file: str, word: cursor.Word) -> _Resolved | None:
    """An envelope value where it is declared: ``max_action_usd: 250`` inside ``envelope``."""
    module = view.modules.get(file)
    for decl in module.declarations if module is not None else ():
        if not isinstance(decl, n.Envelope) or decl is not view.envelopes.get(decl.name):
            continue
        for item in decl.fields:
            if (item.span.line, item.span.column) == (word.line + 1, word.start + 1):
                typ = constant_type(item.value)
                return _Resolved("envelope_field", (decl.name, item.name), typ, None, item)
    return None


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(item) + 1 for item in lines[:line]) + column


def _resolved_text(view: PackView, resolved: _Resolved) -> str:
    dotted = ".".join(resolved.path)
    if resolved.kind == "envelope":
        envelope: n.Envelope = resolved.declaration
        rows = [
            f"| `{f.name}` | {constant_type(f.value)} | "
            f"`{_envelope_value(view, envelope.name, f)}` |"
            for f in envelope.fields
        ]
        return "\n".join(
            [f"**envelope** `{envelope.name}`", "", "| value | type | is |", "|---|---|---|", *rows]
        )
    if resolved.kind == "envelope_field":
        item: n.EnvelopeField = resolved.declaration
        written = _source(view, item.value.span)
        effective = _envelope_value(view, resolved.path[0], item)
        lines = [f"**{dotted}**: `{resolved.type}`", "", f"value: `{effective}`"]
        if written and written != effective:
            lines.append(f"(written `{written}`; set by pack.yaml or an override)")
        return "\n".join(lines)
    if resolved.kind == "usage":
        usage: n.Usage = resolved.declaration
        return "\n".join(
            [
                f"**{dotted}**: `{resolved.type}`",
                "",
                "computed by the gate from its ledger:",
                "",
                "```aigre",
                _source(view, usage.span),
                "```",
            ]
        )
    lines = [f"**{dotted}**: `{_type_text(resolved.type)}`"]
    if resolved.field is not None:
        lines += ["", _presence(resolved)]
    doc = field_doc(view.schema, resolved.path) if resolved.kind == "input" else None
    if doc is not None:
        if doc.description:
            lines += ["", doc.description]
        if doc.claim:
            where = f"; the attested value is `{doc.attested_as}`" if doc.attested_as else ""
            lines += ["", f"a claim the proposer writes: it must not loosen a verdict{where}"]
        elif doc.attested:
            lines += ["", "attested: filled by the gate from its own sources"]
    return "\n".join(lines)


def _presence(resolved: _Resolved) -> str:
    field = resolved.field
    assert field is not None
    if field.required:
        return "required"
    if field.default:
        return f"optional, reads as `{json.dumps(field.default[0])}` when absent"
    dotted = ".".join(resolved.path)
    return f"optional: read it as `{dotted} ?? ...`, or guard it with `has {dotted}`"


def _type_text(typ: Type | None) -> str:
    if isinstance(typ, StringType) and typ.enum is not None:
        return "string, one of " + ", ".join(f'"{v}"' for v in typ.enum)
    return str(typ)


def _envelope_value(view: PackView, envelope: str, item: n.EnvelopeField) -> str:
    values = view.envelope_values.get(envelope, {})
    value = values.get(item.name, n.constant_value(item.value))
    if isinstance(constant_type(item.value), DurationType) and isinstance(value, int | float):
        return duration_text(value)
    return json.dumps(value, ensure_ascii=False)


def _source(view: PackView, span: Span) -> str:
    lines = view.sources.get(span.file, "").split("\n")
    if not 1 <= span.line <= len(lines):
        return ""
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1 : span.end_column - 1]
    chunk = [lines[span.line - 1][span.column - 1 :], *lines[span.line : span.end_line - 1]]
    chunk.append(lines[span.end_line - 1][: span.end_column - 1])
    return "\n".join(chunk)


def _rule_text(view: PackView, rule: n.Rule) -> str:
    meta = {m.key: m.value for m in rule.meta}
    lines = [f"**rule** `{rule.id}`"]
    if isinstance(meta.get("title"), str):
        lines += ["", f"*{meta['title']}*"]
    for clause in rule.verdicts:
        groups = f" {', '.join(clause.groups)}" if clause.groups else ""
        joiner = " by" if clause.verdict == "require_approval" else " to" if groups else ""
        lines += ["", f"`{clause.verdict}`{joiner if groups else ''}{groups}"]
    category = meta.get("category", "risk")
    severity = meta.get("severity", "medium")
    lines += ["", f"{category}, {severity} — {_where(view, rule.id_span)}"]
    if isinstance(meta.get("description"), str):
        lines += ["", str(meta["description"])]
    return "\n".join(lines)


def _where(view: PackView, span: Span) -> str:
    file = Path(span.file)
    if view.root is not None and file.is_relative_to(view.root):
        file = file.relative_to(view.root)
    return f"{file}:{span.line}"


def _function(name: str) -> functions.Function | None:
    return next((f for f in functions.TABLE if f.name == name and f.params is not None), None)


def _function_text(function: functions.Function) -> str:
    params = ", ".join(function.params or ())
    return f"**{function.name}**`({params})` → `{function.result}`"


# ------------------------------------------------------------------ definition


_FROM_FILE = re.compile(r"\b(?:action|context|usage)\s+from\s+\"$")


def definition(view: PackView, file: str, text: str, line: int, column: int) -> Target | None:
    """Where the name under the position is declared: a rule, an envelope (value), a usage,
    or the fixture file a test reads its input from."""
    line_text = cursor.line_at(text, line)
    string = cursor.string_at(line_text, column)
    if string is not None:
        if view.root is not None and _FROM_FILE.search(line_text[: string[0]]):
            target = (view.root / line_text[string[0] : string[1]]).resolve()
            inside = target.is_relative_to(view.root.resolve())  # a jump stays in the pack
            return Target(str(target)) if inside and target.is_file() else None
        if cursor.in_plain_string(line_text, column):
            return None
    rule_word = _rule_named(view, text, line, column)
    if rule_word is not None:
        return Target(view.rules[rule_word.text].id_span.file, view.rules[rule_word.text].id_span)
    at = cursor.path_at(text, line, column)
    if at is None or at.called:
        return None
    resolved = _resolve(view, at.segments, text, _offset(text, line, column))
    if resolved is None or resolved.declaration is None:
        return None
    span: Span = resolved.declaration.span
    return Target(span.file, span)


# ------------------------------------------------------------------ completion

_PATH = r"[A-Za-z_]\w*(?:\.\w+)*"
_AFTER_DOT = re.compile(rf"(?P<prefix>{_PATH})\.(?P<partial>\w*)$")
_WEEKDAY = r"weekday(?:_in)?\([^()]*\)"  # weekday(...) and weekday_in(...): an enum
_ENUM_OPEN = re.compile(rf"(?P<path>{_PATH}|{_WEEKDAY})\s*(?:==|!=|\?\?)\s*\"[^\"]*$")
_ENUM_BARE = re.compile(rf"(?P<path>{_PATH}|{_WEEKDAY})\s*(?:==|!=|\?\?)\s*$")
_ENUM_LIST = re.compile(rf"(?P<path>{_PATH})\s+(?:not\s+)?in\s*\[[^\]]*\"[^\"]*$")
_EXPECT_RULES = re.compile(r"^\s*expect\b.*\b(?:by|silent)\b[\s\w,-]*$")
_LOOKUP_KEY = re.compile(rf"\blookup\(\s*(?P<path>{_PATH})\s*,\s*\"[^\"]*$")


def complete(
    view: PackView, file: str, text: str, line: int, column: int, trigger: str | None = None
) -> list[Item]:
    """Field paths after a dot, enum values after a comparison, rule ids after ``by``,
    names and functions elsewhere. Typing a space (``trigger``) offers only what a space
    leads to, enum values and rule ids, not every name at each word break."""
    line_text = cursor.line_at(text, line)
    before = line_text[:column]
    if cursor.in_comment(line_text, column):
        return []
    offset = _offset(text, line, column)
    if cursor.string_at(line_text, column) is not None:
        keyed = _LOOKUP_KEY.search(before)
        if keyed is not None:
            return list(_lookup_keys(view, keyed.group("path")))
        found = _ENUM_OPEN.search(before) or _ENUM_LIST.search(before)
        if found is not None:
            return [Item(v, "enum") for v in _enum_of(view, found.group("path"), text, offset)]
        if cursor.in_plain_string(line_text, column):
            return []
    bare = _ENUM_BARE.search(before)
    if bare is not None:
        values = _enum_of(view, bare.group("path"), text, offset)
        if values:
            return [Item(f'"{v}"', "enum", insert=f'"{v}"') for v in values]
    if _EXPECT_RULES.search(before):
        return [Item(r, "rule", _rule_summary(view.rules[r])) for r in sorted(view.rules)]
    if trigger == " ":
        return []
    dotted = _AFTER_DOT.search(before)
    if dotted is not None:
        return list(_members(view, tuple(dotted.group("prefix").split(".")), text, offset))
    return list(_names(view, text, offset))


def _lookup_keys(view: PackView, path: str) -> Iterator[Item]:
    """The keys a keyed envelope value lists (``{ default: V, by_X: { KEY: V } }``), each
    with the value it reads; a key it does not list reads the default."""
    envelope, _, name = path.partition(".")
    value = view.envelope_values.get(envelope, {}).get(name)
    if not isinstance(value, dict) or "default" not in value:
        return
    for label, table in value.items():
        if label != "default" and isinstance(table, dict):
            for key, read in table.items():
                yield Item(key, "key", f"{label}: {json.dumps(read, ensure_ascii=False)}")


def _enum_of(view: PackView, path: str, text: str, offset: int) -> tuple[str, ...]:
    if path.startswith(("weekday(", "weekday_in(")):
        return WEEKDAYS
    resolved = _resolve(view, tuple(path.split(".")), text, offset)
    typ = resolved.type if resolved is not None else None
    if isinstance(typ, ListType):
        typ = typ.item
    if isinstance(typ, StringType) and typ.enum is not None:
        return typ.enum
    return ()


def _members(view: PackView, prefix: tuple[str, ...], text: str, offset: int) -> Iterator[Item]:
    resolved = _resolve(view, prefix, text, offset)
    if resolved is None:
        return
    if resolved.kind == "envelope":
        envelope: n.Envelope = resolved.declaration
        for item in envelope.fields:
            value = _envelope_value(view, envelope.name, item)
            yield Item(item.name, "field", f"{constant_type(item.value)} = {value}")
        return
    if not isinstance(resolved.type, ObjectType):
        return
    for name, field in resolved.type.fields.items():
        path = (*resolved.path, name)
        doc = field_doc(view.schema, path) if resolved.kind == "input" else None
        presence = "" if field.required or field.default else " (optional)"
        kind = "usage" if prefix == ("usage",) else "field"
        yield Item(
            name, kind, f"{_type_text(field.type)}{presence}", doc.description if doc else None
        )


def _names(view: PackView, text: str, offset: int) -> Iterator[Item]:
    for root in INPUT_ROOTS:
        yield Item(
            root,
            "root",
            f"input: {view.shape.fields[root].type}" if root in view.shape.fields else None,
        )
    for name in sorted(view.envelopes):
        yield Item(name, "envelope", "envelope")
    for function in functions.TABLE:
        if function.params is not None:
            params = ", ".join(function.params)
            yield Item(function.name, "function", f"({params}) -> {function.result}")
    for keyword in KEYWORDS:
        yield Item(keyword, "keyword")


def _rule_summary(rule: n.Rule) -> str:
    title = next((m.value for m in rule.meta if m.key == "title"), None)
    verdict = rule.verdicts[0].verdict if rule.verdicts else "rule"
    return f"{verdict}: {title}" if isinstance(title, str) else verdict


# ------------------------------------------------------------------ outline


@dataclass(frozen=True, slots=True)
class Symbol:
    """One declaration of a file for the editor's outline: ``kind`` is envelope, value,
    rule, usage, test or invariant; ``name_span`` lies inside ``span``."""

    name: str
    kind: str
    detail: str
    span: Span
    name_span: Span
    children: tuple[Symbol, ...] = ()


def symbols(view: PackView, file: str) -> list[Symbol]:
    """The declarations of ``file`` in order (its last version that parsed)."""
    module = view.modules.get(file)
    found: list[Symbol] = []
    for decl in module.declarations if module is not None else ():
        if isinstance(decl, n.Envelope):
            values = tuple(
                Symbol(f.name, "value", str(constant_type(f.value)), f.span, f.span)
                for f in decl.fields
            )
            found.append(Symbol(decl.name, "envelope", "envelope", decl.span, decl.span, values))
        elif isinstance(decl, n.Rule):
            verdict = decl.verdicts[0].verdict if decl.verdicts else "rule"
            found.append(Symbol(decl.id, "rule", verdict, decl.span, decl.id_span))
        elif isinstance(decl, n.Usage):
            found.append(Symbol(decl.name, "usage", decl.window, decl.span, decl.span))
        elif isinstance(decl, n.Test):
            found.append(Symbol(decl.name, "test", "test", decl.span, decl.span))
        elif isinstance(decl, n.Invariant):
            relation = "" if decl.relation == "is" else f"{decl.relation} "
            detail = f"expect {relation}{decl.decision}"
            found.append(Symbol(decl.name, "invariant", detail, decl.span, decl.span))
    return found
