"""The language case corpus (``fixtures/cases/*.yaml``): read it, and run a case on an engine.

A case is a pack snippet with either inputs and the verdict each must get, or the
diagnostics the pack must draw; ``fixtures/cases/README.md`` describes the format and
``aigre_policy/schemas/case-file.schema.json`` holds it. Expected values are written
from ``docs/language.md``, never copied from an engine, so every engine is checked
against the reference, not against another engine.

Each engine is a function from a written pack directory and one input to an
``Outcome``, the part of a verdict the corpus compares: ``native`` (the generated
Python), ``interpreter`` (the IR walked by ``aigre_policy.interpreter``), ``rego``
(rego-cpp through ``load_pack(engine="rego")``), and ``regorus`` (the built bundle's
modules loaded unchanged into Microsoft's regorus, queried at the bundle's entrypoint).
"""

from __future__ import annotations

import copy
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from aigre_policy import load_pack
from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.mcp.mapping import FILE_NAME as MCP_MAPPING
from aigre_policy.mcp.mapping import parse_mapping
from aigre_policy.mcp.upstream_check import check_upstream
from aigre_policy.rego.bundle import PackIdentity, build_pack_bundle, read_bundle, write_bundle
from aigre_policy.testing.cases import load_cases
from aigre_policy.version import __version__
from aigre_policy.yamlio import read_document

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "case-file.schema.json"
MAIN = "policies/main.aigre"


@dataclass(frozen=True)
class Case:
    """One case: where it is written, its pack, and what must come of it."""

    file: str
    id: str
    pack: dict[str, Any]
    inputs: tuple[dict[str, Any], ...] = ()
    diagnostics: tuple[dict[str, Any], ...] | None = None
    target_diagnostics: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    constructs: tuple[str, ...] = ()
    upstream_tools: dict[str, Any] | None = None  # an MCP upstream's tools, for mcp.yaml

    @property
    def key(self) -> str:
        return f"{Path(self.file).stem}/{self.id}"


@dataclass(frozen=True)
class Outcome:
    """What the corpus compares of a verdict."""

    decision: str
    fail_closed: bool
    default_applied: bool
    fired: tuple[tuple[str, str], ...]  # (id, message), pack order
    warnings: tuple[tuple[str, str], ...]
    approvers: tuple[str, ...]
    escalate_to: tuple[str, ...]
    errors: tuple[tuple[str, str], ...]  # (kind, path)


@cache
def case_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def load_corpus(root: Path) -> list[Case]:
    """Every case under ``root``; ``ValueError`` naming the file when one breaks the format."""
    cases: list[Case] = []
    seen: set[str] = set()
    validator = jsonschema.Draft202012Validator(case_schema())
    for path in sorted(root.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        problems = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        if problems:
            where = "/".join(str(p) for p in problems[0].path)
            raise ValueError(f"{path.name}: {where}: {problems[0].message}")
        base = document.get("base", {})
        for raw in document["cases"]:
            case = Case(
                file=path.name,
                id=raw["id"],
                pack=raw["pack"],
                inputs=tuple(_merged_input(base, given) for given in raw.get("inputs", [])),
                diagnostics=(tuple(raw["diagnostics"]) if "diagnostics" in raw else None),
                target_diagnostics={
                    target: tuple(found)
                    for target, found in raw.get("target_diagnostics", {}).items()
                },
                constructs=tuple(raw.get("constructs", [])),
                upstream_tools=raw.get("upstream_tools"),
            )
            if case.key in seen:
                raise ValueError(f"{path.name}: case `{case.id}` is given twice")
            seen.add(case.key)
            cases.append(case)
    return cases


def _merged_input(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """An input: ``base`` with the case's roots merged over it, then ``drop`` paths removed."""
    merged = dict(given)
    for root in ("action", "context", "usage"):
        if given.get("replace", False):
            merged[root] = copy.deepcopy(given.get(root, {}))
        else:
            merged[root] = _deep_merge(base.get(root, {}), given.get(root, {}))
    for dotted in given.get("drop", []):
        *parents, last = dotted.split(".")
        node = merged
        for step in parents:
            node = node[step]
        del node[last]
    return merged


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        result = copy.deepcopy(base)
        for key, value in over.items():
            result[key] = _deep_merge(base.get(key), value)
        return result
    return copy.deepcopy(over)


def write_pack(case: Case, into: Path) -> Path:
    """The case's pack as a directory under ``into``."""
    spec = case.pack
    root = into / "pack"
    (root / "policies").mkdir(parents=True)
    manifest = {
        "name": "case",
        "version": "1.0.0",
        "default": spec.get("default", "allow"),
        "fail_closed": spec.get("fail_closed", "deny"),
        **spec.get("manifest", {}),
    }
    (root / "pack.yaml").write_text(
        spec["manifest_text"] if "manifest_text" in spec else yaml.safe_dump(manifest),
        encoding="utf-8",
    )
    policies = dict(spec.get("policies", {}))
    if "policy" in spec:
        policies["main.aigre"] = spec["policy"]
    for name, text in policies.items():
        (root / "policies" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    for name, text in spec.get("files", {}).items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text if isinstance(text, str) else json.dumps(text), encoding="utf-8")
    return root


# ---------------------------------------------------------------------- diagnostics


def located(diagnostics: list[Diagnostic], root: Path) -> list[dict[str, Any]]:
    """Diagnostics as the corpus writes them: code, file relative to the pack, ``line:col``."""
    found = []
    for d in diagnostics:
        entry: dict[str, Any] = {"code": d.code}
        if d.span is not None:
            file = Path(d.span.file)
            try:
                relative = file.relative_to(root).as_posix()
            except ValueError:
                relative = file.as_posix()
            entry["file"] = relative
            entry["at"] = f"{d.span.line}:{d.span.column}"
        found.append(entry)
    return sorted(found, key=lambda e: (e["code"], e.get("file", ""), e.get("at", "")))


def expected_diagnostics(expected: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    wanted = []
    for item in expected:
        entry: dict[str, Any] = {"code": item["code"]}
        if "at" in item:
            entry["file"] = item.get("file", MAIN)
            entry["at"] = item["at"]
        wanted.append(entry)
    return sorted(wanted, key=lambda e: (e["code"], e.get("file", ""), e.get("at", "")))


def compile_diagnostics(
    root: Path, upstream_tools: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """What the compiler and checker report for the pack at ``root``, as the corpus writes it.

    With the pack's YAML tests and its MCP mapping (``mcp.yaml``, checked against the
    pack's input schema, and against ``upstream_tools`` when given: name -> inputSchema).
    """
    report = compile_pack(root)
    diagnostics = list(report.diagnostics)
    if report.ok and (root / "tests").is_dir():  # YAML table tests: read with the pack
        diagnostics += load_cases(load_pack(root))[1]
    if report.ok and (root / MCP_MAPPING).is_file():
        diagnostics += _mapping_diagnostics(root, upstream_tools)
    return located(diagnostics, root)


def _mapping_diagnostics(root: Path, upstream_tools: dict[str, Any] | None) -> list[Diagnostic]:
    doc, problems = read_document(root / MCP_MAPPING)
    if doc is None:
        return list(problems)
    mapping, problems = parse_mapping(doc, load_pack(root).input_schema)
    if mapping is None or upstream_tools is None:
        return list(problems)
    return check_upstream(mapping, upstream_tools)


def compare_diagnostics(
    found: list[dict[str, Any]], expected: tuple[dict[str, Any], ...]
) -> list[str]:
    """Differences between reported and expected diagnostics; a code without ``at`` only
    needs the code (a diagnostic with no source place: a missing file, a pack-level fault)."""
    wanted = expected_diagnostics(expected)
    got = [
        e if any("at" in w and w["code"] == e["code"] for w in wanted) else {"code": e["code"]}
        for e in found
    ]
    got = sorted(got, key=lambda e: (e["code"], e.get("file", ""), e.get("at", "")))
    return [] if got == wanted else [f"diagnostics: expected {wanted}, got {got}"]


# -------------------------------------------------------------------------- verdicts


def outcome_of(verdict: Any) -> Outcome:
    """The compared part of a ``Verdict`` (or of a decision document, a dict)."""

    def get(key: str) -> Any:
        return verdict.get(key) if isinstance(verdict, dict) else getattr(verdict, key)

    return Outcome(
        decision=get("decision"),
        fail_closed=bool(get("fail_closed")),
        default_applied=bool(get("default_applied")),
        fired=tuple((r["id"], r["message"]) for r in get("fired")),
        warnings=tuple((r["id"], r["message"]) for r in get("warnings")),
        approvers=tuple(get("approvers") or ()),
        escalate_to=tuple(get("escalate_to") or ()),
        errors=tuple((e.get("kind", ""), e.get("path", "")) for e in get("errors")),
    )


def compare(expect: dict[str, Any], got: Outcome) -> list[str]:
    """What ``got`` says differently from ``expect``; empty when they agree."""
    problems = []
    fail_closed = expect.get("fail_closed", False)
    checks: list[tuple[str, Any, Any]] = [
        ("decision", expect["decision"], got.decision),
        ("fail_closed", fail_closed, got.fail_closed),
    ]
    if "default_applied" in expect:
        checks.append(("default_applied", expect["default_applied"], got.default_applied))
    for key in ("fired", "warnings"):
        records = getattr(got, key)
        wanted = expect.get(key, [] if not fail_closed or key == "fired" else None)
        if wanted is None:
            continue
        ids = [r if isinstance(r, str) else r["id"] for r in wanted]
        checks.append((f"{key} ids", ids, [i for i, _ in records]))
        messages = [
            (r["id"], r["message"]) for r in wanted if isinstance(r, dict) and "message" in r
        ]
        checks.append((f"{key} messages", messages, [m for m in records if m[0] in dict(messages)]))
    for key in ("approvers", "escalate_to"):
        if key in expect:
            checks.append((key, list(expect[key]), list(getattr(got, key))))
    if "errors" in expect:
        kinds = sorted({e["kind"] for e in expect["errors"]})
        checks.append(("error kinds", kinds, sorted({kind for kind, _ in got.errors})))
        for wanted_error in expect["errors"]:
            if (
                "path" in wanted_error
                and (wanted_error["kind"], wanted_error["path"]) not in got.errors
            ):
                problems.append(f"errors: no {wanted_error} among {list(got.errors)}")
    for name, want, have in checks:
        if want != have:
            problems.append(f"{name}: expected {want!r}, got {have!r}")
    return problems


Engine = Callable[[Path, dict[str, Any]], Outcome]


@cache
def _loaded(root: str, engine: str) -> Any:
    return load_pack(root, engine=engine)


def run_native(root: Path, given: dict[str, Any]) -> Outcome:
    pack = _loaded(str(root), "native")
    return outcome_of(pack.evaluate(given["action"], given["context"], given["usage"]))


def run_rego(root: Path, given: dict[str, Any]) -> Outcome:
    pack = _loaded(str(root), "rego")
    return outcome_of(pack.evaluate(given["action"], given["context"], given["usage"]))


def run_interpreter(root: Path, given: dict[str, Any]) -> Outcome:
    """The reference interpreter (``load_pack(engine="interpreter")``): the pack's own
    validator first, a fault failing closed, as on every engine."""
    pack = _loaded(str(root), "interpreter")
    return outcome_of(pack.evaluate(given["action"], given["context"], given["usage"]))


class RegorusLoadError(Exception):
    """regorus refused a module of the bundle, or could not evaluate its entrypoint."""


def _regorus_engine(root: str) -> tuple[Any, str]:
    """A regorus engine holding the pack's built bundle, unchanged, and the query for its
    entrypoint; ``RegorusLoadError`` when regorus refuses a module."""
    loaded = _regorus_loaded(root)
    if isinstance(loaded, str):
        raise RegorusLoadError(loaded)
    return loaded


@cache
def _regorus_loaded(root: str) -> tuple[Any, str] | str:
    """The engine and query, or why regorus refused the bundle (kept: it refuses it again)."""
    import regorus  # an optional test dependency: imported when the engine is asked for

    pack = _loaded(root, "rego")  # the program the rego engine runs, built as a bundle
    identity = PackIdentity(pack.name, pack.version, pack.digest)
    bundle = read_bundle(write_bundle(pack.rego, identity, __version__))
    engine = regorus.Engine()
    for module in bundle.modules:
        try:
            engine.add_policy(module.path, module.source)
        except Exception as exc:  # regorus raises plain RuntimeError/ValueError
            return f"{module.path}: {_first_line(exc)}"
    engine.add_data_json(json.dumps(bundle.data))
    return engine, "data." + (bundle.entrypoint or "").replace("/", ".")


def run_regorus(root: Path, given: dict[str, Any]) -> Outcome:
    """The bundle's modules and data, unchanged, in a regorus engine, queried at the
    bundle's entrypoint: the input is checked by the bundle's own schema rules, as an OPA
    server holding the bundle would check it."""
    engine, query = _regorus_engine(str(root))
    document = {"action": given["action"], "context": given["context"], "usage": given["usage"]}
    engine.set_input_json(json.dumps(document))
    try:
        value = engine.eval_rule(query)
    except Exception as exc:
        raise RegorusLoadError(f"eval: {_first_line(exc)}") from None
    if not isinstance(value, dict):
        raise RegorusLoadError(f"the entrypoint gave {value!r}")
    return outcome_of(value)


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith("error:")]
    return (detail or lines or [type(exc).__name__])[0]


ENGINES: dict[str, Engine] = {
    "native": run_native,
    "interpreter": run_interpreter,
    "rego": run_rego,
    "regorus": run_regorus,
}


def target_refusal(root: Path, target: str) -> list[dict[str, Any]]:
    """The diagnostics ``target`` (``rego``) reports when the pack is built for it."""
    if target != "rego":
        raise ValueError(f"unknown target {target!r}")
    built = build_pack_bundle(root)
    return located(list(built.diagnostics), root)
