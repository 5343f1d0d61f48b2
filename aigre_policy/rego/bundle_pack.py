"""A pack loaded from a built bundle (``.tar.gz``) rather than its source directory.

A bundle holds the pack compiled to Rego and its data: no ``.aigre`` source, no input
schema as JSON, no native evaluator. So a bundle runs on a Rego engine (``rego``: the
bundle's modules in process with regopy; or one registered, such as ``opa``) at the
bundle's entrypoint, the ``decision`` rule, which validates the input against the
pack's schema in Rego and fails closed on input that breaks it, as OPA would run it.

At load the bundle is read (and its signature verified when a key is given, or refused
when it is signed and no key is given, as OPA does), then asked once for the decision on
an empty input: the answer must fail closed, and gives the decision and approvers the
pack fails closed with when the engine itself cannot answer.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import CompileError
from aigre_policy.plain import NotPlain, as_plain
from aigre_policy.rego.bundle import Bundle, BundleError, BundleSignatureError, read_bundle
from aigre_policy.rego.emit import RegoProgram, emit_rego
from aigre_policy.rego.engine import ENGINES, DocumentVerdict, RegopyEngine, engine_names
from aigre_policy.rego.handwritten import IMPURE
from aigre_policy.rego.signing import BundleKey, SignatureError, read_key_argument, verification_key
from aigre_policy.verdict import EvaluationError, Verdict, refused_input_digest

DEFAULT_ENGINE = "rego"
# a call of a builtin that reads the world outside the input (`opa.runtime()` hands any
# module the process environment, secrets included) or varies between runs
_IMPURE = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(name) for name in IMPURE) + ")")


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` names a bundle file rather than a pack directory."""
    return Path(path).is_file()


def program_of(bundle: Bundle, name: str) -> RegoProgram:
    """The bundle as the Rego program the engines run."""
    entrypoint = bundle.entrypoint
    pack = bundle.metadata.get("pack")
    if not entrypoint or not isinstance(pack, dict):
        raise BundleError(f"{name}: its manifest names no pack and entrypoint: not built by aigre")
    return RegoProgram(
        package=".".join(entrypoint.split("/")[:-1]),
        modules={module.path: module.source for module in bundle.modules},
        data=bundle.data,
        roots=tuple(bundle.roots),
        entrypoint=entrypoint,
    )


def impure_calls(bundle: Bundle, name: str) -> None:
    """``BundleError`` naming the first module that mentions an impure builtin: the Rego a
    pack compiles to never does, and the engines would run it as written."""
    for module in bundle.modules:
        code = _code_only(module.source)
        found = _IMPURE.search(code)
        if found is not None:
            line = code.count("\n", 0, found.start()) + 1
            raise BundleError(
                f"{name}: {module.path}:{line}: `{found.group(0)}` reads the world outside the "
                "input: not the Rego of a pack"
            )


# a Rego string ("..." with escapes, or `raw`) or a comment: text, not calls
_NOT_CODE = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*')


def _code_only(source: str) -> str:
    """``source`` with strings and comments blanked, lines kept where they were."""
    return _NOT_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)


def as_key(value: BundleKey | str | bytes | Path | None) -> BundleKey | None:
    """A verification key from a ``BundleKey``, PEM (or HMAC secret) bytes, or a key file."""
    if value is None or isinstance(value, BundleKey):
        return value
    try:
        if isinstance(value, Path):
            return verification_key(value.read_bytes())
        if isinstance(value, str):
            return verification_key(read_key_argument(value))
        return verification_key(value)
    except OSError as exc:
        raise BundleSignatureError(f"cannot read the verification key: {exc}") from None
    except SignatureError as exc:
        raise BundleSignatureError(f"the verification key: {exc}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


class BundlePack:
    """What a bundle can do of ``Pack``: judge actions, and name the pack it was built from.

    Rules, envelopes, the input schema and the generated Python stay with the source; the
    commands that need them say so in one line when given a bundle.
    """

    def __init__(self, path: Path, bundle: Bundle, engine: str):
        self.path = path
        self.root = path
        self.bundle = bundle
        self.rego = program_of(bundle, str(path))
        impure_calls(bundle, str(path))
        meta = bundle.metadata["pack"]
        self.name = str(meta.get("name", ""))
        self.version = str(meta.get("version", ""))
        self.digest = str(meta.get("digest", ""))
        self.revision = bundle.revision
        self.signature = bundle.signature
        self.warnings: list[Any] = []
        self._ref = {"name": self.name, "version": self.version, "digest": self.digest}
        self.engine = engine
        try:
            local = RegopyEngine(self.rego, validate_in_rego=True)
            self._engine: Any = local if engine == DEFAULT_ENGINE else ENGINES[engine](self.rego)
            probe = local.decide({})
        except Exception as exc:  # regopy's own errors, EngineFault: the bundle cannot run
            raise BundleError(f"{path}: its Rego does not run: {_one_line(exc)}") from None
        if probe.get("fail_closed") is not True:
            raise BundleError(f"{path}: an empty input does not fail closed: not a pack bundle")
        self.fail_closed = str(probe["decision"])
        self._fail_closed_approvers = list(probe.get("approvers", []))

    def evaluate(
        self, action: Any, context: Any = None, usage: Any = None, *, strict: bool = False
    ) -> Verdict:
        """Judge one proposed action on the bundle's Rego; never raises unless ``strict``."""
        started = perf_counter_ns()
        document = {
            "action": action,
            "context": {} if context is None else context,
            "usage": {} if usage is None else usage,
        }
        try:
            # as Pack does: the JSON data the value stands for, within the evaluation bounds
            document = as_plain(document)
        except NotPlain as exc:
            # digested within the bounds, as Pack does: a structure sharing its lists at
            # every level may never end to write out, and every engine gives one digest
            digested = refused_input_digest(document)
            verdict = self._closed(digested, [exc.problem()], started)
        else:
            try:
                decision = self._engine.decide(document)
                elapsed = (perf_counter_ns() - started) / 1000
                verdict = DocumentVerdict(decision, self._ref, document, elapsed)
            except Exception as exc:  # an engine fault never becomes a decision
                message = f"{type(exc).__name__}: {exc}"
                verdict = self._closed(
                    document, [{"kind": "engine", "path": "", "message": message}], started
                )
        if strict and verdict.fail_closed:
            detail = "; ".join(
                f"{e.get('path') or '<input>'}: {e.get('message')}" for e in verdict.errors[:5]
            )
            raise EvaluationError(f"the verdict failed closed: {detail}", verdict)
        return verdict

    def _closed(self, document: Any, problems: list[dict[str, Any]], started: int) -> Verdict:
        return Verdict.given(
            self.fail_closed,
            self._ref,
            document,
            fail_closed=True,
            errors=problems,
            approvers=list(self._fail_closed_approvers),
            elapsed_us=(perf_counter_ns() - started) / 1000,
        )

    def with_data(self, data: dict[str, Any]) -> BundlePack:
        """The bundle's modules on another data document, such as ``source_data`` gives."""
        if sorted(data) != sorted(self.bundle.data):
            raise BundleError(f"{self.path}: the data does not fit the bundle's roots")
        return BundlePack(self.path, dataclasses.replace(self.bundle, data=data), self.engine)

    def __getattr__(self, name: str) -> Any:
        # what only the source has (rules, schema, envelopes...): one clear line, not a bare
        # AttributeError, for code handed a bundle where it needs a pack directory
        where = self.__dict__.get("path", "the bundle")
        raise AttributeError(f"{where} is a bundle: `{name}` needs the pack's source directory")

    def __repr__(self) -> str:
        return f"BundlePack({self.name!r}, {self.version!r}, {str(self.path)!r})"


def source_data(
    root: str | Path, envelopes: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The data document the pack at ``root`` compiles to with these envelope values, checked
    as any override is; ``CompileError`` if they do not fit."""
    report = compile_pack(root, envelopes)
    if not report.ok or report.compiled is None:
        raise CompileError(report.diagnostics, report.sources)
    return dict(emit_rego(report.compiled).data)


def load_bundle_pack(
    path: str | Path,
    envelopes: dict[str, dict[str, Any]] | None = None,
    engine: str | None = None,
    verification_key: BundleKey | str | bytes | Path | None = None,
    scope: str = "",
) -> BundlePack:
    """Read, verify and load the bundle at ``path``; ``BundleError`` (one line) if it cannot
    run: unreadable, malformed, signed without a key given, a key given and no signature or
    one that does not verify, envelope overrides asked for, or an engine that cannot run it."""
    path = Path(path)
    if envelopes:
        raise BundleError(
            f"{path}: a bundle's envelope values are fixed when it is built; "
            "rebuild it with `build --set`, or evaluate the pack's directory"
        )
    engine = engine or DEFAULT_ENGINE
    if engine == "native":
        raise BundleError(f"{path}: a bundle holds Rego, not the native evaluator: use engine rego")
    if engine != DEFAULT_ENGINE and engine not in ENGINES:
        raise BundleError(f"unknown engine {engine!r}; engines: {', '.join(engine_names())}")
    key = as_key(verification_key)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None
    bundle = read_bundle(blob, str(path), key, scope)
    if key is None and bundle.signed:
        raise BundleSignatureError(
            f"{path}: the bundle is signed: give its verification key to load it"
        )
    return BundlePack(path, bundle, engine)
