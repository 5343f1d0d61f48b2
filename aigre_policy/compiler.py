"""The compiler driver: a pack directory through every stage to a loaded evaluator.

``STAGES`` lists the stages in order; each is a function from what is known of
the pack so far to what is known next, diagnostics included. The driver loops
over them, collects every diagnostic, stops after a stage whose output is
unusable or before one that needs clean input, and turns a pack nested past the
recursive stages' limits into one E004 (``nests_too_deeply``). The check stage
ends in a ``CheckedPack``: all any backend reads.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from aigre_policy import backend, composition, ir
from aigre_policy import nodes as n
from aigre_policy.check import check_pack, declared_usages, keyed_value, usage_schema
from aigre_policy.checked import (  # MANIFEST, CompiledPack, CompileReport: re-exported
    MANIFEST,
    CheckedPack,
    CompiledPack,
    CompileReport,
    DecisionPolicy,
    Evaluator,
    Manifest,
    decision_policy,
)
from aigre_policy.collector import collector_paused
from aigre_policy.diagnostics import (
    CompileError,
    Diagnostic,
    SourceText,
    Span,
    error,
    has_errors,
    sorted_diagnostics,
)
from aigre_policy.exemptions import FILE_NAME as EXEMPTIONS
from aigre_policy.exemptions import (
    Exemption,
    apply_exemptions,
    check_exemptions,
    inherited,
    read_exemptions,
)
from aigre_policy.inputs import BUILTIN_SCHEMAS, builtin_schema, compose
from aigre_policy.schema_types import input_type
from aigre_policy.sensitive import check_sensitive_paths
from aigre_policy.targets import schema_diagnostics, target_diagnostics
from aigre_policy.typecheck import constant_type, did_you_mean, value_type
from aigre_policy.types import (
    DurationType,
    KeyedType,
    ListType,
    NeverType,
    NumberType,
    Type,
    same_kind,
)
from aigre_policy.validation import InputValidator
from aigre_policy.verdict import canonical_json
from aigre_policy.yamlio import Document, lone_surrogate, read_document
from aigre_policy.zone_check import check_zones

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")


__all__ = ["CheckedPack", "CompiledPack", "DecisionPolicy", "Evaluator", "Manifest"]


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
            owner=data.get("owner", ""),
            extends=data.get("extends", ""),
            disable=data.get("disable") or [],
        ),
        [],
        doc,
    )


def _manifest_hint(problem: jsonschema.ValidationError) -> str | None:
    if problem.validator == "additionalProperties":
        return (
            "settings: name, version, description, owner, extends, disable, input_schema, "
            "default, fail_closed, envelopes, sensitive, lint, fail_closed_approvers, "
            "reusable_approvals"
        )
    if problem.validator == "pattern" and list(problem.path) == ["version"]:
        return "versions look like 1.2.0"
    return None


def _display(root: Path, relative: str) -> str:
    return str(root / relative)


def _read_input_schema(
    root: Path, manifest: Manifest, doc: Document | None
) -> tuple[dict[str, Any] | None, list[Diagnostic]]:
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

    def span(*path: str) -> Span | None:
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
                if isinstance(expected, KeyedType):  # the whole table is replaced
                    keyed, problem = _keyed_override(
                        value, expected, (enums or {}).get(f"{envelope}.{name}#keys")
                    )
                    if problem is not None:
                        diagnostics.append(
                            error(
                                "E504",
                                f"{origin}: `{envelope}.{name}` is a {expected}: {problem}",
                                span(envelope, name),
                            )
                        )
                    else:
                        values[envelope][name] = keyed
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


def _keyed_override(
    value: Any, expected: KeyedType, keys: tuple[str, ...] | None
) -> tuple[dict[str, Any], str | None]:
    """A keyed envelope value given as data, converted; or why it does not fit."""
    label = f"by_{expected.label}"
    shape = f"give {{default: VALUE, {label}: {{KEY: VALUE, ...}}}}"
    if not isinstance(value, dict) or set(value) != {"default", label}:
        return {}, shape
    if not isinstance(value[label], dict):
        return {}, shape
    converted: dict[str, Any] = {"default": None, label: {}}
    for key, item in [("default", value["default"]), *value[label].items()]:
        item = _convert(item, expected.value)
        given = value_type(item)
        if isinstance(expected.value, DurationType) and isinstance(given, NumberType):
            given = expected.value
        if isinstance(item, float) and not math.isfinite(item):
            given = None
        if given is None or isinstance(given, ListType) or not same_kind(given, expected.value):
            return {}, f"`{key}` is given {item!r}"
        if key == "default":
            converted["default"] = item
            continue
        if keys is not None and key not in keys:
            return {}, f"the key '{key}' is never looked up" + (
                f" ({did_you_mean(key, keys)})" if did_you_mean(key, keys) else ""
            )
        converted[label][key] = item
    return converted, None


def _convert(value: Any, expected: Type) -> Any:
    """Durations may be given as ``"30m"`` and are held as seconds."""
    if isinstance(expected, DurationType) and isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match:
            from aigre_policy.parser import DURATION_UNITS  # Lark loads only when parsing

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
    path: str | Path,
    envelopes: dict[str, dict[str, Any]] | None = None,
    engine: str | None = "native",
    editing: Mapping[str, str] | None = None,
) -> CompileReport:
    """Run every stage over the pack at ``path``; never raises for bad input.

    ``editing`` maps policy files (named as ``path / "policies" / name``) to text an
    editor holds unsaved, read instead of the file on disk.

    ``engine``: the backend whose evaluator the last stage builds (``backend.build``);
    ``None`` stops at the sealed ``CheckedPack`` (``report.checked``). ``ValueError``
    for an engine no backend knows.
    """
    with collector_paused():
        return _compile_pack(Path(path), envelopes, engine, editing or {})


@dataclass(frozen=True)
class _Work:
    """What the stages know of one pack so far; each stage returns it with its part added."""

    root: Path
    overrides: dict[str, dict[str, Any]]
    sources: dict[str, str]  # file -> text, for diagnostics and the digest
    engine: str | None = None  # whose evaluator the backend stage builds
    diagnostics: tuple[Diagnostic, ...] = ()
    stop: bool = False  # a stage's output is unusable: the stages after it do not run
    manifest: Manifest | None = None
    manifest_doc: Document | None = None
    base_schema: dict[str, Any] | None = None
    rego_files: tuple[Path, ...] = ()
    modules: tuple[n.Module, ...] = ()
    checked: CheckedPack | None = None
    compiled: CompiledPack | None = None
    partial: bool = False  # a policy file did not parse
    editing: Mapping[str, str] = field(default_factory=dict)  # file -> unsaved text
    parents: tuple[composition.Parent, ...] = ()  # the packs this one extends, nearest first
    exemptions: tuple[Exemption, ...] = ()

    def add(self, problems: Any, **fields: Any) -> _Work:
        return replace(self, diagnostics=(*self.diagnostics, *problems), **fields)


@dataclass(frozen=True)
class Stage:
    """One step of the driver: a function from what is known to what is known next."""

    name: str
    summary: str
    run: Callable[[_Work], _Work]
    # when the stage fails on a pack too deep for the recursive parts, E004 says this
    too_deep: str = "expressions nest too deeply"
    applies: Callable[[_Work], bool] = lambda work: True
    needs_clean_input: bool = False  # not run after any error


_SPLIT_HINT = "split the condition into several rules"
# the faults of a pack nested past what the recursive stages (and CPython's compiler) take
_TOO_DEEP = (RecursionError, MemoryError, SyntaxError)


def nests_too_deeply(message: str) -> Diagnostic:
    """The one E004 every stage reports for a pack nested past its limits."""
    return error("E004", message, hint=_SPLIT_HINT)


def _read_pack_manifest(work: _Work) -> _Work:
    manifest, problems, doc = read_manifest(work.root)
    if doc is not None:
        work.sources[doc.file] = doc.text
    work = work.add(problems, manifest=manifest, manifest_doc=doc)
    if manifest is None:
        return replace(work, stop=True)
    parents, problems = composition.read_parents(work.root, manifest, doc, read_manifest)
    for parent in parents:
        work.sources[parent.doc.file] = parent.doc.text
    work = work.add(problems, parents=parents)
    if problems:
        return replace(work, stop=True)
    manifest = composition.inherited_manifest(manifest, doc, parents)
    schema_root, schema_doc = work.root, doc
    if doc is None or "input_schema" not in (doc.data or {}):
        for parent in parents:  # the nearest pack that names one
            if "input_schema" in parent.doc.data:
                schema_root, schema_doc = parent.root, parent.doc
                manifest = replace(manifest, input_schema=parent.manifest.input_schema)
                break
    base_schema, problems = _read_input_schema(schema_root, manifest, schema_doc)
    # the exemptions of the packs it extends, farthest first, then its own
    levels, found = [], []
    for root in [*(parent.root for parent in reversed(parents)), work.root]:
        level, problems_here, exemptions_doc = read_exemptions(root, _display(root, EXEMPTIONS))
        if exemptions_doc is not None:  # shown in diagnostics, and part of the digest
            work.sources[exemptions_doc.file] = exemptions_doc.text
        levels.append(level)
        found += problems_here
    return work.add(
        [*problems, *found],
        manifest=manifest,
        base_schema=base_schema,
        exemptions=inherited(levels),
    )


def _parse(work: _Work) -> _Work:
    from aigre_policy.parser import parse_module  # Lark loads only when a pack is parsed

    policies = work.root / "policies"
    files = sorted(policies.glob("*.aigre")) if policies.is_dir() else []
    rego_files = tuple(sorted(policies.glob("*.rego"))) if policies.is_dir() else ()
    problems: list[Diagnostic] = []
    if not files and not rego_files and not work.parents:
        problems.append(error("E505", f"the pack has no policies: add {policies}/<name>.aigre"))
    # a parent's policies first, farthest ancestor first: the child's rules follow theirs
    for parent in reversed(work.parents):
        inherited = parent.root / "policies"
        if inherited.is_dir():
            files = [*sorted(inherited.glob("*.aigre")), *files]
            rego_files = (*sorted(inherited.glob("*.rego")), *rego_files)
    modules: list[n.Module] = []
    for file in files:
        display = str(file)
        try:
            text = work.editing.get(display)  # an editor's unsaved text wins over the disk
            if text is None:
                text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(error("E500", f"cannot read {display}: {exc}"))
            continue
        work.sources[display] = text
        try:
            result = parse_module(text, display)
        except RecursionError:  # one file too deep: the others are still parsed
            problems.append(nests_too_deeply(f"{display}: expressions nest too deeply"))
            continue
        problems += result.diagnostics
        if result.module is not None:
            modules.append(result.module)
    # a file that did not parse leaves the pack partial: the checker says less
    work = work.add(problems, modules=tuple(modules), rego_files=rego_files)
    return replace(work, stop=work.base_schema is None, partial=len(modules) < len(files))


def _check(work: _Work) -> _Work:
    assert work.manifest is not None and work.base_schema is not None
    manifest, doc = work.manifest, work.manifest_doc
    modules = list(work.modules)
    schema = compose(work.base_schema, usage_schema(declared_usages(modules)))
    shape = input_type(schema)
    checked = check_pack(modules, shape, work.sources, work.root, partial=work.partial)
    problems = list(checked.diagnostics)
    if manifest.sensitive:
        problems += check_sensitive_paths(
            manifest.sensitive,
            shape,
            lambda path: doc.span_of(("sensitive", path)) if doc else None,
        )
    inherited = [(parent.doc.file, parent.manifest.envelopes) for parent in work.parents]
    values, found = _apply_overrides(
        checked.program,
        [*reversed(inherited), (MANIFEST, manifest.envelopes), ("override", work.overrides)],
        _envelope_types(modules),
        doc,
        checked.envelope_enums,
    )
    problems += found
    problems += check_zones(checked.program, values)  # zones and dates, overrides included
    program, found = composition.disable_rules(checked.program, manifest, doc, work.root)
    problems += found
    problems += check_exemptions(work.exemptions, program, shape)
    unexempted = {
        rule.id: rule.condition
        for rule in program.rules
        if rule.id in {e.rule for e in work.exemptions}
    }
    program = apply_exemptions(program, work.exemptions)
    policy = decision_policy(manifest, program.rules)
    result = CheckedPack(
        work.root,
        manifest,
        tuple(modules),
        program,
        values,
        schema,
        policy,
        "",
        # what one target cannot run: its backend refuses the pack with these
        target_diagnostics=target_diagnostics(program, values),
        exemptions=work.exemptions,
        unexempted=unexempted,
        ancestors=tuple(parent.root for parent in work.parents),
        declared=dict(Counter(type(d).__name__ for m in modules for d in m.declarations)),
    )
    return work.add(problems, checked=result)


def _check_rego(work: _Work) -> _Work:
    assert work.checked is not None
    handwritten, problems = _handwritten(
        list(work.rego_files), work.checked.manifest.name, work.checked.program, work.sources
    )
    return work.add(problems, checked=replace(work.checked, handwritten=handwritten))


def _seal(work: _Work) -> _Work:
    """The content digest, once every source (hand-written Rego too) is read and clean, and
    the validator every input passes before any engine judges it."""
    assert work.checked is not None
    checked = work.checked
    digest = _digest(work.sources, checked.envelopes, checked.input_schema)
    try:
        validator = InputValidator(checked.input_schema)
    except ValueError as exc:  # a schema keyword the validators cannot check alike
        problem = error("E503", f"the input schema cannot be used: {exc}", hint=_SCHEMA_HINT)
        return work.add([problem], stop=True)
    # a schema the Rego engines cannot check alike is refused on every engine (E604)
    unchecked = schema_diagnostics(checked.input_schema)
    if unchecked:
        return work.add(unchecked, stop=True)
    return replace(work, checked=replace(checked, digest=digest, validator=validator))


def _build(work: _Work) -> _Work:
    """The evaluator of the engine asked for, from the sealed ``CheckedPack`` alone."""
    assert work.checked is not None and work.engine is not None
    try:
        evaluator = backend.build(work.checked, work.engine)
    except CompileError as refused:  # the target cannot express the pack
        return work.add(refused.diagnostics, stop=True)
    return work.add(evaluator.warnings, compiled=CompiledPack(work.checked, evaluator))


STAGES: tuple[Stage, ...] = (
    Stage(
        "manifest",
        "read and validate pack.yaml, the packs it extends, its input schema and exemptions",
        _read_pack_manifest,
    ),
    Stage("parse", "policies/*.aigre to AST (parser.parse_module)", _parse),
    Stage(
        "check",
        "names, types, optional fields against the input schema; AST to IR; "
        "envelope overrides, disabled rules, exemptions: a CheckedPack",
        _check,
        too_deep="expressions nest too deeply to check",
    ),
    Stage(
        "rego",
        "policies/*.rego: hand-written Rego checked with regopy (rego.handwritten)",
        _check_rego,
        applies=lambda work: bool(work.rego_files),
    ),
    Stage(
        "seal",
        "the content digest of every source, the envelope values and the input schema; "
        "the input validator",
        _seal,
        needs_clean_input=True,
    ),
    Stage(
        "backend",
        "the engine's evaluator from the CheckedPack alone (backend.build): native code "
        "generation and sandbox load, the reference interpreter, or a Rego engine",
        _build,
        too_deep="a condition nests too deeply to compile ({exc})",
        applies=lambda work: work.engine is not None,
        needs_clean_input=True,
    ),
)


def _compile_pack(
    root: Path,
    envelopes: dict[str, dict[str, Any]] | None,
    engine: str | None,
    editing: Mapping[str, str],
) -> CompileReport:
    report = CompileReport([], SourceText({}))
    if not root.is_dir():
        report.diagnostics.append(error("E500", f"no pack directory at {root}"))
        return report
    work = _Work(root, envelopes or {}, {}, engine, editing=editing)
    report.sources = SourceText(work.sources)
    for stage in STAGES:
        if work.stop or (stage.needs_clean_input and has_errors(work.diagnostics)):
            break
        if not stage.applies(work):
            continue
        report.stages_run.append(stage.name)
        try:
            work = stage.run(work)
        except _TOO_DEEP as exc:
            work = work.add([nests_too_deeply(stage.too_deep.format(exc=exc))], stop=True)
    report.diagnostics = list(work.diagnostics)
    if not work.stop and not has_errors(work.diagnostics):
        report.checked = work.checked
        report.compiled = work.compiled
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


def _envelope_types(modules: list[n.Module]) -> dict[str, dict[str, Type]]:
    types: dict[str, dict[str, Type]] = {}
    for module in modules:
        for decl in module.declarations:
            if isinstance(decl, n.Envelope):
                fields = types.setdefault(decl.name, {})
                for item in decl.fields:
                    typ = constant_type(item.value)
                    if isinstance(item.value, n.ObjectConst):  # a keyed value
                        keyed = keyed_value("", item.value, [])  # the check stage reports
                        typ = keyed[0] if keyed is not None else None
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
