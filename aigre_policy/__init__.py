"""aigre-policy: a policy-as-code gate for operational actions.

Load a pack and judge proposed actions::

    from aigre_policy import load_pack
    pack = load_pack("policy_packs/aigre-baseline")
    verdict = pack.evaluate(action, context)
    verdict.decision, verdict.fired, verdict.to_json()
"""

from aigre_policy.diagnostics import CompileError, Diagnostic
from aigre_policy.gate import ApprovalRequired, Denied, Escalated, Gate, GateVerdict
from aigre_policy.models.action import Context, ProposedAction
from aigre_policy.pack import EvaluationError, Pack, load_pack
from aigre_policy.verdict import Verdict
from aigre_policy.version import __version__ as __version__

__all__ = [
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
