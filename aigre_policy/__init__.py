"""aigre-policy: a policy-as-code gate for operational actions.

Load a pack and judge proposed actions::

    from aigre_policy import load_pack
    pack = load_pack("policy_packs/aigre-baseline")
    verdict = pack.evaluate(action, context)
    verdict.decision, verdict.fired, verdict.to_json()

The names below load on first use (PEP 562), so ``import aigre_policy`` — and the
command line, which imports it — does not pay for the gate until it is used.
"""

from __future__ import annotations

import importlib

from aigre_policy.version import __version__ as __version__

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs the start-up time
if TYPE_CHECKING:
    from typing import Any

    from aigre_policy.diagnostics import CompileError, Diagnostic
    from aigre_policy.gate import ApprovalRequired, Denied, Escalated, Gate, GateVerdict
    from aigre_policy.models.action import Context, ProposedAction
    from aigre_policy.pack import EvaluationError, Pack, load_pack
    from aigre_policy.verdict import Verdict

# public name -> the module that defines it
_EXPORTS = {
    "ApprovalRequired": "aigre_policy.gate",
    "CompileError": "aigre_policy.diagnostics",
    "Context": "aigre_policy.models.action",
    "Denied": "aigre_policy.gate",
    "Diagnostic": "aigre_policy.diagnostics",
    "Escalated": "aigre_policy.gate",
    "EvaluationError": "aigre_policy.pack",
    "Gate": "aigre_policy.gate",
    "GateVerdict": "aigre_policy.gate",
    "Pack": "aigre_policy.pack",
    "ProposedAction": "aigre_policy.models.action",
    "Verdict": "aigre_policy.verdict",
    "load_pack": "aigre_policy.pack",
}

__all__ = [  # the same names as _EXPORTS, spelled out for type checkers and linters
    "ApprovalRequired",
    "CompileError",
    "Context",
    "Denied",
    "Diagnostic",
    "Escalated",
    "EvaluationError",
    "Gate",
    "GateVerdict",
    "Pack",
    "ProposedAction",
    "Verdict",
    "load_pack",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aigre_policy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
