# ruff: noqa: E501 - the Rego this module holds keeps its own line lengths
"""Hand-written Rego in a pack: ``policies/*.rego`` checked, and their reports collected.

The contract (docs/rego.md): a module ``policies/<file>.rego`` declares
``package aigre.<pkg>.custom.<file>`` and may define the sets ``deny``,
``require_approval``, ``escalate`` and ``warn`` of objects with ``id`` and
``message``, and optionally ``category``, ``severity``, ``tags``, ``groups``
(approvers or escalation targets) and ``bindings``. Each element becomes a fired
rule (or a warning) with the same evidence shape as an ``.aigre`` rule, on both
engines. A malformed element, or an id an ``.aigre`` rule uses, is a fault: the
verdict fails closed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regopy
from regopy.rego_shared import LogLevel

from aigre_policy.diagnostics import Diagnostic, Span, error
from aigre_policy.lattice import RULE_VERDICTS
from aigre_policy.rego.expr import literal
from aigre_policy.rego.lib import LIB
from aigre_policy.rego.names import package_of, segment

VERDICTS = tuple(v for v in RULE_VERDICTS if v != "permit")  # a module cannot permit
SEVERITIES = ("low", "medium", "high", "critical")
# builtins that reach outside the input or vary between runs: a verdict must replay
IMPURE = ("http.send", "time.now_ns", "opa.runtime", "rand.intn", "uuid.rfc4122", "net.")
_PACKAGE = re.compile(r"^[ \t]*package[ \t]+([^\s#]+)", re.MULTILINE)
_ERROR = re.compile(
    r"\(error \d+:(?P<file>[^|]*)\|(?P<offset>\d+)\|\d+\s+\(errormsg \d+:(?P<msg>[^)\n]*)"
)
_ID = re.compile(r'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class HandwrittenModule:
    file: str  # as the pack was loaded: <pack>/policies/<name>.rego
    stem: str  # the package's last segment
    source: str
    lines: tuple[tuple[str, int], ...]  # (verdict set, line of its first definition)
    # the rule ids the module writes as literals (`"id": "..."`): what tests may name
    ids: tuple[str, ...] = ()


def expected_package(pack_name: str, file: Path) -> str:
    return f"{package_of(pack_name)}.custom.{segment(file.stem)}"


def _span(file: str, text: str, offset: int, length: int = 1) -> Span:
    before = text[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return Span(file, line, column, line, column + max(length, 1))


def check_handwritten(
    files: list[tuple[str, str]], pack_name: str, rule_ids: set[str]
) -> tuple[list[HandwrittenModule], list[Diagnostic]]:
    """Check each ``(display path, text)``; modules that pass, and diagnostics with positions."""
    modules: list[HandwrittenModule] = []
    diagnostics: list[Diagnostic] = []
    for display, text in files:
        problems = _check_one(display, text, pack_name, rule_ids)
        diagnostics += problems
        if not problems:
            stem = expected_package(pack_name, Path(display)).rsplit(".", 1)[1]
            lines = tuple(
                (verdict, text[: m.start()].count("\n") + 1)
                for verdict in VERDICTS
                if (m := re.search(rf"^[ \t]*{verdict}\b", text, re.MULTILINE))
            )
            ids = tuple(dict.fromkeys(json.loads(f'"{m.group(1)}"') for m in _ID.finditer(text)))
            modules.append(HandwrittenModule(display, stem, text, lines, ids))
    return modules, diagnostics


def _check_one(display: str, text: str, pack_name: str, rule_ids: set[str]) -> list[Diagnostic]:
    want = expected_package(pack_name, Path(display))
    found = _PACKAGE.search(text)
    if found is None or found.group(1) != want:
        offset = found.start(1) if found else 0
        given = f"`package {found.group(1)}`" if found else "no package"
        return [
            error(
                "E605",
                f"{given}; a hand-written module of this pack declares `package {want}`",
                _span(display, text, offset, len(found.group(1)) if found else 1),
                "the package names the pack and the file, so modules cannot reach each other",
            )
        ]
    interpreter = regopy.Interpreter()
    interpreter.log_level = LogLevel.NONE
    try:
        interpreter.add_module("lib.rego", f"package {want.rsplit('.custom.', 1)[0]}.lib\n{LIB}")
        interpreter.add_module(display, text)
        interpreter.query(f"data.{want}")
    except regopy.RegoError as exc:
        return [_rego_error(display, text, str(exc))]
    problems = []
    for match in _ID.finditer(text):
        if match.group(1) in rule_ids:
            problems.append(
                error(
                    "E606",
                    f"rule id `{match.group(1)}` is already a rule of this pack's .aigre files",
                    _span(display, text, match.start(1), len(match.group(1))),
                    "ids name one rule each across .aigre and .rego files",
                )
            )
    for name in IMPURE:
        for match in re.finditer(re.escape(name), text):
            problems.append(
                error(
                    "E607",
                    f"`{name}` reads the world outside the input; verdicts must replay",
                    _span(display, text, match.start(), len(name)),
                    "pass what the rule needs in the action or context",
                )
            )
    return problems


def _rego_error(display: str, text: str, raw: str) -> Diagnostic:
    found = _ERROR.search(raw)
    if found is None or found.group("file") != display:
        return error("E608", f"{display}: Rego does not compile: {raw.strip()[:200]}")
    return error(
        "E608",
        f"Rego does not compile: {found.group('msg').strip()}",
        _span(display, text, int(found.group("offset"))),
    )


def modules_of(compiled: Any) -> tuple[HandwrittenModule, ...]:
    return tuple(getattr(compiled, "handwritten", ()) or ())


def rule_ids(pack: Any) -> frozenset[str]:
    """The ids of the rules a pack's hand-written modules report: each written as a
    literal (``"id": "malformed-ticket-ref"``) in its module. An id computed at run
    time is not known before a verdict, so tests cannot name it."""
    modules = modules_of(getattr(pack, "checked", None))  # a bundle's pack holds none
    return frozenset(rule_id for module in modules for rule_id in module.ids)


def collector(
    package: str,
    modules: tuple[HandwrittenModule, ...],
    aigre_ids: list[str],
    header: str,
    root: Path,
) -> str:
    """``package <pkg>.handwritten``: ``records`` (fired-rule shape), ``faults`` and ``result``."""
    sources = []
    for module in modules:
        declared = _PACKAGE.search(module.source)
        if declared is None:  # _check_one refuses a module without one before it is kept
            raise AssertionError(f"{module.file}: hand-written module without a package")
        default_line = module.source[: declared.start()].count("\n") + 1
        lines = dict(module.lines)
        file = Path(module.file)
        shown = file.relative_to(root).as_posix() if file.is_relative_to(root) else module.file
        where = {
            v: {"file": shown, "line": lines.get(v, default_line), "column": 1} for v in VERDICTS
        }
        sources.append(
            "_reported contains [r, v, loc] if {\n"
            f"\tsome v in {literal(list(VERDICTS))}\n"
            f"\tsome r in data.{package}.custom.{module.stem}[v]\n"
            f"\tloc := {literal(where)}[v]\n"
            "}\n\n"
            "faults contains msg if {\n"
            f"\tsome v in {literal(list(VERDICTS))}\n"
            f"\treported := data.{package}.custom.{module.stem}[v]\n"
            "\tnot is_set(reported)\n"
            f'\tmsg := concat("", [{literal(shown)}, ": `", v, "` must be a set"])\n'
            "}\n"
        )
    if not modules:
        return (
            f"{header}\npackage {package}.handwritten\n\n"
            "# This pack has no hand-written modules.\n\n"
            "records := []\n\nfaults := set()\n\n"
            'result := {"records": [], "faults": []}\n'
        )
    return f"""{header}
package {package}.handwritten

# What the hand-written modules report, shaped as fired rules (see docs/rego.md).

_aigre_ids := {literal(sorted(set(aigre_ids)))}

_reported contains x if {{
	x := null
	false
}}

{chr(10).join(sources)}
_valid(r) if {{
	is_object(r)
	is_string(r.id)
	regex.match(`^[a-z0-9][a-z0-9._-]*$`, r.id)
	is_string(r.message)
	is_string(object.get(r, "category", "custom"))
	object.get(r, "severity", "medium") in {literal(list(SEVERITIES))}
	is_array(object.get(r, "tags", []))
	count([t | some t in object.get(r, "tags", []); not is_string(t)]) == 0
	is_array(object.get(r, "groups", []))
	count([g | some g in object.get(r, "groups", []); not is_string(g)]) == 0
	is_object(object.get(r, "bindings", {{}}))
}}

_groups(r, v, wanted) := object.get(r, "groups", []) if {{
	v == wanted
}} else := []

_record(r, v, loc) := {{
	"id": r.id,
	"verdict": v,
	"category": object.get(r, "category", "custom"),
	"severity": object.get(r, "severity", "medium"),
	"tags": object.get(r, "tags", []),
	"message": r.message,
	"location": loc,
	"approvers": _groups(r, v, "require_approval"),
	"escalate_to": _groups(r, v, "escalate"),
	"bindings": object.get(r, "bindings", {{}}),
	"comparisons": [],
}}

# in the order of their keys: by verdict, id and message as text, which every engine
# sorts alike (the order of a set of objects is the engine's own)
records := [_record(x[0], x[1], x[2]) | some key in sort({{_key(x) | some x in _valid_reports}}); some x in _valid_reports; _key(x) == key]

_valid_reports := [x | some x in _reported; _valid(x[0])]

_key(x) := concat("/", [x[1], hex.encode(x[0].id), hex.encode(x[0].message), hex.encode(json.marshal(x[0]))])

faults contains msg if {{
	some x in _reported
	not _valid(x[0])
	msg := concat("", [x[2].file, ": a `", x[1], "` element is not an object with a rule id, a message and valid optional fields"])
}}

faults contains msg if {{
	some x in _reported
	_valid(x[0])
	x[0].id in _aigre_ids
	msg := concat("", [x[2].file, ": rule id ", x[0].id, " is already an .aigre rule"])
}}

result := {{"records": records, "faults": [f | some f in faults]}}
"""
