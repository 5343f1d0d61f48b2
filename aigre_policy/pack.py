"""A loaded pack: the facade that compiles a pack directory and evaluates actions."""

from __future__ import annotations

import math
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from pydantic import BaseModel

from aigre_policy import ir
from aigre_policy.compiler import CompiledPack, compile_pack
from aigre_policy.diagnostics import CompileError, Diagnostic, Severity
from aigre_policy.runtime import Evidence
from aigre_policy.verdict import LATTICE, Verdict

RESTRICTIVE = ("deny", "require_approval", "escalate")


class EvaluationError(Exception):
    """Raised in strict mode instead of a fail-closed verdict."""

    def __init__(self, message: str, verdict: Verdict):
        super().__init__(message)
        self.verdict = verdict


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value


class Pack:
    """A compiled policy pack, ready to evaluate proposed actions."""

    def __init__(self, compiled: CompiledPack, diagnostics: list[Diagnostic]):
        self._compiled = compiled
        manifest = compiled.manifest
        self.name = manifest.name
        self.version = manifest.version
        self.description = manifest.description
        self.default = manifest.default
        self.fail_closed = manifest.fail_closed
        self.digest = compiled.digest
        self.root = compiled.root
        self.envelopes = compiled.envelopes
        self.input_schema = compiled.input_schema
        self.rules: tuple[ir.Rule, ...] = compiled.program.rules
        self.warnings = [d for d in diagnostics if d.severity is Severity.WARNING]
        self._ref = {"name": self.name, "version": self.version, "digest": self.digest}
        self._evaluate = compiled.namespace["evaluate"]
        self._explain = [compiled.namespace[f"explain_{r.index}"] for r in self.rules]
        self._templates = [_record_template(r) for r in self.rules]
        self._texts = [_comparison_texts(r) for r in self.rules]
        self._is_warn = [r.verdict == "warn" for r in self.rules]
        self._is_valid = compiled.validator.is_valid
        self._validator = compiled.validator
        self._needs_usage = bool(compiled.program.usages)

    @property
    def python_source(self) -> str:
        """The generated evaluator, as loaded (``aigre-policy eval --emit python``)."""
        return self._compiled.python.source

    @property
    def program(self) -> ir.Program:
        return self._compiled.program

    @property
    def modules(self):
        return self._compiled.modules

    def evaluate(
        self,
        action: Any,
        context: Any = None,
        usage: Any = None,
        *,
        strict: bool = False,
    ) -> Verdict:
        """Judge one proposed action; never raises unless ``strict`` (then ``EvaluationError``).

        ``action`` and ``context`` are dicts or the pydantic models; ``usage``
        holds one number per ``usage`` declaration of the pack.
        """
        started = perf_counter_ns()
        document = {
            "action": _plain(action),
            "context": _plain(context) if context is not None else {},
            "usage": _plain(usage) if usage is not None else {},
        }
        if not self._is_valid(document):
            problems = _non_finite(document) or [
                {"kind": "input", **e.to_dict()} for e in self._validator.errors(document)
            ]
            return self._failed(document, problems, started, strict, "input breaks the schema")
        try:
            fired_indices = self._evaluate(
                document["action"], document["context"], document["usage"]
            )
            return self._decide(document, fired_indices, started)
        except Exception as exc:
            problem = {"kind": "engine", "path": "", "message": f"{type(exc).__name__}: {exc}"}
            return self._failed(document, [problem], started, strict, "evaluation failed")

    def _decide(self, document: dict[str, Any], indices: list[int], started: int) -> Verdict:
        fired: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        worst = "allow"
        permitted = False
        action, context, usage = document["action"], document["context"], document["usage"]
        for index in indices:
            evidence = Evidence()
            held, message, reads = self._explain[index](action, context, usage, evidence)
            if not held:  # the two evaluations disagree: a compiler fault, fail closed
                raise RuntimeError(f"rule {self.rules[index].id} fired but does not explain")
            template = self._templates[index]
            texts = self._texts[index]
            record = {
                **template,
                # fresh containers: a caller editing one verdict must not reach another
                "tags": [*template["tags"]],
                "location": {**template["location"]},
                "approvers": [*template["approvers"]],
                "escalate_to": [*template["escalate_to"]],
                "message": message or template["message"],
                "bindings": {k: v for k, v in reads.items() if v is not None},
                "comparisons": [
                    {
                        "expression": texts.get(i, ""),
                        "left": left,
                        "op": op,
                        "right": right,
                        "result": result,
                    }
                    for i, left, op, right, result in evidence.comparisons
                ],
            }
            if self._is_warn[index]:
                warnings.append(record)
                continue
            fired.append(record)
            verdict = template["verdict"]
            if verdict == "permit":
                permitted = True
            elif LATTICE[verdict] > LATTICE[worst]:
                worst = verdict
        default_applied = False
        if worst == "allow":
            if self.default == "deny" and not permitted:
                worst, default_applied = "deny", True
            elif self.default == "allow" and not permitted:
                default_applied = True
        elapsed = (perf_counter_ns() - started) / 1000
        return Verdict(
            worst,
            fired,
            warnings,
            self._ref,
            document,
            default_applied=default_applied,
            elapsed_us=elapsed,
        )

    def _failed(
        self,
        document: Any,
        problems: list[dict[str, Any]],
        started: int,
        strict: bool,
        summary: str,
    ) -> Verdict:
        elapsed = (perf_counter_ns() - started) / 1000
        verdict = Verdict(
            self.fail_closed,
            [],
            [],
            self._ref,
            document,
            fail_closed=True,
            errors=problems,
            elapsed_us=elapsed,
        )
        if strict:
            detail = "; ".join(f"{p['path'] or '<input>'}: {p['message']}" for p in problems[:5])
            raise EvaluationError(f"{summary}: {detail}", verdict)
        return verdict

    def __repr__(self) -> str:
        return f"Pack({self.name!r}, {self.version!r}, rules={len(self.rules)})"


def _non_finite(value: Any, path: str = "") -> list[dict[str, Any]]:
    """Problems for each NaN or infinity in a document: values JSON cannot carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return [
            {
                "kind": "input",
                "path": path,
                "keyword": "type",
                "message": f"{value!r} is not a JSON number",
            }
        ]
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _non_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += _non_finite(item, f"{path}[{i}]")
    return found


def _record_template(rule: ir.Rule) -> dict[str, Any]:
    """The parts of a fired-rule record that do not depend on the input."""
    record: dict[str, Any] = {
        "id": rule.id,
        "verdict": rule.verdict,
        "category": rule.category,
        "severity": rule.severity,
        "tags": list(rule.tags),
        "message": rule.title or f"rule {rule.id} fired",
        "location": rule.location,
        "approvers": list(rule.groups) if rule.verdict == "require_approval" else [],
        "escalate_to": list(rule.groups) if rule.verdict == "escalate" else [],
    }
    if rule.title:
        record["title"] = rule.title
    return record


def _comparison_texts(rule: ir.Rule) -> dict[int, str]:
    return {
        node.index: node.text
        for node in ir.walk(rule.condition)
        if isinstance(node, ir.Compare | ir.Member)
    }


def load_pack(path: str | Path, envelopes: dict[str, dict[str, Any]] | None = None) -> Pack:
    """Compile the pack at ``path``; raises ``CompileError`` carrying every diagnostic."""
    report = compile_pack(path, envelopes)
    if not report.ok or report.compiled is None:
        raise CompileError(report.diagnostics, report.sources)
    return Pack(report.compiled, report.diagnostics)
