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
from aigre_policy.gate.directories import AnyDirectory, ClaimedGroups, FileDirectory
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
from aigre_policy.gate.notify import Notify, Webhook
from aigre_policy.gate.providers import PagerDutyIncidents, PrometheusValue, Sources
from aigre_policy.gate.review import FunctionReviewer, ReviewAnswer, Reviewer, ReviewRequest
from aigre_policy.gate.verdict import GateVerdict
from aigre_policy.gate.world import ContextProvider, Directory, StaticContext, StaticDirectory

__all__ = [
    "AnyDirectory",
    "Approval",
    "ApprovalRejected",
    "ApprovalRequired",
    "ClaimedGroups",
    "ContextProvider",
    "Denied",
    "Directory",
    "Escalated",
    "FakeClock",
    "FileDirectory",
    "FunctionReviewer",
    "Gate",
    "GateError",
    "GateVerdict",
    "LedgerError",
    "LedgerStore",
    "Notify",
    "PagerDutyIncidents",
    "PrometheusValue",
    "Refused",
    "ReviewAnswer",
    "ReviewRequest",
    "Reviewer",
    "Run",
    "Sources",
    "SqliteLedger",
    "StaticContext",
    "StaticDirectory",
    "Webhook",
    "open_ledger",
    "system_clock",
]
