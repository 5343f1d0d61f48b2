"""The compiler driver: a pack directory through every stage to a loaded evaluator.

``STAGES`` names the stages in order; each is a pure function from one
representation to the next plus diagnostics. The driver runs them, collects
every diagnostic, and stops before a stage whose input has errors.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from aigre_policy import ir
from aigre_policy import nodes as n
from aigre_policy.check import check_pack, declared_usages, usage_schema
from aigre_policy.codegen import EmittedModule, emit_python
from aigre_policy.diagnostics import Diagnostic, SourceText, error, has_errors, sorted_diagnostics
from aigre_policy.inputs import BUILTIN_SCHEMAS, builtin_schema, compose
from aigre_policy.parser import DURATION_UNITS, parse_module
from aigre_policy.sandbox import load as load_module
from aigre_policy.schema_types import input_type
from aigre_policy.sensitive import check_sensitive_paths
from aigre_policy.typecheck import constant_type, did_you_mean, value_type
from aigre_policy.types import DurationType, ListType, NeverType, NumberType, Type, same_kind
from aigre_policy.validation import InputValidator
from aigre_policy.verdict import canonical_json
from aigre_policy.yamlio import Document, lone_surrogate, read_document

STAGES = (
    ("manifest", "read and validate pack.yaml against the pack schema"),
    ("parse", "policies/*.aigre to AST (parser.parse_module)"),
    ("check", "names, types, optional fields against the input schema; AST to IR (check)"),
    ("rego", "policies/*.rego: hand-written Rego checked with regopy (rego.handwritten)"),
    ("emit", "IR to Python source (codegen.emit_python)"),
    ("load", "verify the source against the allowlist and compile it (sandbox.load)"),
)

MANIFEST = "pack.yaml"
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")


@dataclass
class Manifest:
    name: str
    version: str
    description: str
    input_schema: str
    default: str
    fail_closed: str
    envelopes: dict[str, dict[str, Any]]
    # input paths the decision log masks or drops: {path: "mask" | "drop"}
    sensitive: dict[str, str] = field(default_factory=dict)
    lint: dict[str, str] = field(default_factory=dict)  # lint code -> error, warning or off
    # groups a fail-closed require_approval verdict names; [] = its rules' groups
    fail_closed_approvers: list[str] = field(default_factory=list)
    # approver groups whose approvals an enforced allow does not use up
    reusable_approvals: list[str] = field(default_factory=list)


@dataclass
class CompiledPack:
    """Everything a ``Pack`` needs at run time, and what tools inspect."""

    root: Path
    manifest: Manifest
    modules: list[n.Module]
    program: ir.Program
    envelopes: dict[str, dict[str, Any]]
    input_schema: dict[str, Any]
    python: EmittedModule
    namespace: dict[str, Any]
    validator: InputValidator
    digest: str
    handwritten: tuple[Any, ...] = ()  # rego.handwritten.HandwrittenModule, policies/*.rego


@dataclass
class CompileReport:
    diagnostics: list[Diagnostic]
    sources: SourceText
    compiled: CompiledPack | None = None
    stages_run: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.compiled is not None and not has_errors(self.diagnostics)


def _pack_schema() -> dict[str, Any]:
    text = resources.files("aigre_policy").joinpath("schemas", "pack.schema.json").read_text()
    return json.loads(text)


def read_manifest(root: Path) -> tuple[Manifest | None, list[Diagnostic], Document | None]:
    doc, diagnostics = read_document(root / MANIFEST, _display(root, MANIFEST))
    if doc is None:
        if not (root / MANIFEST).exists():
            diagnostics = [
                error(
                    "E500",
                    f"{root} is not a pack: it has no {MANIFEST}",
                    hint="a pack is a directory with pack.yaml and policies/",
                )
            ]
        return None, diagnostics, None
    if not isinstance(doc.data, dict):
        return (
            None,
            [error("E502", f"{MANIFEST} must be a mapping of settings", doc.span_of(()))],
            doc,
        )
    validator = jsonschema.Draft202012Validator(_pack_schema())
    for problem in sorted(validator.iter_errors(doc.data), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in problem.path) or "pack.yaml"
        diagnostics.append(
            error(
                "E502",
                f"{where}: {problem.message}",
                doc.span_of(tuple(problem.path)),
                _manifest_hint(problem),
            )
        )
    if diagnostics:
        return None, diagnostics, doc
    data = doc.data
    return (
        Manifest(
            name=data["name"],
            version=data["version"],
            description=data.get("description", ""),
            input_schema=data.get("input_schema", BUILTIN_SCHEMAS[0]),
            default=data["default"],
            fail_closed=data["fail_closed"],
            envelopes=data.get("envelopes") or {},
            sensitive=data.get("sensitive") or {},
            lint=data.get("lint") or {},
            fail_closed_approvers=data.get("fail_closed_approvers") or [],
            reusable_approvals=data.get("reusable_approvals") or [],
        ),
        [],
        doc,
    )


def _manifest_hint(problem: jsonschema.ValidationError) -> str | None:
    if problem.validator == "additionalProperties":
        return (
            "settings: name, version, description, input_schema, default, fail_closed, "
            "envelopes, sensitive, lint, fail_closed_approvers, reusable_approvals"
        )
    if problem.validator == "pattern" and list(problem.path) == ["version"]:
        return "versions look like 1.2.0"
    return None


def _display(root: Path, relative: str) -> str:
    return str(root / relative)


def _read_input_schema(root: Path, manifest: Manifest, doc: Document | None):
    if manifest.input_schema.startswith("builtin:"):
        try:
            return builtin_schema(manifest.input_schema), []
        except KeyError:
            span = doc.span_of(("input_schema",)) if doc else None
            return None, [
                error(
                    "E503",
                    f"unknown built-in schema `{manifest.input_schema}`",
                    span,
                    "built-in schemas: " + ", ".join(BUILTIN_SCHEMAS),
                )
            ]
    schema_doc, diagnostics = read_document(
        root / manifest.input_schema, _display(root, manifest.input_schema)
    )
    if schema_doc is None:
        return None, diagnostics
    schema = schema_doc.data
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return None, [
            error(
                "E503",
                f"the input schema is not a valid JSON Schema: {exc.message}",
                schema_doc.span_of(tuple(exc.path)),
            )
        ]
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    if not isinstance(properties, dict) or not {"action", "context"} <= set(properties):
        return None, [
            error(
                "E503",
                "the input schema must describe an object with `action` and `context`",
                schema_doc.span_of(()),
            )
        ]
    return schema, []


_SCHEMA_HINT = "see the input schema section of docs/packs.md for the supported keywords"


def _apply_overrides(
    program: ir.Program,
    layers: list[tuple[str, dict[str, dict[str, Any]]]],
    types: dict[str, dict[str, Type]],
    manifest_doc: Document | None = None,
    enums: dict[str, tuple[str, ...]] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[Diagnostic]]:
    """Envelope values after ``pack.yaml`` and load-time overrides, each type-checked."""
    values = {name: dict(fields) for name, fields in program.envelopes.items()}
    diagnostics: list[Diagnostic] = []

    def span(*path: str):
        if manifest_doc is None or origin != MANIFEST:
            return None
        return manifest_doc.span_of(("envelopes", *path))

    for origin, overrides in layers:
        for envelope, fields in overrides.items():
            if envelope not in values:
                diagnostics.append(
                    error(
                        "E504",
                        f"{origin}: unknown envelope `{envelope}`",
                        span(envelope),
                        hint=_choices(envelope, values),
                    )
                )
                continue
            if not isinstance(fields, dict):
                diagnostics.append(
                    error("E504", f"{origin}: `{envelope}` needs name: value pairs", span(envelope))
                )
                continue
            for name, value in fields.items():
                expected = types[envelope].get(name)
                if expected is None:
                    diagnostics.append(
                        error(
                            "E504",
                            f"{origin}: envelope `{envelope}` has no value `{name}`",
                            span(envelope, name),
                            hint=_choices(name, values[envelope]),
                        )
                    )
                    continue
                if lone_surrogate(value) is not None:  # no digest or log could encode it
                    diagnostics.append(
                        error(
                            "E504",
                            f"{origin}: `{envelope}.{name}` holds a string with a lone "
                            "surrogate: not Unicode text",
                            span(envelope, name),
                        )
                    )
                    continue
                if isinstance(value, float) and not math.isfinite(value):
                    diagnostics.append(
                        error(
                            "E504",
                            f"{origin}: `{envelope}.{name}` must be a "
                            f"finite number, given {value!r}",
                            span(envelope, name),
                        )
                    )
                    continue
                converted = _convert(value, expected)
                given = value_type(converted)
                if isinstance(expected, DurationType) and isinstance(given, NumberType):
                    given = expected  # durations are held as seconds
                if (
                    given is None
                    or not same_kind(given, expected)
                    or (
                        isinstance(expected, ListType)
                        and isinstance(given, ListType)
                        and not isinstance(given.item, NeverType)
                        and not same_kind(given.item, expected.item)
                    )
                ):
                    diagnostics.append(
                        error(
                            "E504",
                            f"{origin}: `{envelope}.{name}` is a {expected}, given {value!r}",
                            span(envelope, name),
                        )
                    )
                    continue
                outside = _outside_enum(converted, (enums or {}).get(f"{envelope}.{name}"))
                if outside is not None:
                    allowed = (enums or {})[f"{envelope}.{name}"]
                    diagnostics.append(
                        error(
                            "E504",
                            f"{origin}: `{envelope}.{name}` is compared with a field that is "
                            f"never '{outside}'",
                            span(envelope, name),
                            did_you_mean(outside, allowed)
                            or "one of " + ", ".join(f"'{v}'" for v in allowed),
                        )
                    )
                    continue
                values[envelope][name] = converted
    return values, diagnostics


def _outside_enum(value: Any, allowed: tuple[str, ...] | None) -> str | None:
    """The first string of an override that the compared field's enum does not allow."""
    if allowed is None:
        return None
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and item not in allowed:
            return item
    return None


def _convert(value: Any, expected: Type) -> Any:
    """Durations may be given as ``"30m"`` and are held as seconds."""
    if isinstance(expected, DurationType) and isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match:
            seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
            return int(seconds) if seconds.is_integer() else seconds
    if isinstance(expected, DurationType) and isinstance(value, int | float):
        return value
    return value


def _choices(word: str, options: Any) -> str | None:
    return did_you_mean(word, options) or (
        "known: " + ", ".join(sorted(options)) if options else None
    )


def compile_pack(
    path: str | Path, envelopes: dict[str, dict[str, Any]] | None = None
) -> CompileReport:
    """Run every stage over the pack at ``path``; never raises for bad input."""
    with _collector_paused():
        return _compile_pack(Path(path), envelopes)


_PAUSE_LOCK = threading.Lock()
_pauses = 0  # compiles running with the collector paused
_resume = False  # whether the collector was on when the first of them began


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a pack compiles, back as it was after.

    A compile allocates many objects that live until it ends (tokens, trees, nodes,
    code) and frees few; each full collection walks all of them again, which made
    compile time grow faster than the pack. Compiles in several threads share one
    pause: the last to finish restores the collector.
    """
    global _pauses, _resume
    with _PAUSE_LOCK:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


def _compile_pack(root: Path, envelopes: dict[str, dict[str, Any]] | None) -> CompileReport:
    report = CompileReport([], SourceText({}))
    sources: dict[str, str] = {}
    report.sources = SourceText(sources)
    if not root.is_dir():
        report.diagnostics.append(error("E500", f"no pack directory at {root}"))
        return report

    report.stages_run.append("manifest")
    manifest, problems, manifest_doc = read_manifest(root)
    report.diagnostics += problems
    if manifest_doc is not None:
        sources[manifest_doc.file] = manifest_doc.text
    if manifest is None:
        return _finish(report)
    base_schema, problems = _read_input_schema(root, manifest, manifest_doc)
    report.diagnostics += problems

    report.stages_run.append("parse")
    files = sorted((root / "policies").glob("*.aigre")) if (root / "policies").is_dir() else []
    rego_files = sorted((root / "policies").glob("*.rego")) if (root / "policies").is_dir() else []
    if not files and not rego_files:
        report.diagnostics.append(
            error("E505", f"the pack has no policies: add {root / 'policies'}/<name>.aigre")
        )
    modules: list[n.Module] = []
    partial = False
    for file in files:
        display = str(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            report.diagnostics.append(error("E500", f"cannot read {display}: {exc}"))
            partial = True
            continue
        sources[display] = text
        try:
            result = parse_module(text, display)
        except RecursionError:
            report.diagnostics.append(
                error(
                    "E004",
                    f"{display}: expressions nest too deeply",
                    hint="split the condition into several rules",
                )
            )
            partial = True
            continue
        report.diagnostics += result.diagnostics
        if result.module is None:
            partial = True
        else:
            modules.append(result.module)
    if base_schema is None:
        return _finish(report)

    report.stages_run.append("check")
    usages = declared_usages(modules)
    schema = compose(base_schema, usage_schema(usages))
    try:
        checked = check_pack(modules, input_type(schema), sources, root, partial=partial)
    except RecursionError:
        report.diagnostics.append(
            error(
                "E004",
                "expressions nest too deeply to check",
                hint="split the condition into several rules",
            )
        )
        return _finish(report)
    report.diagnostics += checked.diagnostics
    if manifest.sensitive:
        report.diagnostics += check_sensitive_paths(
            manifest.sensitive,
            input_type(schema),
            lambda path: manifest_doc.span_of(("sensitive", path)) if manifest_doc else None,
        )
    envelope_types = _envelope_types(modules)
    values, problems = _apply_overrides(
        checked.program,
        [(MANIFEST, manifest.envelopes), ("override", envelopes or {})],
        envelope_types,
        manifest_doc,
        checked.envelope_enums,
    )
    report.diagnostics += problems
    handwritten: tuple[Any, ...] = ()
    if rego_files:
        report.stages_run.append("rego")
        handwritten, problems = _handwritten(rego_files, manifest.name, checked.program, sources)
        report.diagnostics += problems
    if has_errors(report.diagnostics):
        return _finish(report)

    report.stages_run.append("emit")
    header = f"pack {manifest.name} {manifest.version}"
    try:
        python = emit_python(checked.program, header)
    except RecursionError:
        report.diagnostics.append(
            error(
                "E004",
                "expressions nest too deeply to compile",
                hint="split the condition into several rules",
            )
        )
        return _finish(report)

    report.stages_run.append("load")
    bindings = {
        short: _frozen(values[dotted.split(".", 1)[0]][dotted.split(".", 1)[1]])
        for dotted, short in python.envelope_names.items()
    }
    try:
        namespace = load_module(python.source, f"<aigre-policy {manifest.name}>", bindings)
    except (RecursionError, SyntaxError, MemoryError) as exc:
        report.diagnostics.append(
            error(
                "E004",
                f"a condition nests too deeply to compile ({exc})",
                hint="split the condition into several rules",
            )
        )
        return _finish(report)
    try:
        validator = InputValidator(schema)
    except ValueError as exc:  # a schema keyword the validators cannot check alike
        report.diagnostics.append(
            error("E503", f"the input schema cannot be used: {exc}", hint=_SCHEMA_HINT)
        )
        return _finish(report)
    pack_digest = _digest(sources, values, schema)
    report.compiled = CompiledPack(
        root,
        manifest,
        modules,
        checked.program,
        values,
        schema,
        python,
        namespace,
        validator,
        pack_digest,
        handwritten,
    )
    return _finish(report)


def _handwritten(
    files: list[Path], pack_name: str, program: ir.Program, sources: dict[str, str]
) -> tuple[tuple[Any, ...], list[Diagnostic]]:
    """The pack's hand-written Rego modules, checked; their text joins the pack digest."""
    from aigre_policy.rego.handwritten import check_handwritten  # regopy only when needed

    texts: list[tuple[str, str]] = []
    problems: list[Diagnostic] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(error("E500", f"cannot read {file}: {exc}"))
            continue
        sources[str(file)] = text
        texts.append((str(file), text))
    modules, found = check_handwritten(texts, pack_name, {rule.id for rule in program.rules})
    return tuple(modules), problems + found


def _frozen(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def _envelope_types(modules: list[n.Module]) -> dict[str, dict[str, Type]]:
    types: dict[str, dict[str, Type]] = {}
    for module in modules:
        for decl in module.declarations:
            if isinstance(decl, n.Envelope):
                fields = types.setdefault(decl.name, {})
                for item in decl.fields:
                    typ = constant_type(item.value)
                    if typ is not None:
                        fields.setdefault(item.name, typ)
    return types


def _digest(sources: dict[str, str], envelopes: dict[str, Any], schema: dict[str, Any]) -> str:
    """Content digest: every source file, the effective envelope values and the input schema."""
    h = hashlib.sha256()
    root_names = sorted(sources)
    for name in root_names:
        h.update(Path(name).name.encode() + b"\0" + sources[name].encode() + b"\0")
    h.update(canonical_json(envelopes))
    h.update(canonical_json(schema))
    return "sha256:" + h.hexdigest()


def _finish(report: CompileReport) -> CompileReport:
    report.diagnostics = sorted_diagnostics(report.diagnostics)
    return report
