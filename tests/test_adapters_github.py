"""GitHub deployment protection rules: verified deliveries, review approvals, the callback.

The delivery is built from published example objects and validated against GitHub's
published webhook schema (``fixtures/adapters/github-deployment/SOURCES.md``).
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigre_policy import load_pack
from aigre_policy.adapters.common import AdapterError
from aigre_policy.adapters.github import (
    DeploymentOptions,
    callback_body,
    deployment_action,
    handle_delivery,
    pack_deployment_judge,
    review_approvals,
    sign,
    urllib_post,
    verify_signature,
)
from aigre_policy.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "adapters" / "github-deployment"
DELIVERY = FIXTURES / "deployment_protection_rule.requested.json"
REVIEW_PACK = Path(__file__).resolve().parent / "adapters_pack"
NOW = "2025-03-11T14:00:00Z"
SECRET = "It's a Secret to Everybody"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # the pull request's latest commit
EVENT_HEADERS = {"X-GitHub-Event": "deployment_protection_rule"}
GROUPS = DeploymentOptions(
    reviewer_groups={"octocat": ["sre-oncall"], "Codertocat": ["sre-oncall"]}
)


@pytest.fixture(scope="module")
def pack():
    return load_pack(REVIEW_PACK)


def delivery() -> dict[str, Any]:
    return json.loads(DELIVERY.read_text())


def reviews(commit: str = HEAD, by: str = "octocat") -> list[dict[str, Any]]:
    published = json.loads((FIXTURES / "pull-request-reviews.json").read_text())
    for review in published:
        review["commit_id"] = commit
        review["user"]["login"] = by
    return published


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {**EVENT_HEADERS, "X-Hub-Signature-256": sign(body, secret)}


class Recorder:
    """The injectable HTTP client: records each post, answers 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Any) -> int:
        self.posts.append((url, json.loads(body), dict(headers)))
        return 200


def handle(pack: Any, body: bytes, headers: dict[str, str], **given: Any):
    given.setdefault("options", GROUPS)
    return handle_delivery(
        body,
        headers,
        secret=SECRET,
        judge=pack_deployment_judge(pack, {"now": NOW}),
        **given,
    )


def test_the_delivery_is_what_github_publishes():
    schema = json.loads((FIXTURES / "deployment_protection_rule.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(delivery())


def test_the_deployment_becomes_a_deploy_action():
    read = deployment_action(DELIVERY.read_bytes(), verified=True)
    action = read.action
    assert action["kind"] == "deploy" and action["target"] == "Hello-World"
    assert action["environment"] == "production"
    assert action["id"] == "gh-deployment-145988746"
    assert action["requested_at"] == "2019-05-15T15:20:53Z"  # stable across redeliveries
    assert "f95f852bd8fc (master)" in action["change"]["summary"]
    assert read.actor == {"kind": "human", "id": "Codertocat", "trust": 0}
    assert read.pull_requests == ({"number": 2, "author": "Codertocat", "head_sha": HEAD},)


def test_the_sender_is_attested_only_for_a_verified_delivery():
    assert deployment_action(DELIVERY.read_bytes(), verified=False).actor is None


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "no X-Hub-Signature-256"),
        ({"X-Hub-Signature-256": "sha1=abc"}, "no X-Hub-Signature-256"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "does not match"),
        ({"X-Hub-Signature-256": sign(b"another body", SECRET)}, "does not match"),
        ({"X-Hub-Signature-256": sign(DELIVERY.read_bytes(), "wrong")}, "does not match"),
    ],
)
def test_a_delivery_that_fails_verification_is_not_believed_or_answered(pack, headers, reason):
    recorder = Recorder()
    outcome = handle(
        pack, DELIVERY.read_bytes(), {**EVENT_HEADERS, **headers}, token="t", post=recorder
    )
    assert outcome.status == 401 and reason in outcome.message
    assert outcome.decision is None and outcome.callback is None
    assert recorder.posts == []


def test_no_secret_verifies_nothing():
    with pytest.raises(AdapterError, match="no webhook secret"):
        verify_signature(b"{}", sign(b"{}", ""), "")


def test_the_github_documented_signature_verifies():
    # GitHub's documentation gives this secret, payload and signature as its test values.
    verify_signature(
        b"Hello, World!",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        SECRET,
    )


def test_require_approval_leaves_the_deployment_pending_with_a_comment(pack):
    recorder = Recorder()
    body = DELIVERY.read_bytes()
    outcome = handle(pack, body, signed(body), token="t", post=recorder)
    assert outcome.status == 202 and outcome.decision == "require_approval"
    ((url, posted, headers),) = recorder.posts
    assert url == delivery()["deployment_callback_url"]
    assert posted["environment_name"] == "production" and "state" not in posted
    assert "sre-oncall" in posted["comment"]
    assert headers["Authorization"] == "Bearer t"


def test_a_review_by_someone_else_approves(pack):
    recorder = Recorder()
    body = DELIVERY.read_bytes()
    outcome = handle(
        pack, body, signed(body), reviews=lambda d: {2: reviews()}, token="t", post=recorder
    )
    assert outcome.decision == "allow"
    assert outcome.approvals.counted == (
        {"by": "octocat", "group": "sre-oncall", "at": "2019-11-17T17:43:43Z"},
    )
    assert recorder.posts[0][1] == {
        "environment_name": "production",
        "state": "approved",
        "comment": "aigre-policy: allow",
    }


def test_the_pull_request_author_cannot_approve(pack):
    body = DELIVERY.read_bytes()
    outcome = handle(pack, body, signed(body), reviews=lambda d: {2: reviews(by="Codertocat")})
    assert outcome.decision == "require_approval"
    assert outcome.approvals.counted == ()
    (ignored,) = outcome.approvals.ignored
    assert ignored["by"] == "Codertocat"
    assert ignored["reason"] == "the pull request's author cannot approve its deployment"


def test_whoever_deploys_cannot_approve():
    event = delivery()
    event["sender"]["login"] = "deployer"
    read = deployment_action(json.dumps(event), verified=True)
    found = review_approvals(
        read,
        {2: reviews(by="deployer")},
        DeploymentOptions(reviewer_groups={"deployer": ["sre-oncall"]}),
    )
    assert found.counted == () and "deploys" in found.ignored[0]["reason"]


def test_a_review_of_an_earlier_commit_does_not_approve(pack):
    body = DELIVERY.read_bytes()
    stale = json.loads((FIXTURES / "pull-request-reviews.json").read_text())  # as published
    outcome = handle(pack, body, signed(body), reviews=lambda d: {2: stale})
    assert outcome.decision == "require_approval"
    assert "earlier commit" in outcome.approvals.ignored[0]["reason"]


def test_a_reviewer_in_no_group_approves_nothing(pack):
    body = DELIVERY.read_bytes()
    outcome = handle(pack, body, signed(body), reviews=lambda d: {2: reviews(by="stranger")})
    assert outcome.decision == "require_approval"
    assert "no approver group" in outcome.approvals.ignored[0]["reason"]


def test_deny_rejects_the_deployment(pack):
    read = deployment_action(DELIVERY.read_bytes(), GROUPS, verified=False)
    verdict = pack_deployment_judge(pack, {"now": NOW})(read.action, read.actor, [])
    body = callback_body(read, verdict)
    assert verdict.decision == "deny" and body["state"] == "rejected"
    assert "[unverified-production-deploy]" in body["comment"]


def test_a_callback_url_off_the_api_is_never_posted_to(pack):
    event = delivery()
    event["deployment_callback_url"] = "https://attacker.example/steal"
    body = json.dumps(event).encode()
    recorder = Recorder()
    outcome = handle(pack, body, signed(body), token="t", post=recorder)
    assert outcome.status == 400 and "not an endpoint of" in outcome.message
    assert recorder.posts == []


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any], str]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.received.append((self.path, body, self.headers["Authorization"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_answer_is_posted_to_a_local_receiver(pack):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = f"http://127.0.0.1:{server.server_port}"
        event = delivery()
        path = "/repos/Codertocat/Hello-World/actions/runs/1/deployment_protection_rule"
        event["deployment_callback_url"] = api + path
        body = json.dumps(event).encode()
        options = DeploymentOptions(reviewer_groups=GROUPS.reviewer_groups, api_url=api)
        outcome = handle(
            pack,
            body,
            signed(body),
            reviews=lambda d: {2: reviews()},
            token="ghs_installation",
            post=urllib_post(timeout=5),
            options=options,
        )
        assert outcome.delivered == 204
        assert _Receiver.received == [
            (
                path,
                {
                    "environment_name": "production",
                    "state": "approved",
                    "comment": "aigre-policy: allow",
                },
                "Bearer ghs_installation",
            )
        ]
    finally:
        server.shutdown()
        server.server_close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


class _Allow:
    decision = "allow"
    fired: list[Any] = []
    warnings: list[Any] = []
    approvers: list[str] = []
    escalate_to: list[str] = []
    errors: list[Any] = []
    fail_closed = False


@settings(max_examples=150, deadline=None)
@given(
    garbage=json_values,
    key=st.sampled_from(
        [
            "deployment",
            "sender",
            "repository",
            "environment",
            "deployment_callback_url",
            "action",
            None,
        ]
    ),
)
def test_a_malformed_delivery_is_never_approved(garbage, key):
    event: Any = copy.deepcopy(_DELIVERY)
    if key is None:
        event = garbage
    else:
        event[key] = garbage
    body = json.dumps(event).encode()
    recorder = Recorder()
    outcome = handle_delivery(
        body, signed(body), secret=SECRET, judge=lambda *a: _Allow(), token="t", post=recorder
    )
    if outcome.callback is not None and outcome.callback.get("state") == "approved":
        deployment_action(body, verified=True)  # approved only because it was read whole


_DELIVERY = delivery()


def test_eval_from_github_deployment_prints_the_callback_body(capsys, tmp_path):
    context = tmp_path / "context.json"
    context.write_text(
        json.dumps({"now": NOW, "actor": {"kind": "human", "id": "Codertocat", "trust": 3}})
    )
    review_file = tmp_path / "reviews.json"
    review_file.write_text(json.dumps(reviews()))
    groups = tmp_path / "groups.yaml"
    groups.write_text("octocat: [sre-oncall]\n")
    argv = ["eval", str(REVIEW_PACK), "--from", "github-deployment", str(DELIVERY),
            "--context", str(context), "--reviews", str(review_file),
            "--reviewer-groups", str(groups)]  # fmt: skip
    code = main(argv)
    assert code == 0
    assert json.loads(capsys.readouterr().out)["state"] == "approved"
    code = main(argv[:-4])  # no reviews: pending
    assert code == 4
    assert "state" not in json.loads(capsys.readouterr().out)


def test_a_reviewer_group_given_as_one_name_is_one_group():
    read = deployment_action(DELIVERY.read_bytes(), verified=True)
    found = review_approvals(
        read, {2: reviews()}, DeploymentOptions(reviewer_groups={"octocat": "sre-oncall"})
    )
    assert found.counted == (
        {"by": "octocat", "group": "sre-oncall", "at": "2019-11-17T17:43:43Z"},
    )


def test_every_answer_is_a_body_github_accepts(pack):
    schema = json.loads((FIXTURES / "deployment_protection_rule.callback.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    body = DELIVERY.read_bytes()
    pending = handle(pack, body, signed(body)).callback
    approved = handle(pack, body, signed(body), reviews=lambda d: {2: reviews()}).callback
    read = deployment_action(body, GROUPS, verified=False)
    rejected = callback_body(read, pack_deployment_judge(pack, {"now": NOW})(read.action, None, []))
    assert [b.get("state") for b in (pending, approved, rejected)] == [None, "approved", "rejected"]
    for answer in (pending, approved, rejected):
        validator.validate(answer)
