"""A loaded pack: the facade that compiles a pack directory and evaluates actions."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from aigre_policy import interpreter, ir, native
from aigre_policy.cards import relative, rule_location
from aigre_policy.checked import CheckedPack, CompiledPack, Evaluator
from aigre_policy.diagnostics import NO_SPAN, CompileError, Diagnostic, Severity
from aigre_policy.exemptions import exempted
from aigre_policy.plain import NotPlain, as_plain
from aigre_policy.verdict import EvaluationError as EvaluationError  # re-exported
from aigre_policy.verdict import Verdict, refused_input_digest, rule_fault

if TYPE_CHECKING:  # the source's syntax tree: a cached pack reads it only when asked
    from aigre_policy import nodes as n


class Pack:
    """A compiled policy pack, ready to evaluate proposed actions."""

    def __init__(self, compiled: CompiledPack, diagnostics: list[Diagnostic]):
        """``compiled``: the ``CheckedPack`` and the evaluator one backend built from it
        (``compile_pack(path, engine=...)``); the pack reads nothing else."""
        checked = compiled.checked
        self.checked: CheckedPack = checked  # the backend-neutral pack every engine reads
        self.evaluator: Evaluator = compiled.evaluator  # judges every input that is valid
        manifest = checked.manifest
        self.name = manifest.name
        self.version = manifest.version
        self.description = manifest.description
        self.default = manifest.default
        self.fail_closed = manifest.fail_closed
        self.sensitive = dict(manifest.sensitive)  # {input path: "mask" | "drop"} for the log
        self.reusable_approvals = frozenset(manifest.reusable_approvals)  # never used up
        self.digest = checked.digest
        self.root = checked.root
        self.envelopes = checked.envelopes
        self.input_schema = checked.input_schema
        self.rules: tuple[ir.Rule, ...] = checked.program.rules
        self.warnings = [d for d in diagnostics if d.severity is Severity.WARNING]
        self.engine = compiled.evaluator.engine
        self._ref = checked.ref
        self._decide = compiled.evaluator.decide
        self._fail_closed_approvers = checked.policy.fail_closed_approvers
        assert checked.validator is not None, "a CheckedPack is sealed before any backend runs"
        self.validator = checked.validator  # every input passes it before the evaluator
        self._is_valid = checked.validator.compiled_is_valid
        self.exemptions = checked.exemptions  # compiled into the rules; listed in evidence

    @property
    def rego(self) -> Any:
        """The Rego program the engine runs (``rego.emit.RegoProgram``); ``None`` on native."""
        return getattr(self.evaluator, "rego", None)

    @property
    def python_source(self) -> str:
        """The generated evaluator (``aigre-policy eval --emit python``): as loaded on the
        native engine, as the native engine would load it on another."""
        python = getattr(self.evaluator, "python", None)
        if python is None:
            python = native.emit(self.checked)
        return python.source

    @property
    def program(self) -> ir.Program:
        return self.checked.program

    @property
    def modules(self) -> tuple[n.Module, ...]:
        return self.checked.modules

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
                errors = self.validator.errors(document)
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
        try:
            verdict = self._decide(document, started)
            if self.exemptions and not verdict.fail_closed:
                # found when the evidence is first read: reading the decision costs nothing
                unexempted = self.checked.unexempted
                verdict.note_exempted(
                    partial(exempted, self.exemptions, unexempted, self.envelopes, document)
                )
            return verdict
        except Exception as exc:
            action, context, usage = document["action"], document["context"], document["usage"]
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
        node = fault.node
        span = None
        if node is not None and node.span != NO_SPAN:
            span = {**node.span.to_dict(), "file": relative(node.span.file, self.root)}
        location = rule_location(fault.rule, self.root)
        return rule_fault(fault.rule.id, location, span, fault.cause)

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

    ``engine``: ``native`` (generated Python, the default), ``interpreter`` (the reference
    interpreter), ``rego`` (the pack compiled to Rego, evaluated in process with regopy) or
    one added with ``rego.engine.register_engine``.

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
    if cache is not None and engine == "native":  # the cache holds native packs only
        report = cache.compile(path, envelopes)
    else:
        from aigre_policy.compiler import compile_pack  # the parser and checker load here

        report = compile_pack(path, envelopes, engine)
    if not report.ok or report.compiled is None:
        raise CompileError(report.diagnostics, report.sources)
    return Pack(report.compiled, report.diagnostics)
