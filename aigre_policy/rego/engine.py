"""Engines that evaluate a pack's Rego program, and the seam where more plug in.

An engine turns the input document into the decision document of the
program's entrypoint (``RegoProgram.entrypoint``); ``verdict_of`` makes the
``Verdict`` from it, so every engine returns what the native evaluator returns.
``register_engine`` adds an engine by name (``load_pack(path, engine=name)``,
``aigre-policy eval --engine name``); built in are ``rego`` (rego-cpp, in process,
with regopy) and ``regorus`` (Microsoft's regorus, in process, where installed).
An engine raises ``EngineFault`` when it cannot answer; the pack then fails closed.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any, Protocol

import regopy
from regopy.rego_shared import LogLevel

from aigre_policy.lattice import NO_RULE, decision_of, rank_of
from aigre_policy.rego.emit import RegoProgram, checked_modules
from aigre_policy.rego.lib import library
from aigre_policy.verdict import Issuer, Verdict

DECISION_KEYS = frozenset(
    {"decision", "fail_closed", "default_applied", "fired", "warnings", "errors"}
)


class EngineFault(Exception):
    """The engine could not produce a decision document."""


class DecisionEngine(Protocol):
    name: str

    def decide(self, document: dict[str, Any]) -> dict[str, Any]:
        """The entrypoint's decision document for one input document; ``EngineFault`` if none."""
        ...  # pragma: no cover


EngineFactory = Callable[[RegoProgram], DecisionEngine]
ENGINES: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory) -> None:
    ENGINES[name] = factory


def engine_names() -> tuple[str, ...]:
    return ("native", *sorted(ENGINES))


def interpreter(modules: dict[str, str], data: dict[str, Any]) -> regopy.Interpreter:
    """A quiet regopy interpreter holding ``modules`` and ``data``; ``RegoError`` if they fail."""
    rego = regopy.Interpreter()
    rego.log_level = LogLevel.NONE  # errors come back as exceptions, not on the console
    for path, source in modules.items():
        rego.add_module(path, source)
    rego.add_data(data)
    return rego


def as_term(document: Any) -> str:
    """The input as JSON text with raw UTF-8: rego-cpp keeps string literals escaped inside,
    and an input set from this text compares equal to them (``regopy.Input`` does not)."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False)


# regopy.Input stores integers in 64 bits and floats as six-decimal text
_INT64 = 2**63 - 1


def _plain_input(value: Any) -> bool:
    """Whether ``regopy.Input`` holds ``value`` exactly as rego-cpp reads its JSON text."""
    if isinstance(value, str):
        return _plain_text(value)
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and _plain_text(k) and _plain_input(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return all(_plain_input(v) for v in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -_INT64 <= value <= _INT64
    if isinstance(value, float):
        return (
            abs(value) < 1e15
            and (value != 0 or math.copysign(1.0, value) > 0)
            and float(f"{value:.6f}") == value
        )
    return False


def _plain_text(text: str) -> bool:
    # text JSON writes without an escape: rego-cpp keeps escapes in literals, Input does not
    return text.isprintable() and '"' not in text and "\\" not in text


def set_input(rego: regopy.Interpreter, document: Any) -> None:
    """Give ``rego`` the input document: as a ``regopy.Input`` where that is exact (about
    twice as fast as rego-cpp parsing the JSON text), else as the JSON text. Engines
    call ``refuse_inexact`` first: numbers rego-cpp cannot hold exactly fail closed."""
    if _plain_input(document):
        rego.set_input(regopy.Input(document))
        return
    rego.set_input_term(as_term(document))


# Non-zero magnitudes below this fail in rego-cpp: subnormal doubles, and the smallest
# normal ones, which it prints to 16 digits and reads back below the normal range.
TINY = 1e-307
# Past 2**53 a double cannot hold every integer: native Python keeps integers exact,
# regorus turns them into doubles and rego-cpp into integers that its arithmetic with
# doubles gets wrong (1e300 + 1500 is about 1e30 there).
EXACT = 2**53


def inexact_number(value: Any, engine: str, path: str = "") -> tuple[str, Any, str] | None:
    """The first number of ``value`` that ``engine`` cannot hold as native does: its
    dotted path, the number and why; ``None`` when every number is exact there.

    Both engines: a magnitude of ``EXACT`` or more. rego-cpp also: a non-zero magnitude
    below ``TINY``, and a non-integer that needs 17 significant digits (rego-cpp keeps
    16, so 0.30000000000000004 would be 0.3 there)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int | float):
        if abs(value) >= EXACT:
            return path, value, "past 2**53 the engines' numbers are not native integers"
        if engine == "rego" and isinstance(value, float):
            if 0 < abs(value) < TINY:
                why = f"rego-cpp parses numbers with C++ std::stod, which rejects below {TINY!r}"
                return path, value, why
            if float(f"{value:.16g}") != value:
                return path, value, "it needs 17 significant digits and rego-cpp keeps 16"
        return None
    if isinstance(value, dict):
        children: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for where, child in children:
        found = inexact_number(child, engine, where)
        if found is not None:
            return found
    return None


def refuse_inexact(document: Any, engine: str) -> None:
    """``EngineFault`` naming the first number ``engine`` cannot hold exactly: the pack
    fails closed rather than decide on another number than the one it was given."""
    found = inexact_number(document, engine)
    if found is not None:
        path, number, why = found
        name = {"rego": "rego-cpp"}.get(engine, engine)
        raise EngineFault(
            f"{name} cannot read the number {number!r} at {path or 'the input'} exactly: {why}"
        )


def first_value(output: Any) -> Any:
    """The value of a one-expression query, or ``EngineFault`` when it is undefined."""
    results = getattr(output, "results", None) or []
    expressions = results[0].expressions if results else None
    if not expressions:
        raise EngineFault("the query is undefined")
    return expressions[0]


def decision_query(program: RegoProgram, validate_in_rego: bool) -> tuple[str, dict[str, str]]:
    """The rule an in-process engine asks and the modules it needs for it: ``checked``
    (input the pack's validator has passed) with ``checked_modules``, or the entrypoint
    itself, schema checks included, with the whole program."""
    if validate_in_rego:
        return program.entrypoint, program.modules
    return program.entrypoint.rsplit("/", 1)[0] + "/checked", checked_modules(program)


class RegopyEngine:
    """The program compiled once into a regopy bundle, kept warm between calls.

    By default it queries ``checked``, the decision for input the pack's own validator
    has passed (the pack validates before any engine runs), with the modules it needs
    (``emit.checked_modules``): rego-cpp's every builtin call costs in proportion to all
    the code it loaded. ``validate_in_rego=True`` queries the entrypoint itself, schema
    checks included, with the whole program, as an OPA server does.
    """

    name = "rego"

    def __init__(self, program: RegoProgram, validate_in_rego: bool = False):
        self.program = program
        self.query, modules = decision_query(program, validate_in_rego)
        self._rego = interpreter(modules, program.data)
        self._bundle = self._rego.build(None, [self.query])
        if not self._bundle.ok():
            raise EngineFault("regopy could not build the program")
        self._lock = threading.Lock()  # one interpreter holds one input at a time

    def decide(self, document: dict[str, Any]) -> dict[str, Any]:
        refuse_inexact(document, self.name)
        try:
            with self._lock:
                set_input(self._rego, document)
                output = self._rego.query_bundle_entrypoint(self._bundle, self.query)
        except (regopy.RegoError, TypeError, ValueError) as exc:
            raise EngineFault(f"{type(exc).__name__}: {exc}") from exc
        value = first_value(output)
        if not isinstance(value, dict) or not value.keys() >= DECISION_KEYS:
            raise EngineFault(f"the decision document is malformed: {str(value)[:200]}")
        return value


register_engine("rego", RegopyEngine)


class RegorusEngine:
    """The program loaded once into Microsoft's regorus (``gordon-to-regorus``), the same
    bundle rego-cpp and OPA load: ``engine="regorus"``."""

    name = "regorus"

    def __init__(self, program: RegoProgram, validate_in_rego: bool = False):
        import regorus  # a test dependency, imported when asked for

        self.program = program
        self.query, modules = decision_query(program, validate_in_rego)
        self._rule = "data." + self.query.replace("/", ".")
        self._engine = regorus.Engine()
        try:
            for path, source in modules.items():
                self._engine.add_policy(path, source)
            self._engine.add_data_json(json.dumps(program.data))
        except (RuntimeError, ValueError) as exc:
            raise EngineFault(f"regorus could not load the program: {_first_line(exc)}") from exc
        self._lock = threading.Lock()  # one engine holds one input at a time

    def decide(self, document: dict[str, Any]) -> dict[str, Any]:
        refuse_inexact(document, self.name)
        try:
            with self._lock:
                self._engine.set_input_json(as_term(document))
                text = self._engine.eval_rule_as_json(self._rule)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise EngineFault(f"regorus: {_first_line(exc)}") from exc
        value = json.loads(text)
        if not isinstance(value, dict) or not value.keys() >= DECISION_KEYS:
            raise EngineFault(f"the decision document is malformed or undefined: {text[:200]}")
        return value


def _first_line(exc: BaseException) -> str:
    """regorus's message without the Rust backtrace it appends."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    kept = [line for line in lines if line.startswith(("error", "-->")) or "|" not in line]
    text = " ".join(kept[:3]).split("Stack backtrace")[0].strip()
    return text[:300] or type(exc).__name__


def _regorus_installed() -> bool:
    return find_spec("regorus") is not None


if _regorus_installed():
    register_engine("regorus", RegorusEngine)


class DocumentVerdict(Verdict):
    """A ``Verdict`` made from a decision document (records already rendered)."""

    __slots__ = ()

    def __init__(
        self, decision: dict[str, Any], pack: dict[str, str], document: Any, elapsed_us: float
    ):
        super().__init__(decision["decision"], [], Issuer(pack), document, elapsed_us)
        self._set_outcome(
            bool(decision["fail_closed"]),
            decision["errors"],
            list(decision.get("approvers", [])),
            list(decision.get("escalate_to", [])),
            bool(decision["default_applied"]),
        )
        self._fired = decision["fired"]
        self._warnings = decision["warnings"]
        listed = decision.get("exempted")
        if listed:  # the exemptions that kept a rule from firing, as the Rego found them
            self._exempted = listed

    @property
    def rule_ids(self) -> list[str]:
        return [record["id"] for record in self.fired]


def groups_of(decision: str, fired: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Approvers and escalation targets of a decision, as ``Verdict`` derives them."""
    approvers = (
        sorted({g for r in fired if r["verdict"] == "require_approval" for g in r["approvers"]})
        if decision == "require_approval"
        else []
    )
    escalate_to = (
        list(
            dict.fromkeys(g for r in fired if r["verdict"] == "escalate" for g in r["escalate_to"])
        )
        if decision == "escalate"
        else []
    )
    return approvers, escalate_to


def merged(
    verdict: Verdict, records: list[dict[str, Any]], default: str, document: dict[str, Any]
) -> Verdict:
    """``verdict`` on ``document`` with what hand-written modules reported: the lattice
    decides again."""
    if not records:
        return verdict
    fired = [*verdict.fired, *(r for r in records if r["verdict"] != "warn")]
    warnings = [*verdict.warnings, *(r for r in records if r["verdict"] == "warn")]
    rank = rank_of(r["verdict"] for r in fired)
    default_applied = rank == NO_RULE
    decision = decision_of(rank, default)
    approvers, escalate_to = groups_of(decision, fired)
    decided = {
        "decision": decision,
        "fail_closed": False,
        "default_applied": default_applied,
        "fired": fired,
        "warnings": warnings,
        "approvers": approvers,
        "escalate_to": escalate_to,
        "errors": [],
    }
    if verdict.exempted:
        decided["exempted"] = verdict.exempted
    return DocumentVerdict(decided, verdict.pack, document, verdict.elapsed_us)


class HandwrittenRunner:
    """For the native engine: only the hand-written modules, evaluated with regopy."""

    def __init__(self, program: RegoProgram):
        prefix = "/".join(program.roots[0].split("/"))
        wanted = {
            path: source
            for path, source in program.modules.items()
            if path.startswith(f"{prefix}/custom/") or path == f"{prefix}/handwritten.rego"
        }
        lib_path = f"{prefix}/lib.rego"
        if lib_path in program.modules:  # only the helpers these modules call
            head = program.modules[lib_path].split("\n", 2)
            wanted[lib_path] = f"{head[0]}\n{head[1]}\n{library(list(wanted.values()))}"
        self._entrypoint = f"{prefix}/handwritten/result"
        self._rego = interpreter(wanted, program.data)
        self._bundle = self._rego.build(None, [self._entrypoint])
        self._lock = threading.Lock()

    def __call__(self, document: dict[str, Any]) -> list[dict[str, Any]]:
        """The records the hand-written modules report; ``EngineFault`` on a fault."""
        refuse_inexact(document, "rego")
        try:
            with self._lock:
                set_input(self._rego, document)
                output = self._rego.query_bundle_entrypoint(self._bundle, self._entrypoint)
        except (regopy.RegoError, TypeError, ValueError) as exc:
            raise EngineFault(f"{type(exc).__name__}: {exc}") from exc
        result = first_value(output)
        if result["faults"]:
            raise EngineFault("; ".join(result["faults"]))
        return result["records"]
