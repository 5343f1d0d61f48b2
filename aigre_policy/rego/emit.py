# ruff: noqa: E501 - the Rego this module holds keeps its own line lengths
"""Emit Rego: a checked pack as OPA Rego v1 modules plus its envelopes as data.

Layout of the emitted program, for a pack whose sanitised name is ``<pkg>``:

* ``aigre/<pkg>/decision.rego`` (``package aigre.<pkg>``): the single entrypoint
  ``decision`` and input validation (``_valid``, ``errors``).
* ``aigre/<pkg>/verdict.rego`` (``package aigre.<pkg>``): ``checked``, the verdict
  lattice over the records of the rules that held.
* ``aigre/<pkg>/policies/<file>.rego`` (``package aigre.<pkg>.rules``): one
  module per ``.aigre`` policy file, one ``# METADATA`` annotated rule per pack rule,
  its parts (``r<n>_<k>``), its record (``record[<n>]``) and the tests and values the
  pack uses more than once (``c<n>``, ``t<n>``).
* ``aigre/<pkg>/policies/exemptions.rego`` (``package aigre.<pkg>.rules``), only for a
  pack with exemptions: ``exempt[<k>]``, the evidence of its k-th exemption when that
  exemption kept its rule from firing, which ``checked`` lists as ``exempted``.
* ``aigre/<pkg>/handwritten.rego`` (``package aigre.<pkg>.handwritten``): collects
  what the hand-written modules report, in the shape of fired rules.
* ``aigre/<pkg>/custom/<file>.rego``: hand-written modules from ``policies/*.rego``,
  unchanged (``package aigre.<pkg>.custom.<file>``).
* ``aigre/<pkg>/lib.rego`` (``package aigre.<pkg>.lib``): the helpers of ``rego.lib``
  the other modules call.
* ``data``: ``{"aigre": {"<pkg>": {"envelopes": {...}}}}``, the bundle's ``data.json``.

``emit_rego`` and ``RegoProgram`` are the interface bundle building and the
engines build on; keep them stable.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigre_policy import ir
from aigre_policy.checked import CheckedPack
from aigre_policy.diagnostics import Diagnostic
from aigre_policy.exemptions import Exemption, exemption_conditions
from aigre_policy.rego.expr import Translator, literal
from aigre_policy.rego.handwritten import collector, modules_of
from aigre_policy.rego.layout import fit
from aigre_policy.rego.lib import library
from aigre_policy.rego.names import package_of, segment
from aigre_policy.rego.schema import emit_schema
from aigre_policy.rego.shape import Shape


@dataclass(frozen=True)
class RegoProgram:
    """A pack as Rego: modules by bundle-relative path, data, roots and the entrypoint."""

    package: str  # "aigre.<pkg>"
    modules: dict[str, str]  # "aigre/<pkg>/decision.rego" -> Rego source
    data: dict[str, Any]  # data.json: {"aigre": {"<pkg>": {"envelopes": ...}}}
    roots: tuple[str, ...]  # bundle roots: ("aigre/<pkg>",)
    entrypoint: str  # "aigre/<pkg>/decision"
    # what the Rego target cannot express exactly; errors mean "do not run this program"
    diagnostics: tuple[Diagnostic, ...] = field(default=())

    @property
    def query(self) -> str:
        """The entrypoint as a Rego reference: ``data.aigre.<pkg>.decision``."""
        return "data." + self.entrypoint.replace("/", ".")

    @property
    def ok(self) -> bool:
        return not any(d.severity.name == "ERROR" for d in self.diagnostics)


def comment(text: str) -> str:
    """Text safe inside a ``#`` comment: one line, printable."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:160]


def yaml_string(text: str) -> str:
    """A YAML double-quoted scalar holding only printable ASCII (safe in a comment line)."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def emit_rego(pack: Any) -> RegoProgram:
    """The Rego program of a ``CheckedPack``, or of anything that holds one as ``checked``
    (a ``compiler.CompiledPack``, a ``Pack``); see the module docstring for its layout."""
    compiled: CheckedPack = pack if isinstance(pack, CheckedPack) else pack.checked
    manifest = compiled.manifest
    pkg = segment(manifest.name)
    package = f"aigre.{pkg}"
    base = f"aigre/{pkg}"
    shape = Shape.of(compiled.input_schema)
    envelopes_ref = "envelopes"  # a rule of the rules package: one reference, not four
    # a first pass counts the tests: those the pack makes more than once become rules
    counting = Translator(envelopes_ref, compiled.envelopes, shape)
    for rule in compiled.program.rules:
        counting.start(f"r{rule.index}")
        counting.body(rule.condition)
        for part in rule.message:
            if not isinstance(part, str):
                counting.text(part)
        _faults(rule, f"r{rule.index}", counting, compiled.root)
    exempting = exemption_conditions(compiled.exemptions, compiled.unexempted)
    for k, (_, condition) in enumerate(exempting):
        counting.start(f"e{k}")
        counting.body(condition)
    shared = frozenset(test for test, uses in counting.tests.items() if uses > 1)
    translator = Translator(envelopes_ref, compiled.envelopes, shape, shared=shared)
    header = (
        f"# Generated by aigre-policy from pack {comment(manifest.name)} "
        f"{comment(manifest.version)}: regenerate from the pack rather than edit."
    )
    modules: dict[str, str] = {}

    # records are keyed by the rule's place in the pack, as `_flags` lists the rules
    position = {rule.index: i for i, rule in enumerate(compiled.program.rules)}
    by_file: dict[str, list[ir.Rule]] = defaultdict(list)
    for rule in compiled.program.rules:
        by_file[rule.span.file or "policies"].append(rule)
    taken: set[str] = set()
    for file, rules in by_file.items():
        stem = segment(Path(file).stem)
        while stem in taken:
            stem += "_"
        taken.add(stem)
        chunks = [_rule(rule, position[rule.index], translator, compiled.root) for rule in rules]
        instants = translator.take_instants()
        if instants:
            chunks.append(
                "# tests and values read outside any quantifier, computed once per decision"
            )
            chunks += [f"{line}\n" for line in instants]
        if len(taken) == 1:  # the first module of the package defines it
            chunks.insert(
                0,
                "# the pack's envelope values (data.json), as the rules read them\n"
                f"envelopes := data.{package}.envelopes\n",
            )
        modules[f"{base}/policies/{stem}.rego"] = "\n".join(
            [
                header,
                f"# Source: {comment(relative(file, compiled.root))}",
                f"package {package}.rules",
                "",
                f"import data.{package}.lib",
                "",
                *chunks,
            ]
        )
    if exempting:
        # the pack's own exemptions.yaml and those of the packs it extends, as listed
        files = dict.fromkeys(relative(e.span.file or "", compiled.root) for e, _ in exempting)
        stem = "exemptions"
        while stem in taken:
            stem += "_"
        chunks = [
            _exemption(k, e, condition, translator) for k, (e, condition) in enumerate(exempting)
        ]
        instants = translator.take_instants()
        if instants:
            chunks.append(
                "# tests and values read outside any quantifier, computed once per decision"
            )
            chunks += [f"{line}\n" for line in instants]
        modules[f"{base}/policies/{stem}.rego"] = "\n".join(
            [
                header,
                f"# Source: {comment(', '.join(files))}",
                f"package {package}.rules",
                "",
                f"import data.{package}.lib",
                "",
                *chunks,
            ]
        )
    # the zones the rules read, as data: a constant this large in a module, rego-cpp
    # would build again at every use
    zone_data = {"zones": translator.zone_tables} if translator.zone_tables else {}
    if zone_data:
        first = next(iter(modules))
        modules[first] += (
            f"\n# the time zones the rules read (data.json)\nzones := data.{package}.zones\n"
        )

    handwritten = modules_of(compiled)
    for module in handwritten:
        modules[f"{base}/custom/{module.stem}.rego"] = module.source
    modules[f"{base}/handwritten.rego"] = collector(
        package, handwritten, [r.id for r in compiled.program.rules], header, compiled.root
    )

    schema_rules, schema_problems = emit_schema(compiled.input_schema)
    ids = {f"r{rule.index}": rule.id for rule in compiled.program.rules}
    closed_to = list(compiled.policy.fail_closed_approvers)
    modules[f"{base}/decision.rego"] = _decision(package, header, schema_rules)
    modules[f"{base}/verdict.rego"] = _verdict(
        package,
        header,
        ids,
        manifest.default,
        (manifest.fail_closed, closed_to),
        translator.fault_records,
        len(exempting),
    )
    # only the helpers the other modules call: every local variable of a bundle costs
    modules[f"{base}/lib.rego"] = (
        f"{header}\npackage {package}.lib\n{library(list(modules.values()))}"
    )
    # what the check stage found the Rego target cannot express, then its own
    found = compiled.target_diagnostics.get("rego", ())
    diagnostics = [*found, *translator.diagnostics, *schema_problems]
    custom = {f"{base}/custom/{module.stem}.rego" for module in handwritten}
    return RegoProgram(
        package=package,
        # the pack's own modules as written; every line of the rest within regorus's limit
        modules={path: text if path in custom else fit(text) for path, text in modules.items()},
        data={"aigre": {pkg: {"envelopes": _plain(compiled.envelopes), **zone_data}}},
        roots=(base,),
        entrypoint=f"{base}/decision",
        diagnostics=tuple(dict.fromkeys(diagnostics)),
    )


def checked_modules(program: RegoProgram) -> dict[str, str]:
    """The modules the ``checked`` entrypoint needs: all but ``decision.rego`` (the input
    schema checks), with only the helpers the rest calls. rego-cpp copies every local
    variable of what it loaded at each builtin call, so code it never runs slows it."""
    base = program.roots[0]
    kept = {path: text for path, text in program.modules.items() if path != f"{base}/decision.rego"}
    lib_path = f"{base}/lib.rego"
    if lib_path in kept:
        head = kept[lib_path].split("\n", 2)  # the header line, the package line, helpers
        users = [text for path, text in kept.items() if path != lib_path]
        kept[lib_path] = f"{head[0]}\n{head[1]}\n{library(users)}"
    return kept


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _annotation(rule: ir.Rule) -> list[str]:
    lines = ["# METADATA"]
    if rule.title:
        lines.append(f"# title: {yaml_string(rule.title)}")
    description = getattr(rule, "description", None)
    if description:
        lines.append(f"# description: {yaml_string(description)}")
    lines += [
        "# custom:",
        f"#   id: {yaml_string(rule.id)}",
        f"#   verdict: {yaml_string(rule.verdict)}",
        f"#   category: {yaml_string(rule.category)}",
        f"#   severity: {yaml_string(rule.severity)}",
        "#   tags: [" + ", ".join(yaml_string(t) for t in rule.tags) + "]",
    ]
    if rule.groups:
        lines.append("#   groups: [" + ", ".join(yaml_string(g) for g in rule.groups) + "]")
    return lines


def relative(file: str, root: Path) -> str:
    """A source path as evidence shows it: relative to the pack root where it is inside it."""
    try:
        return Path(file).relative_to(root).as_posix()
    except ValueError:
        return file


def _rule(rule: ir.Rule, position: int, translator: Translator, root: Path) -> str:
    name = f"r{rule.index}"
    translator.start(name)
    body = translator.body(rule.condition)
    parts = [literal(p) if isinstance(p, str) else translator.text(p) for p in rule.message]
    message = f'concat("", [{", ".join(parts)}])'
    if not any(isinstance(p, str) and p for p in rule.message):  # it may render empty
        fallback = rule.title or f"rule {rule.id} fired"
        message = f"lib.message({message}, {literal(fallback)})"
    reads = translator.reads(rule.condition)
    present = ", ".join(f"{literal(k)}: {v.code}" for k, v in reads.items() if v.never_null)
    maybe = ", ".join(f"{literal(k)}: {v.code}" for k, v in reads.items() if not v.never_null)
    if not maybe:
        bindings = f"{{{present}}}"
    elif not present:
        bindings = f"lib.nonnull({{{maybe}}})"
    else:  # absent reads are left out
        bindings = f"object.union({{{present}}}, lib.nonnull({{{maybe}}}))"
    record = {"id": literal(rule.id), "verdict": literal(rule.verdict)}
    for key in ("title", "description", "owner"):
        if getattr(rule, key, None):
            record[key] = literal(getattr(rule, key))
    record |= {
        "category": literal(rule.category),
        "severity": literal(rule.severity),
        "tags": literal(list(rule.tags)),
        "message": message,
        "location": literal({**rule.location, "file": relative(rule.span.file or "", root)}),
        "approvers": literal(list(rule.groups) if rule.verdict == "require_approval" else []),
        "escalate_to": literal(list(rule.groups) if rule.verdict == "escalate" else []),
        "bindings": bindings,
        "comparisons": "[]",
    }
    fields = "".join(f"\t{literal(k)}: {v},\n" for k, v in record.items())
    fault = _faults(rule, name, translator, root)
    helpers = translator.helpers
    return "\n".join(
        [
            f"# {comment(rule.id)} ({comment(relative(rule.span.file or '', root))}:{rule.span.line})",
            *_annotation(rule),
            f"{name} if {{",
            *(f"\t{line}" for line in body),
            "}",
            "",
            f"default {name} := false",
            "",
            *([f"# parts of {name}: `or`, `not` and quantifiers", *helpers] if helpers else []),
            f"record[{position}] := {{\n{fields}}} if {name}",
            "",
            *([fault_rule(position, name, fault, translator)] if fault else []),
        ]
    )


def _exemption(k: int, exemption: Exemption, condition: ir.Node, translator: Translator) -> str:
    """``exempt[k]``: the evidence of the pack's k-th exemption when it kept its rule from
    firing (the rule's own condition holds, the target matches, the clock is before the
    expiry), as the verdict's ``exempted`` list names it."""
    name = f"e{k}"
    translator.start(name)
    body = translator.body(condition)
    helpers = translator.helpers
    return "\n".join(
        [
            f"# exemption {comment(exemption.id)} of rule {comment(exemption.rule)}",
            f"exempt[{k}] := {literal(exemption.evidence)} if {{",
            *(f"\t{line}" for line in body),
            "}",
            "",
            *([f"# parts of {name}: `or`, `not` and quantifiers", *helpers] if helpers else []),
        ]
    )


def _faults(rule: ir.Rule, name: str, translator: Translator, root: Path) -> list[str]:
    """The faults native meets running ``rule`` (see ``Translator.faults``): its condition,
    then, when it holds, its message. ``[]`` when nothing in it can fail."""
    where = {**rule.location, "file": relative(rule.span.file or "", root)}
    translator.failing = (rule.id, where, root)
    condition = translator.faults(rule.condition)
    message = [
        p for part in rule.message if not isinstance(part, str) for p in translator.faults(part)
    ]
    return [*condition, *(translator.guarded(name, part) for part in message)]


def fault_rule(position: int, name: str, faults: list[str], translator: Translator) -> str:
    """``fault[<position>]``: the first fault native meets running the rule, as an index
    into ``_fault_records`` (verdict.rego); no value when it meets none. An `else` chain
    in the order native meets them: it stops at the first that holds."""
    found = translator.fresh()
    chain = " else := ".join(f"{found} if {{\n\t{found} := {part}[0]\n}}" for part in faults)
    return (
        f"# the first fault native meets running {name}: the decision fails closed on it\n"
        f"{name}_fault := {chain}\n\n"
        f"fault[{position}] := {name}_fault\n"
    )


def _decision(package: str, header: str, schema_rules: list[str]) -> str:
    """``decision.rego``: the entrypoint, and the input schema as Rego."""
    return f"""{header}
package {package}

import data.{package}.lib

# METADATA
# title: The verdict on one proposed action
# description: Same document as the native evaluator; fails closed on bad input or a fault.
# entrypoint: true
decision := checked if {{
	_valid
}} else := _closed(errors)

# ---------------------------------------------------------------- input schema

{chr(10).join(rule + chr(10) for rule in schema_rules)}"""


def _verdict(
    package: str,
    header: str,
    ids: dict[str, str],
    default: str,
    fail_closed: tuple[str, list[str]],
    fault_records: list[dict[str, Any]],
    exemptions: int = 0,
) -> str:
    """``verdict.rego``: ``checked``, the verdict of input known to be valid."""
    outcome = "deny" if default == "deny" else "allow"
    order = list(ids)
    # a pack with `/` or `%`: the first rule, in pack order, that fails as native fails
    # (a zero divisor, an overflow) fails the decision closed with native's error record
    failing, records = "", ""
    if fault_records:
        failing = """_closed([_rule_faults[0]]) if {
	count(_rule_faults) > 0
} else := """
        records = f"""
# the run-time faults of the pack's rules, as native reports them (rules.fault[i] indexes them)
_fault_records := {literal(fault_records)}

# the fault of each rule that fails, in pack order
_rule_faults := [_fault_records[k] | some i; _ids[i]; k := rules.fault[i]]
"""
    document = """{
	"decision": _outcome[0],
	"fail_closed": false,
	"default_applied": _outcome[1],
	"fired": fired,
	"warnings": warnings,
	"approvers": _approvers,
	"escalate_to": _escalate_to,
	"errors": [],
}"""
    listed = ""
    if exemptions:  # `exempted`, as native gives it: present only when an exemption was why
        document = f"object.union({document}, _exempted)"
        ks = ", ".join(str(k) for k in range(exemptions))
        listed = f"""
# the exemptions in force that kept a rule from firing, in the order exemptions.yaml lists them
_listed := [e | some k in [{ks}]; e := rules.exempt[k]]

_exempted := {{"exempted": _listed}} if {{
	count(_listed) > 0
}} else := {{}}
"""
    return f"""{header}
package {package}

import data.{package}.handwritten
import data.{package}.rules

# checked: the decision for input already known to match the input schema. In-process
# engines that validate input with the pack's own validator query this entrypoint.
checked := {failing}_closed([{{"kind": "engine", "path": "", "message": f}} | some f in _faults]) if {{
	count(_faults) > 0
}} else := {document}
{listed}
_closed(problems) := {{
	"decision": {literal(fail_closed[0])},
	"fail_closed": true,
	"default_applied": false,
	"fired": [],
	"warnings": [],
	"approvers": {literal(fail_closed[1])},
	"escalate_to": [],
	"errors": problems,
}}

# the ids of the pack rules, in pack order
_ids := {literal([ids[k] for k in order])}

# whether each pack rule held, in pack order
_flags := [{", ".join(f"rules.{k}" for k in order)}]

_held := [i | some i; _flags[i]]
{records}
_records := array.concat([rules.record[i] | some i in _held], handwritten.records)

# a rule that held must have a record; one without is a fault, never a silent pass
_faults := array.concat([concat("", ["rule ", _ids[i], " held but its message or evidence has no value"]) | some i in _held; not rules.record[i]], [f | some f in handwritten.faults])

fired := [r | some r in _records; not r.verdict == "warn"]

warnings := [r | some r in _records; r.verdict == "warn"]

# the strongest verdict decides: deny, require_approval, escalate, then a permit (allow);
# the pack's default ({default}) when no rule decides
_outcome := ["deny", false] if {{
	some r in fired
	r.verdict == "deny"
}} else := ["require_approval", false] if {{
	some r in fired
	r.verdict == "require_approval"
}} else := ["escalate", false] if {{
	some r in fired
	r.verdict == "escalate"
}} else := ["allow", false] if {{
	some r in fired
	r.verdict == "permit"
}} else := [{literal(outcome)}, true]

_approvers := sort({{g | some r in fired; r.verdict == "require_approval"; some g in r.approvers}}) if {{
	_outcome[0] == "require_approval"
}} else := []

_escalations := [g | some r in fired; r.verdict == "escalate"; some g in r.escalate_to]

_escalate_to := [g | some i; g := _escalations[i]; not g in array.slice(_escalations, 0, i)] if {{
	_outcome[0] == "escalate"
}} else := []
"""


__all__ = ["RegoProgram", "checked_modules", "emit_rego", "package_of", "segment"]
