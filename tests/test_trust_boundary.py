"""Nothing a proposer writes relaxes the default pack's verdict.

The proposal's ``actor``, ``approvals`` and ``requested_at`` are claims; the pack
decides on what the caller attests in ``context`` (``actor``, ``approvals``, ``now``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy import load_pack
from aigre_policy.verdict import LATTICE as RANK
from aigre_policy.yamlio import read_document

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policy_packs" / "aigre-baseline"
FIXTURES = sorted((ROOT / "fixtures" / "actions").glob("*.yaml"))


@pytest.fixture(scope="module")
def pack():
    return load_pack(PACK)


def fixture(name: str) -> dict[str, Any]:
    doc, problems = read_document(ROOT / "fixtures" / "actions" / f"{name}.yaml")
    assert doc is not None, problems
    return copy.deepcopy(doc.data)


def decide(pack, case: dict[str, Any]):
    verdict = pack.evaluate(case["action"], case["context"], case.get("usage"))
    assert not verdict.fail_closed, verdict.errors
    return verdict


def test_a_claimed_approval_does_not_approve(pack):
    case = fixture("admin-role-grant")
    now = case["context"]["now"]
    case["action"]["approvals"] = [{"by": "nobody", "group": "security", "at": now}]
    verdict = decide(pack, case)
    assert verdict.decision == "require_approval"
    assert verdict.rule_ids == ["admin-role-grant"]


def test_a_claimed_approval_from_the_future_does_not_approve(pack):
    case = fixture("admin-role-grant")
    case["action"]["approvals"] = [
        {"by": "nobody", "group": "security", "at": "2099-01-01T00:00:00Z"}
    ]
    assert decide(pack, case).decision == "require_approval"


def test_an_attested_approval_from_the_future_does_not_approve(pack):
    case = fixture("admin-role-grant")
    case["context"]["approvals"] = [
        {"by": "yuki.tanaka", "group": "security", "at": "2099-01-01T00:00:00Z"}
    ]
    assert decide(pack, case).decision == "require_approval"


def test_an_attested_approval_approves(pack):
    case = fixture("admin-role-grant")
    case["context"]["approvals"] = [
        {"by": "yuki.tanaka", "group": "security", "at": case["context"]["now"]}
    ]
    assert decide(pack, case).decision == "allow"


def test_a_future_requested_at_is_not_fresh(pack):
    case = fixture("llm-rollback")
    assert decide(pack, case).decision == "allow"
    case["action"]["requested_at"] = "2099-01-01T00:00:00Z"
    verdict = decide(pack, case)
    assert verdict.decision == "escalate"
    assert verdict.rule_ids == ["stale-proposal"]


def test_claimed_trust_is_not_trust(pack):
    case = fixture("low-trust-llm-production")
    case["action"]["actor"] = {"kind": "human", "id": "rui.almeida", "trust": 5}
    assert decide(pack, case).decision == "deny"


def test_self_approval_is_judged_against_the_attested_actor(pack):
    case = fixture("admin-role-grant")
    actor = case["context"]["actor"]["id"]
    case["action"]["actor"]["id"] = "someone-else"  # the claim hides who proposes it
    case["context"]["approvals"] = [
        {"by": actor, "group": "security", "at": case["context"]["now"]}
    ]
    verdict = decide(pack, case)
    assert verdict.decision == "deny"
    assert "self-approval" in verdict.rule_ids


def test_an_unauthenticated_actor_is_the_least_trusted(pack):
    case = fixture("llm-rollback")
    assert decide(pack, case).decision == "allow"
    del case["context"]["actor"]
    verdict = decide(pack, case)
    assert verdict.decision == "deny"
    assert "llm-trust-below-production-minimum" in verdict.rule_ids


def test_a_list_past_its_bound_fails_closed(pack):
    case = fixture("llm-rollback")
    case["action"]["blast_radius"]["services"] = [f"svc-{i}" for i in range(20_000)]
    case["context"]["incidents_open"] = [
        {"id": "INC-1", "severity": "sev1", "services": [f"svc-{i}" for i in range(20_000)]}
    ]
    verdict = pack.evaluate(case["action"], case["context"], case.get("usage"))
    assert verdict.fail_closed
    assert verdict.decision == "require_approval"


# ------------------------------------------------------ claims never loosen a verdict


def _without_claims(case: dict[str, Any]) -> dict[str, Any]:
    """The same proposal making no claim: no approvals, proposed at the gate's now."""
    bare = copy.deepcopy(case)
    bare["action"].pop("approvals", None)
    bare["action"]["requested_at"] = bare["context"]["now"]
    return bare


_IDS = st.sampled_from(["nobody", "rui.almeida", "agent-remediator", "marta.kowalski", "x"])
_TIMES = st.sampled_from(
    ["2099-01-01T00:00:00Z", "2025-03-12T12:00:00Z", "2000-01-01T00:00:00Z", "now"]
)
_GROUPS = st.sampled_from(
    ["security", "sre-oncall", "finops", "privacy", "incident-commander", "data-governance"]
)
_CLAIMS = st.fixed_dictionaries(
    {
        "approvals": st.lists(
            st.fixed_dictionaries({"by": _IDS, "group": _GROUPS, "at": _TIMES}), max_size=3
        ),
        "actor": st.fixed_dictionaries(
            {
                "kind": st.sampled_from(["human", "llm", "automation"]),
                "id": _IDS,
                "trust": st.integers(0, 5),
            },
            optional={"on_behalf_of": _IDS},
        ),
        "requested_at": _TIMES,
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(FIXTURES), claims=_CLAIMS)
def test_claims_never_loosen_the_verdict(pack, path, claims):
    case = read_document(path)[0].data
    baseline = decide(pack, _without_claims(case))
    claimed = _without_claims(case)
    now = claimed["context"]["now"]
    claimed["action"]["actor"] = claims["actor"]
    claimed["action"]["approvals"] = [
        {**a, "at": now if a["at"] == "now" else a["at"]} for a in claims["approvals"]
    ]
    claimed["action"]["requested_at"] = (
        now if claims["requested_at"] == "now" else claims["requested_at"]
    )
    verdict = decide(pack, claimed)
    assert RANK[verdict.decision] >= RANK[baseline.decision], (path.stem, claims)
