"""Test cases of a pack: ``test`` blocks in its policies and YAML files under ``tests/``.

Both forms become the same ``TestCase``: the three inputs, the envelope values
the test overrides and what it expects. Every problem in a test file is a
``Diagnostic`` with ``file:line:col``; a case that cannot be built is left out.
The YAML form is described by ``aigre_policy/schemas/test-file.schema.json``
and documented in ``docs/testing.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from aigre_policy import nodes as n
from aigre_policy.composition import pack_roots
from aigre_policy.diagnostics import Diagnostic, Span, error, sorted_diagnostics
from aigre_policy.typecheck import did_you_mean
from aigre_policy.yamlio import Document, read_document

if TYPE_CHECKING:
    from aigre_policy.pack import Pack

ROOTS = ("action", "context", "usage")
TESTS_DIR = "tests"
TEST_SCHEMA = "test-file.schema.json"


@dataclass(frozen=True)
class Expectation:
    """What a test expects; ``None`` and empty parts are not checked.

    ``rules`` is the exact set of rules that fire (warnings included);
    ``rules_at_least`` must fire among others; ``silent`` must not fire.
    ``evidence`` pairs a path (``action.cost.estimated_usd``, ``cost.max_action_usd``)
    with the value some fired rule read there.
    """

    decision: str | None = None
    rules: tuple[str, ...] | None = None
    rules_at_least: tuple[str, ...] = ()
    silent: tuple[str, ...] = ()
    message_contains: tuple[str, ...] = ()
    evidence: tuple[tuple[str, Any], ...] = ()

    @property
    def empty(self) -> bool:
        return self == Expectation()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.decision is not None:
            out["decision"] = self.decision
        if self.rules is not None:
            out["rules"] = list(self.rules)
        if self.rules_at_least:
            out["rules_at_least"] = list(self.rules_at_least)
        if self.silent:
            out["silent"] = list(self.silent)
        if self.message_contains:
            out["message_contains"] = list(self.message_contains)
        if self.evidence:
            out["evidence"] = dict(self.evidence)
        return out


@dataclass(frozen=True)
class TestCase:
    """One test: inputs, per-test envelope overrides (like OPA's ``with``), expectation."""

    __test__ = False  # not a pytest class

    name: str
    location: Span
    action: Any
    context: Any
    usage: Any
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    expectation: Expectation = Expectation()


def merged(base: Any, changes: Any) -> Any:
    """``changes`` set over ``base``: objects merge field by field, at any depth; any other
    value (a list, a number...) replaces what was there."""
    if isinstance(base, dict) and isinstance(changes, dict):
        out = dict(base)
        for key, value in changes.items():
            out[key] = merged(base.get(key), value)
        return out
    return changes


# ------------------------------------------------------------------ discovery


def load_cases(pack: Pack) -> tuple[list[TestCase], list[Diagnostic]]:
    """Every test of ``pack``: its ``test`` blocks, then ``tests/*.yaml`` in name order.

    A pack that extends others (``extends:``) runs their tests too, after its own, each
    named ``<parent directory>: <name>`` and reading its files relative to its own pack.
    A test of the child with an inherited test's name replaces it: that is how a child
    states what it expects where its overrides change a parent's verdict.
    """
    loader = _Loader(pack)
    roots = pack_roots(pack)
    for depth, root in enumerate(roots):
        loader.enter(root, "" if depth == 0 else f"{root.name}: ")
        home = root.resolve() / "policies"
        for module in pack.modules:
            if len(roots) > 1 and Path(module.file).resolve().parent != home:
                continue  # another pack's module: its tests are read with that pack
            for decl in module.declarations:
                if isinstance(decl, n.Test):
                    loader.block(decl)
        folder = root / TESTS_DIR
        if folder.is_dir():
            for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
                loader.yaml_file(path)
    return loader.cases, sorted_diagnostics(loader.diagnostics)


@cache
def test_file_schema() -> dict[str, Any]:
    text = resources.files("aigre_policy").joinpath("schemas", TEST_SCHEMA).read_text()
    return json.loads(text)


def _handwritten_ids(pack: Pack) -> frozenset[str]:
    # a pack loaded from a bundle holds no CheckedPack: its modules are in the bundle
    if not getattr(getattr(pack, "checked", None), "handwritten", ()):
        return frozenset()
    from aigre_policy.rego.handwritten import rule_ids  # regopy only for packs with .rego

    return rule_ids(pack)


class _Loader:
    """Builds cases and collects diagnostics; one per ``load_cases`` call."""

    def __init__(self, pack: Pack):
        self.pack = pack
        self.root = Path(pack.root)
        # ids of .aigre rules, and those hand-written Rego modules write as literals
        self.rule_ids = {rule.id for rule in pack.rules} | _handwritten_ids(pack)
        self.usage_names = [u.name for u in pack.program.usages]
        self.cases: list[TestCase] = []
        self.diagnostics: list[Diagnostic] = []
        self.seen: dict[str, Span] = {}
        self.prefix = ""  # "<parent directory>: " while reading an inherited pack's tests
        self.taken: set[str] = set()  # test names of the packs read so far (nearer ones)

    def enter(self, root: Path, prefix: str) -> None:
        """Read the tests of the pack at ``root`` next (the pack itself, then its parents)."""
        self.taken |= set(self.seen)
        self.root, self.prefix, self.seen = root, prefix, {}

    # -- shared ------------------------------------------------------------
    def add(self, case: TestCase) -> None:
        if case.name in self.taken:  # a nearer pack restates this test: its version runs
            return
        first = self.seen.get(case.name)
        if first is not None:
            self.diagnostics.append(
                error(
                    "E106",
                    f'test "{case.name}" is declared twice',
                    case.location,
                    f"first declared at {first}",
                )
            )
            return
        self.seen[case.name] = case.location
        if self.prefix:
            case = dataclasses.replace(case, name=self.prefix + case.name)
        self.cases.append(case)

    def inputs_from(self, relative: str, span: Span) -> dict[str, Any] | None:
        """The roots held in a fixture: a case file (``action:``...) or a bare action."""
        path = self.root / relative
        display = os.path.normpath(str(path))
        if not path.is_file():
            self.diagnostics.append(
                error(
                    "E702",
                    f"test input file `{relative}` not found",
                    span,
                    f"paths are relative to the pack directory {self.root}",
                )
            )
            return None
        doc, problems = read_document(path, display)
        if doc is None:
            self.diagnostics += problems
            return None
        if not isinstance(doc.data, dict):
            self.diagnostics.append(
                error("E702", f"`{relative}` must hold a mapping", doc.span_of(()))
            )
            return None
        if isinstance(doc.data.get("action"), dict):
            return {root: doc.data[root] for root in ROOTS if root in doc.data}
        return {"action": doc.data}

    def with_usage_defaults(self, usage: Any) -> Any:
        """Usage values a test leaves out read as 0: most tests are about one window."""
        if usage is None:
            usage = {}
        if isinstance(usage, dict):
            return {**dict.fromkeys(self.usage_names, 0), **usage}
        return usage

    # -- test blocks -------------------------------------------------------
    def block(self, test: n.Test) -> None:
        given: dict[str, Any] = {}
        from_files: dict[str, Any] = {}
        for item in test.inputs:
            if item.from_file is None:
                given[item.root] = item.value.to_value() if item.value is not None else {}
                continue
            held = self.inputs_from(item.from_file, item.span)
            if held is None:
                return
            if item.root in held:
                given[item.root] = held[item.root]
            elif item.root == "action":
                given["action"] = held
            if item.value is not None:  # `from "FILE" { ... }`: fields set over the file's
                given[item.root] = merged(given.get(item.root), item.value.to_value())
            # a case file given as the action supplies the other roots too
            if item.root == "action":
                from_files.update({k: v for k, v in held.items() if k != "action"})
        inputs = {**from_files, **given}
        overrides: dict[str, dict[str, Any]] = {}
        for override in test.overrides:
            value = n.constant_value(override.value)
            overrides.setdefault(override.envelope, {})[override.name] = value
        decision = None
        rules: tuple[str, ...] | None = None
        at_least: list[str] = []
        silent: list[str] = []
        messages: list[str] = []
        evidence: list[tuple[str, Any]] = []
        for expect in test.expectations:
            if expect.decision is not None:
                decision = expect.decision
                if expect.at_least:
                    at_least += expect.rules
                elif expect.rules or expect.no_rules:
                    rules = (*(rules or ()), *expect.rules)
            silent += expect.silent
            if expect.message_contains is not None:
                messages.append(expect.message_contains)
            if expect.evidence is not None:
                evidence.append((expect.evidence[0], n.constant_value(expect.evidence[1])))
        expectation = Expectation(
            decision, rules, tuple(at_least), tuple(silent), tuple(messages), tuple(evidence)
        )
        self.add(
            TestCase(
                test.name,
                test.span,
                inputs.get("action"),
                inputs.get("context"),
                self.with_usage_defaults(inputs.get("usage")),
                overrides,
                expectation,
            )
        )

    # -- YAML files --------------------------------------------------------
    def yaml_file(self, path: Path) -> None:
        doc, problems = read_document(path, str(path))
        if doc is None:
            self.diagnostics += problems
            return
        spans = _Spans(doc)
        validator = jsonschema.Draft202012Validator(test_file_schema())
        found = sorted(validator.iter_errors(spans.data), key=lambda e: list(e.absolute_path))
        if found:
            for problem in found:
                self.diagnostics.append(_schema_diagnostic(spans, problem))
            return
        for i, entry in enumerate(spans.data["tests"]):
            self.yaml_test(spans, entry, ("tests", i))

    def yaml_test(self, doc: _Spans, entry: dict[str, Any], where: tuple[Any, ...]) -> None:
        span = doc.span_of(where)
        base = self.yaml_inputs(doc, entry, where)
        if base is None:
            return
        shared_expect = entry.get("expect", {})
        shared_with = entry.get("with", {})
        if "rows" not in entry:
            self.yaml_case(doc, entry["name"], span, base, shared_with, shared_expect, where)
            return
        for j, row in enumerate(entry["rows"]):
            row_where = (*where, "rows", j)
            inputs = copy.deepcopy(base)
            if not self.apply_edits(doc, row, inputs, row_where):
                continue
            overrides = _merge_overrides(shared_with, row.get("with", {}))
            expect = {**shared_expect, **row.get("expect", {})}
            name = f"{entry['name']} [{row['name']}]"
            self.yaml_case(doc, name, doc.span_of(row_where), inputs, overrides, expect, row_where)

    def yaml_inputs(
        self, doc: _Spans, entry: dict[str, Any], where: tuple[Any, ...]
    ) -> dict[str, Any] | None:
        inputs: dict[str, Any] = {}
        if "from" not in entry and "action" not in entry:
            self.diagnostics.append(
                error(
                    "E701",
                    f'test "{entry["name"]}" gives no action',
                    doc.span_of(where),
                    "add `action: {...}` or `from: PATH` (a fixture, relative to the pack)",
                )
            )
            return None
        if "from" in entry:
            held = self.inputs_from(entry["from"], doc.span_of((*where, "from")))
            if held is None:
                return None
            inputs.update(held)
        inputs.update({root: entry[root] for root in ROOTS if root in entry})
        if not self.apply_edits(doc, entry, inputs, where):
            return None
        return inputs

    def apply_edits(
        self, doc: _Spans, entry: dict[str, Any], inputs: dict[str, Any], where: tuple[Any, ...]
    ) -> bool:
        """``set`` and ``unset``: change one path of the inputs each."""
        ok = True
        for dotted, value in entry.get("set", {}).items():
            problem = set_path(inputs, dotted, copy.deepcopy(value))
            if problem:
                self.diagnostics.append(
                    error("E703", f"cannot set `{dotted}`: {problem}", doc.span_of((*where, "set")))
                )
                ok = False
        for k, dotted in enumerate(entry.get("unset", [])):
            problem = unset_path(inputs, dotted)
            if problem:
                self.diagnostics.append(
                    error(
                        "E703",
                        f"cannot unset `{dotted}`: {problem}",
                        doc.span_of((*where, "unset", k)),
                    )
                )
                ok = False
        return ok

    def yaml_case(
        self,
        doc: _Spans,
        name: str,
        span: Span,
        inputs: dict[str, Any],
        overrides: dict[str, dict[str, Any]],
        expect: dict[str, Any],
        where: tuple[Any, ...],
    ) -> None:
        if not expect:
            self.diagnostics.append(
                error(
                    "E701",
                    f'test "{name}" expects nothing',
                    span,
                    "add `expect: {decision: allow}` or the like",
                )
            )
            return
        ok = True
        for key in ("rules", "rules_at_least", "silent"):
            for rule_id in expect.get(key, []):
                if rule_id not in self.rule_ids:
                    ok = False
                    self.diagnostics.append(
                        error(
                            "E108",
                            f"unknown rule `{rule_id}`",
                            _expect_span(doc, where, key),
                            _known(rule_id, self.rule_ids),
                        )
                    )
        for envelope, values in overrides.items():
            known = self.pack.envelopes.get(envelope)
            unknown = [envelope] if known is None else [v for v in values if v not in known]
            for name_ in unknown:
                ok = False
                self.diagnostics.append(
                    error(
                        "E103",
                        f"unknown envelope value `{envelope}.{name_}`"
                        if known is not None
                        else f"unknown envelope `{envelope}`",
                        doc.span_of((*where, "with")),
                        _known(name_, known if known is not None else self.pack.envelopes),
                    )
                )
        if not ok:
            return
        messages = expect.get("message_contains", ())
        expectation = Expectation(
            decision=expect.get("decision"),
            rules=tuple(expect["rules"]) if "rules" in expect else None,
            rules_at_least=tuple(expect.get("rules_at_least", ())),
            silent=tuple(expect.get("silent", ())),
            message_contains=(messages,) if isinstance(messages, str) else tuple(messages),
            evidence=tuple(expect.get("evidence", {}).items()),
        )
        self.add(
            TestCase(
                name,
                span,
                inputs.get("action"),
                inputs.get("context"),
                self.with_usage_defaults(inputs.get("usage")),
                overrides,
                expectation,
            )
        )


def _merge_overrides(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for envelope, values in layer.items():
            merged.setdefault(envelope, {}).update(values)
    return merged


def _expect_span(doc: _Spans, where: tuple[Any, ...], key: str) -> Span:
    """Where an expectation's list sits: in the row, else in its table."""
    if len(where) > 2 and where[-2] == "rows":
        row = doc.data
        for step in where:
            row = row[step]
        if key not in row.get("expect", {}):
            where = where[:-2]
    return doc.span_of((*where, "expect", key))


def _known(word: str, options: Any) -> str | None:
    return did_you_mean(word, options) or (
        "known: " + ", ".join(sorted(options)) if options else None
    )


def _schema_diagnostic(doc: _Spans, problem: jsonschema.ValidationError) -> Diagnostic:
    path = tuple(problem.absolute_path)
    where = ".".join(str(p) for p in path) or "the file"
    if problem.validator == "additionalProperties" and path:
        # point at the unexpected key itself, not at the mapping holding it
        extra = next(iter(_extra_keys(problem)), None)
        if extra is not None:
            return error(
                "E701",
                f"{where}: unknown field `{extra}`",
                doc.key(path, extra),
                _field_hint(problem),
            )
    return error("E701", f"{where}: {problem.message}", doc.span_of(path), _field_hint(problem))


class _Spans:
    """Positions in one YAML document, composed once (``Document.span_of`` composes per call)."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.data, self.text, self.file = doc.data, doc.text, doc.file
        try:
            self.root = yaml.compose(doc.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            self.root = None

    def _node(self, path: tuple[Any, ...]) -> Any:
        node = self.root
        for step in path:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == str(step)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
                node = node.value[step] if step < len(node.value) else None
            else:
                node = None
        return node

    def _span(self, node: Any) -> Span:
        start, end = node.start_mark, node.end_mark
        return Span(self.doc.file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def of(self, path: tuple[Any, ...]) -> Span:
        """Where the value at ``path`` sits (or the nearest enclosing one)."""
        for cut in range(len(path), -1, -1):
            node = self._node(path[:cut])
            if node is not None:
                return self._span(node)
        return Span(self.doc.file, 1, 1, 1, 2)

    span_of = of  # the ``Document`` interface

    def key(self, path: tuple[Any, ...], key: str) -> Span:
        """Where the key ``key`` of the mapping at ``path`` is written."""
        node = self._node(path)
        if isinstance(node, yaml.MappingNode):
            for k, _ in node.value:
                if k.value == key:
                    return self._span(k)
        return self.of((*path, key))


def _properties(problem: jsonschema.ValidationError) -> Any:
    """The ``properties`` of the failing (sub)schema; None for a boolean schema."""
    schema = problem.schema
    return schema.get("properties") if isinstance(schema, Mapping) else None


def _extra_keys(problem: jsonschema.ValidationError) -> list[str]:
    allowed = set(_properties(problem) or {})
    instance = problem.instance if isinstance(problem.instance, dict) else {}
    return [key for key in instance if key not in allowed]


def _field_hint(problem: jsonschema.ValidationError) -> str | None:
    properties = _properties(problem)
    if problem.validator == "additionalProperties" and properties:
        return "fields: " + ", ".join(properties)
    return None


# ------------------------------------------------------------------ paths


def _steps(dotted: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in dotted.split(".")]


def set_path(inputs: dict[str, Any], dotted: str, value: Any) -> str | None:
    """Set ``root.a.b`` (``.0`` indexes a list), making mappings on the way; a problem or None."""
    steps = _steps(dotted)
    node: Any = inputs
    for i, step in enumerate(steps[:-1]):
        following = steps[i + 1]
        if isinstance(node, dict) and isinstance(step, str):
            if node.get(step) is None:
                node[step] = [] if isinstance(following, int) else {}
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            return f"`{'.'.join(map(str, steps[: i + 1]))}` is not a mapping or list"
    last = steps[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last <= len(node):
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    else:
        return "its parent is not a mapping, or the index is past the end of the list"
    return None


def unset_path(inputs: dict[str, Any], dotted: str) -> str | None:
    """Remove ``root.a.b``; a problem or None."""
    steps = _steps(dotted)
    node: Any = inputs
    for step in steps[:-1]:
        present = (isinstance(node, dict) and isinstance(step, str) and step in node) or (
            isinstance(node, list) and isinstance(step, int) and step < len(node)
        )
        if not present:
            return "the path is absent"
        node = node[step]
    last = steps[-1]
    present = (isinstance(node, dict) and last in node) or (
        isinstance(node, list) and isinstance(last, int) and last < len(node)
    )
    if not present:
        return "the path is absent"
    del node[last]
    return None
