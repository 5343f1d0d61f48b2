"""A loaded pack: the facade that compiles a pack directory and evaluates actions."""

from __future__ import annotations

import contextlib
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from aigre_policy import interpreter, ir
from aigre_policy.compiler import CheckedPack, CompiledPack, compile_pack
from aigre_policy.diagnostics import NO_SPAN, CompileError, Diagnostic, Severity
from aigre_policy.lattice import decision_of
from aigre_policy.plain import NotPlain, as_plain
from aigre_policy.verdict import (
    Issuer,
    RuleCard,
    Verdict,
    refused_input_digest,
    rule_fault,
)


class EvaluationError(Exception):
    """Raised in strict mode instead of a fail-closed verdict."""

    def __init__(self, message: str, verdict: Verdict):
        super().__init__(message)
        self.verdict = verdict


class Pack:
    """A compiled policy pack, ready to evaluate proposed actions."""

    def __init__(
        self,
        compiled: CompiledPack,
        diagnostics: list[Diagnostic],
        backend: Any = None,
    ):
        """``backend``: a ``rego.attach.RegoBackend`` when Rego takes part in decisions
        (another engine, or hand-written modules); ``None`` runs the generated Python alone.
        """
        self._compiled = compiled
        manifest = compiled.manifest
        self.name = manifest.name
        self.version = manifest.version
        self.description = manifest.description
        self.default = manifest.default
        self.fail_closed = manifest.fail_closed
        self.sensitive = dict(manifest.sensitive)  # {input path: "mask" | "drop"} for the log
        self.reusable_approvals = frozenset(manifest.reusable_approvals)  # never used up
        self.digest = compiled.digest
        self.root = compiled.root
        self.envelopes = compiled.envelopes
        self.input_schema = compiled.input_schema
        self.rules: tuple[ir.Rule, ...] = compiled.program.rules
        self.warnings = [d for d in diagnostics if d.severity is Severity.WARNING]
        self._ref = {"name": self.name, "version": self.version, "digest": self.digest}
        self.engine = "native" if backend is None else backend.engine
        self.rego = None if backend is None else backend.program  # what a Rego engine runs
        if backend is not None:
            self.warnings += backend.warnings
        self._engine: Any = None if backend is None else backend.decide  # not native
        self._handwritten: Any = None if backend is None else backend.merge  # policies/*.rego
        namespace = compiled.namespace
        self._evaluate = namespace["evaluate"]
        python = compiled.python
        self._cards = tuple(
            _card(
                r,
                python.bindings[r.index],
                self.root,
                namespace[f"explain_{r.index}"] if r.index in python.deferred else None,
            )
            for r in self.rules
        )
        self._decide = _decider(self._evaluate, self.default, Issuer(self._ref, self._cards))
        self._fail_closed_approvers = compiled.checked.policy.fail_closed_approvers
        self._is_valid = compiled.validator.is_valid
        self._validator = compiled.validator

    @property
    def python_source(self) -> str:
        """The generated evaluator, as loaded (``aigre-policy eval --emit python``)."""
        return self._compiled.python.source

    @property
    def checked(self) -> CheckedPack:
        """The backend-neutral pack every engine's evaluator is built from."""
        return self._compiled.checked

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

        ``action`` and ``context`` are dicts (any mapping) or the pydantic models;
        ``usage`` holds one number per ``usage`` declaration of the pack. Each is judged
        as the JSON data it stands for; a value JSON cannot carry, or an input past the
        evaluation bounds (``aigre_policy.plain.BOUNDS``), fails closed naming its path.
        """
        started = perf_counter_ns()
        # ``context`` and ``usage`` may be left out (``None``): they read as ``{}``
        context = {} if context is None else context
        usage = {} if usage is None else usage
        document = {"action": action, "context": context, "usage": usage}
        try:
            # one meaning for every engine: the JSON data, within the evaluation bounds
            document = as_plain(document)
            valid = self._is_valid(document)
            if not valid:
                errors = self._validator.errors(document)
        except NotPlain as exc:
            problems = [exc.problem()]
            # digested within the bounds: a structure sharing its lists may never end
            digested = refused_input_digest(document)
            return self._failed(digested, problems, started, strict, "input is not JSON data")
        except Exception as exc:  # a validator fault on JSON data: never a verdict from rules
            message = f"input validation failed: {type(exc).__name__}: {exc}"
            problem = {"kind": "engine", "path": "", "message": message}
            return self._failed(document, [problem], started, strict, "evaluation failed")
        if not valid:
            problems = [{"kind": "input", **e.to_dict()} for e in errors]
            return self._failed(document, problems, started, strict, "input breaks the schema")
        action, context, usage = document["action"], document["context"], document["usage"]
        try:
            if self._engine is not None:
                return self._engine(document, started)
            verdict = self._decide(action, context, usage, document, started)
            if self._handwritten is not None:
                verdict = self._handwritten(verdict, document)
            return verdict
        except Exception as exc:
            problem = self._fault(exc, action, context, usage)
            return self._failed(document, [problem], started, strict, "evaluation failed")

    def _fault(self, exc: Exception, action: Any, context: Any, usage: Any) -> dict[str, Any]:
        """The error record of a fault in evaluation, naming the rule it arose in when one did.

        The evaluator has no handler per rule: that would cost on every decision. The
        pack is pure, so on this slow path the reference interpreter runs the rules again,
        one at a time in pack order, and the first that fails is named, with the
        expression that failed. A fault no rule reproduces (a hand-written Rego module,
        an engine's own limit) keeps the engine's message alone.
        """
        plain = {"kind": "engine", "path": "", "message": f"{type(exc).__name__}: {exc}"}
        try:
            fault = interpreter.first_fault(self.program, self.envelopes, action, context, usage)
        except Exception:  # locating is best effort: the verdict fails closed either way
            return plain
        if fault is None:
            return plain
        card = self._cards[fault.rule.index]
        node = fault.node
        span = None
        if node is not None and node.span != NO_SPAN:
            span = {**node.span.to_dict(), "file": _relative(node.span.file, self.root)}
        return rule_fault(card.template["id"], {**card.location}, span, fault.cause)

    def _failed(
        self,
        document: Any,
        problems: list[dict[str, Any]],
        started: int,
        strict: bool,
        summary: str,
    ) -> Verdict:
        elapsed = (perf_counter_ns() - started) / 1000
        verdict = Verdict.given(
            self.fail_closed,
            self._ref,
            document,
            fail_closed=True,
            errors=problems,
            elapsed_us=elapsed,
            approvers=[*self._fail_closed_approvers],
        )
        if strict:
            detail = "; ".join(
                p["message"]
                if p["kind"] == "engine"
                else f"{p['path'] or '<input>'}: {p['message']}"
                for p in problems[:5]
            )
            raise EvaluationError(f"{summary}: {detail}", verdict)
        return verdict

    def __repr__(self) -> str:
        return f"Pack({self.name!r}, {self.version!r}, rules={len(self.rules)})"


def _decider(evaluate: Any, default: str, issuer: Issuer) -> Any:
    """``decide(action, context, usage, document, started)``: the generated rules, a verdict.

    ``evaluate`` gives the records of the rules that held and the rank they reach;
    the rank picks the decision from the lattice, -1 (no rule decided) the pack's
    default. A closure: this is on every decision's path, and its names are cells.
    """

    def decide(action: Any, context: Any, usage: Any, document: Any, started: int) -> Verdict:
        fired, rank = evaluate(action, context, usage)
        elapsed = (perf_counter_ns() - started) / 1000
        return Verdict(decision_of(rank, default), fired, issuer, document, elapsed)

    return decide


def _card(rule: ir.Rule, bindings: tuple[str, ...], root: Path, explain: Any = None) -> RuleCard:
    """What every fired record of ``rule`` shares; the location is relative to the pack root.

    ``explain``: the rule's ``explain_N`` when its records are deferred (``(index, *locals)``).
    """
    template: dict[str, Any] = {"id": rule.id, "verdict": rule.verdict}
    if rule.title:
        template["title"] = rule.title
    if rule.description:
        template["description"] = rule.description
    if rule.owner:
        template["owner"] = rule.owner
    template.update(
        category=rule.category,
        severity=rule.severity,
        tags=None,  # filled per record, in this key order
        message=rule.title or f"rule {rule.id} fired",
    )
    location = rule.location
    location["file"] = _relative(location["file"], root)
    return RuleCard(
        template=template,
        tags=tuple(rule.tags),
        location=location,
        approvers=tuple(rule.groups) if rule.verdict == "require_approval" else (),
        escalate_to=tuple(rule.groups) if rule.verdict == "escalate" else (),
        bindings=bindings,
        expressions={
            node.index: node.text
            for node in ir.walk(rule.condition)
            if isinstance(node, ir.Compare | ir.Member)
        },
        warn=rule.verdict == "warn",
        message_parts=tuple(part if isinstance(part, str) else None for part in rule.message),
        explain=explain,
    )


def _relative(file: str, root: Path) -> str:
    """A source file's path relative to the pack root; one outside the root keeps its path."""
    with contextlib.suppress(ValueError):
        return Path(file).relative_to(root).as_posix()
    return file


def load_pack(
    path: str | Path,
    envelopes: dict[str, dict[str, Any]] | None = None,
    engine: str | None = None,
    *,
    verification_key: Any = None,
    scope: str = "",
    cache: Any = None,
) -> Any:  # Pack for a directory, rego.bundle_pack.BundlePack for a bundle
    """Compile the pack at ``path``; raises ``CompileError`` carrying every diagnostic.

    ``engine``: ``native`` (generated Python, the default), ``rego`` (the pack compiled to
    Rego, evaluated in process with regopy) or one added with ``rego.engine.register_engine``.

    ``path`` may also be a built bundle (``.tar.gz``): it runs on ``rego`` (the default for
    a bundle) or a registered engine, is verified with ``verification_key`` (and ``scope``)
    and refused when signed and no key is given; ``BundleError`` says why in one line
    (see ``rego.bundle_pack``).

    ``cache``: an ``aigre_policy.cache.CompileCache`` to load the compiled pack from (and
    store it in); ``None`` compiles it.
    """
    if Path(path).is_file():
        from aigre_policy.rego.bundle_pack import load_bundle_pack  # regopy only for bundles

        return load_bundle_pack(path, envelopes, engine, verification_key, scope)
    if verification_key is not None:
        raise ValueError(f"{path} is not a bundle: a verification key applies to bundles")
    engine = engine or "native"
    report = compile_pack(path, envelopes) if cache is None else cache.compile(path, envelopes)
    if not report.ok or report.compiled is None:
        raise CompileError(report.diagnostics, report.sources)
    backend = None
    if engine != "native" or report.compiled.handwritten:
        from aigre_policy.rego.attach import rego_backend  # regopy is loaded only when needed

        backend = rego_backend(report.compiled.checked, engine, report.sources)
    return Pack(report.compiled, report.diagnostics, backend)
