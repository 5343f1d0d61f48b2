"""Kubernetes AdmissionReview (admission.k8s.io/v1): the request as an action, the response.

The reviews are published examples (``fixtures/adapters/k8s-admission/SOURCES.md``).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import Gate, load_pack
from aigre_policy.adapters.common import FirstSeen
from aigre_policy.adapters.kubernetes import (
    AdmissionOptions,
    admit,
    gate_admission_judge,
    pack_admission_judge,
    read_review,
)
from aigre_policy.cli.main import main
from aigre_policy.gate import FakeClock
from aigre_policy.verdict import digest

ROOT = Path(__file__).resolve().parent.parent
REVIEWS = ROOT / "fixtures" / "adapters" / "k8s-admission"
REVIEW_PACK = Path(__file__).resolve().parent / "adapters_pack"
NOW = "2025-03-11T14:00:00Z"


@pytest.fixture(scope="module")
def pack():
    return load_pack(REVIEW_PACK)


def review(name: str) -> dict[str, Any]:
    return json.loads((REVIEWS / f"{name}.json").read_text())


def options(**given: Any) -> AdmissionOptions:
    return AdmissionOptions(first_seen=FirstSeen(), **given)


def test_the_documented_scale_request_is_a_scale_with_a_warning(pack):
    body = review("docs-scale-update")
    request = read_review(body, options())
    assert request.action["kind"] == "scale"
    assert request.action["target"] == "my-deployment"
    assert request.action["change"]["lines"] == 1  # replicas 3 -> 5
    reply = admit(body, pack_admission_judge(pack, {"now": NOW}), options())
    assert reply["apiVersion"] == "admission.k8s.io/v1" and reply["kind"] == "AdmissionReview"
    response = reply["response"]
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert response["allowed"] is True
    assert response["warnings"] == ["[scaling-advisory] my-deployment is scaled"]


def test_a_production_deployment_is_refused_with_the_rule_and_its_approvers(pack):
    body = review("gatekeeper-deployment-create")
    opts = options(environment_label="env", authenticated=True)
    request = read_review(body, opts)
    assert (request.action["kind"], request.action["environment"]) == ("deploy", "production")
    response = admit(body, pack_admission_judge(pack, {"now": NOW}), opts)["response"]
    assert response["uid"] == "abc123" and response["allowed"] is False
    message = response["status"]["message"]
    assert response["status"]["code"] == 403
    assert "require_approval: [production-deploy-needs-review]" in message
    assert "approvers: sre-oncall" in message and request.action["id"] in message


def test_the_environment_label_is_read_and_an_unknown_environment_is_production():
    body = review("gatekeeper-deployment-create")
    assert read_review(body, options()).action["environment"] == "production"
    body["request"]["object"]["metadata"]["labels"]["environment"] = "staging"
    assert read_review(body, options()).action["environment"] == "staging"
    body["request"]["object"]["metadata"]["labels"]["environment"] = "blue"
    assert read_review(body, options()).action["environment"] == "production"
    del body["request"]["object"]["metadata"]["labels"]["environment"]
    namespaced = options(namespaces={"default": "dev"})
    assert read_review(body, namespaced).action["environment"] == "development"


def _retried(body: dict[str, Any]) -> dict[str, Any]:
    again = copy.deepcopy(body)
    request = again["request"]
    request["uid"] = "a-new-uid-for-the-retry"
    for obj in (request["object"], request["oldObject"]):
        meta = obj["metadata"]
        meta.update(
            resourceVersion="99812",
            uid="c0ffee00-0000-4000-8000-000000000001",
            generation=7,
            creationTimestamp="2025-03-11T13:59:00Z",
            managedFields=[{"manager": "kubectl", "operation": "Update"}],
        )
        obj["status"] = {"observedGeneration": 7}
    return again


@pytest.mark.parametrize("name", ["docs-scale-update", "gatekeeper-deployment-create"])
def test_the_digest_survives_a_retry(name):
    body = review(name)
    opts = options()
    first = read_review(body, opts).action
    retry = read_review(_retried(body), opts).action
    assert retry == first and digest(retry) == digest(first)
    changed = copy.deepcopy(body)
    changed["request"]["object"]["spec"]["replicas"] = 9
    assert read_review(changed, opts).action["id"] != first["id"]


def test_an_approval_survives_a_retry_through_the_gate(pack, tmp_path):
    from aigre_policy.gate import StaticDirectory

    clock = FakeClock(NOW)
    gate = Gate(
        pack,
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
        clock=clock,
        directory=StaticDirectory({"sre-oncall": ["sam"]}),
    )
    opts = options(environment_label="env", authenticated=True)
    judge = gate_admission_judge(gate)
    body = review("gatekeeper-deployment-create")
    first = read_review(body, opts)
    verdict = judge(first)
    assert verdict.decision == "require_approval"
    gate.approve(verdict, by="sam", group="sre-oncall")
    response = admit(_retried(body), judge, opts)["response"]
    assert response["allowed"] is True, response


def recorded(gate: Gate) -> int:
    with gate.ledger.session() as session:
        return session.count()


def test_a_dry_run_stays_out_of_the_ledger(pack, tmp_path):
    gate = Gate(pack, ledger=f"sqlite:///{tmp_path / 'ledger.db'}", clock=FakeClock(NOW))
    judge = gate_admission_judge(gate)
    body = review("docs-scale-update")
    body["request"]["dryRun"] = True
    reply = admit(body, judge, options())
    assert reply["response"]["allowed"] is True
    assert recorded(gate) == 0
    body["request"]["dryRun"] = False
    admit(body, judge, options())
    assert recorded(gate) == 1


def test_the_actor_is_attested_only_over_an_authenticated_transport():
    body = review("docs-scale-update")
    assert read_review(body, options()).actor is None
    trusted = options(authenticated=True, trust_by_group={"my-admin-group": 4})
    actor = read_review(body, trusted).actor
    assert actor == {
        "kind": "human",
        "id": "admin",
        "trust": 4,
        "groups": ["system:authenticated", "my-admin-group"],
    }
    body["request"]["userInfo"]["username"] = "system:serviceaccount:ci:deployer"
    assert read_review(body, trusted).actor["kind"] == "automation"


def test_the_claimed_actor_does_not_change_what_the_pack_reads(pack):
    body = review("gatekeeper-deployment-create")
    opts = options(environment_label="env")
    seen: list[dict[str, Any]] = []

    def spy(request):
        seen.append(request.actor)
        return pack_admission_judge(pack, {"now": NOW})(request)

    admit(body, spy, opts)
    assert seen == [None]  # userInfo over an unauthenticated transport is no actor


def test_an_answer_past_the_budget_is_a_refusal(pack):
    def slow(request):
        time.sleep(2)
        return pack_admission_judge(pack, {"now": NOW})(request)

    started = time.monotonic()
    reply = admit(review("docs-scale-update"), slow, options(budget_seconds=0.2))
    assert time.monotonic() - started < 1.5
    response = reply["response"]
    assert response["allowed"] is False and response["status"]["code"] == 504
    assert "within 0.2 s" in response["status"]["message"]


def test_a_judge_that_fails_is_a_refusal():
    def broken(request):
        raise RuntimeError("ledger gone")

    response = admit(review("docs-scale-update"), broken, options())["response"]
    assert response["allowed"] is False and "ledger gone" in response["status"]["message"]


def test_an_older_review_version_is_refused_with_its_uid(pack):
    body = review("docs-scale-update")
    body["apiVersion"] = "admission.k8s.io/v1beta1"
    response = admit(body, pack_admission_judge(pack, {"now": NOW}), options())["response"]
    assert response["allowed"] is False and response["uid"] == body["request"]["uid"]
    assert "admissionReviewVersions" in response["status"]["message"]


def test_deleting_a_volume_claim_is_an_irreversible_data_deletion(pack):
    body = review("gatekeeper-deployment-create")
    request = body["request"]
    request.update(
        operation="DELETE",
        resource={"group": "", "version": "v1", "resource": "persistentvolumeclaims"},
    )
    request["oldObject"], request["object"] = request["object"], None
    action = read_review(body, options(environment_label="env")).action
    assert (action["kind"], action["reversible"]) == ("data_deletion", False)
    reply = admit(body, pack_admission_judge(pack, {"now": NOW}), options(environment_label="env"))
    assert "[production-data-deletion]" in reply["response"]["status"]["message"]


class _Allow:
    decision = "allow"
    fired: list[Any] = []
    warnings: list[Any] = []
    approvers: list[str] = []
    escalate_to: list[str] = []
    errors: list[Any] = []
    fail_closed = False

    def to_dict(self) -> dict[str, Any]:
        return {"decision": "allow"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(request=json_values, body=st.sampled_from(["request", "whole", "text"]))
def test_a_request_that_cannot_be_read_is_never_allowed(request, body):
    if body == "request":
        payload: Any = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "request": request}  # fmt: skip
    elif body == "whole":
        payload = request
    else:
        payload = json.dumps(request)[:-1]  # cut short: malformed JSON
    reply = admit(payload, lambda r: _Allow(), options())
    if reply["response"]["allowed"]:
        read_review(payload, options())  # allowed only because it was read and judged allow


def test_eval_from_k8s_admission_prints_the_response(capsys, tmp_path):
    context = tmp_path / "context.json"
    context.write_text(json.dumps({"now": NOW}))
    body = str(REVIEWS / "docs-scale-update.json")
    code = main(
        ["eval", str(REVIEW_PACK), "--from", "k8s-admission", body, "--context", str(context)]
    )
    reply = json.loads(capsys.readouterr().out)
    assert code == 0 and reply["response"]["allowed"] is True


class _Broken(_Allow):
    decision = "require_approval"

    @property
    def fired(self) -> list[Any]:  # type: ignore[override]
        raise RuntimeError("evidence lost")


def test_an_answer_that_cannot_be_written_is_a_refusal_with_code_500():
    response = admit(review("docs-scale-update"), lambda r: _Broken(), options())["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert "warnings" not in response
