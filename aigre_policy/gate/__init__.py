"""The embedding gate: check, enforce and guard proposed actions; keep a ledger and a log.

from aigre_policy import Gate
gate = Gate.from_pack("policy_packs/aigre-baseline", ledger="sqlite:///aigre.db",
                      log="decisions.jsonl")
verdict = gate.check(action)
with gate.enforce(action) as run:
    do_it()
"""

from aigre_policy.gate.approvals import Approval
from aigre_policy.gate.clock import FakeClock, system_clock
from aigre_policy.gate.errors import (
    ApprovalRejected,
    ApprovalRequired,
    Denied,
    Escalated,
    GateError,
    Refused,
)
from aigre_policy.gate.gate import Gate, Run
from aigre_policy.gate.ledger import LedgerError, LedgerStore, SqliteLedger, open_ledger
from aigre_policy.gate.review import FunctionReviewer, ReviewAnswer, Reviewer, ReviewRequest
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.gate.world import ContextProvider, Directory, StaticContext, StaticDirectory

__all__ = [
    "Approval",
    "ApprovalRejected",
    "ApprovalRequired",
    "ContextProvider",
    "Denied",
    "Directory",
    "Escalated",
    "FakeClock",
    "FunctionReviewer",
    "Gate",
    "GateError",
    "GateVerdict",
    "LedgerError",
    "LedgerStore",
    "Refused",
    "ReviewAnswer",
    "ReviewRequest",
    "Reviewer",
    "Run",
    "SqliteLedger",
    "StaticContext",
    "StaticDirectory",
    "open_ledger",
    "system_clock",
]
