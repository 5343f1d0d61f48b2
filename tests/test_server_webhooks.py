"""The adapters' webhook routes on a real ``aigre-policy serve`` on 127.0.0.1.

Kubernetes admission (the API server's token), GitHub deployment protection (a fake
GitHub API on 127.0.0.1 receives the reads and the callback), Terraform plans; on the
published payloads of ``fixtures/adapters/``.
"""

from __future__ import annotations

import copy
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from serving import ROOT, app_server, free_port, serve_process

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as Reply
from starlette.routing import Route

from aigre_policy.adapters.github import sign
from aigre_policy.cli.main import main
from aigre_policy.gate import FakeClock
from aigre_policy.server.app import create_app
from aigre_policy.server.config import ConfigError, ServerConfig, load_config
from aigre_policy.server.identity import key_digest
from aigre_policy.server.runtime import Runtime

PACK = Path(__file__).resolve().parent / "webhooks_pack"
ADAPTERS = ROOT / "fixtures" / "adapters"
K8S = ADAPTERS / "k8s-admission"
GITHUB = ADAPTERS / "github-deployment"
PLANS = ADAPTERS / "terraform-plan"
SECRET = "It's a Secret to Everybody"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # the pull request's latest commit
DEPLOYED = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"  # the delivery's deployment.sha
SERVE = [sys.executable, "-m", "aigre_policy.cli.main", "serve", str(PACK)]
KEYS = {
    "kube-apiserver": ("key-kube-apiserver", {"id": "kube-apiserver", "kind": "automation"}),
    "ci": ("key-ci", {"id": "ci-runner", "kind": "automation"}),
    "octocat": ("key-octocat", {"id": "octocat", "kind": "human"}),
}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


class FakeGitHub:
    """GitHub's REST API as far as the route uses it: reviews, a commit's pull requests,
    installation tokens and the protection-rule callback; every request is recorded."""

    def __init__(self) -> None:
        self.reviews: dict[int, list[Any]] = {}
        self.commit_pulls: list[Any] = []
        self.callbacks: list[dict[str, Any]] = []
        self.down = False  # the reviews answer 503
        self.seen: list[tuple[str, str, str]] = []  # (method, path, authorization)
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def reviews(request: Request) -> Reply:
            self._saw(request)
            if self.down:
                return Reply({"message": "Service Unavailable"}, status_code=503)
            return Reply(self.reviews.get(int(request.path_params["n"]), []))

        async def pulls(request: Request) -> Reply:
            self._saw(request)
            return Reply(self.commit_pulls)

        async def callback(request: Request) -> Reply:
            self._saw(request)
            with self.lock:
                self.callbacks.append(await request.json())
            return Reply({}, status_code=204)

        async def token(request: Request) -> Reply:
            self._saw(request)
            return Reply({"token": "ghs_installation", "expires_at": "2099-01-01T00:00:00Z"}, 201)

        return Starlette(
            routes=[
                Route("/repos/{o}/{r}/pulls/{n}/reviews", reviews),
                Route("/repos/{o}/{r}/commits/{sha}/pulls", pulls),
                Route(
                    "/repos/{o}/{r}/actions/runs/{run}/deployment_protection_rule",
                    callback,
                    methods=["POST"],
                ),
                Route("/app/installations/{i}/access_tokens", token, methods=["POST"]),
            ]
        )

    def _saw(self, request: Request) -> None:
        with self.lock:
            auth = request.headers.get("authorization", "")
            self.seen.append((request.method, request.url.path, auth))

    def reset(self) -> None:
        with self.lock:
            self.reviews, self.commit_pulls, self.down = {}, [], False
            self.callbacks.clear()
            self.seen.clear()


@pytest.fixture(scope="module")
def github():
    fake = FakeGitHub()
    with app_server(fake.app()) as url:
        fake.url = url  # type: ignore[attr-defined]
        yield fake


def write_config(folder: Path, github_url: str, **webhooks: Any) -> Path:
    keys = [
        {
            "name": name,
            "sha256": key_digest(key),
            "actor": {**actor, "trust": 3},
            "scopes": ["check", "approve", "read"],
        }
        for name, (key, actor) in KEYS.items()
    ]
    hooks: dict[str, Any] = {
        "admission": {"callers": ["kube-apiserver"], "trust_by_group": {"developers": 2}},
        "github": {
            "secret": {"file": "github-secret.txt"},
            "api_url": github_url,
            "token": {"env": "AIGRE_TEST_GITHUB_TOKEN"},
        },
        "terraform": {},
    }
    hooks.update(webhooks)
    config = {
        "ledger": f"sqlite:///{folder / 'ledger.db'}",
        "log": str(folder / "decisions.jsonl"),
        "directory": {"sre-oncall": ["octocat"]},
        "auth": {"api_keys": keys},
        "webhooks": {k: v for k, v in hooks.items() if v is not None},
    }
    (folder / "github-secret.txt").write_text(SECRET + "\n")
    path = folder / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("webhooks")


@pytest.fixture(scope="module")
def server(folder, github):
    config = write_config(folder, github.url)
    os.environ["AIGRE_TEST_GITHUB_TOKEN"] = "ghs_static"
    try:
        with serve_process(str(PACK), "--config", str(config)) as url:
            yield url
    finally:
        os.environ.pop("AIGRE_TEST_GITHUB_TOKEN", None)


# -- Kubernetes admission --------------------------------------------------------------------


def review(name: str) -> dict[str, Any]:
    return json.loads((K8S / f"{name}.json").read_text())


def test_admission_without_the_api_servers_token_is_401(server):
    reply = httpx.post(f"{server}/v1/admission", json=review("docs-scale-update"))
    assert reply.status_code == 401


def test_admission_from_another_check_caller_is_403(server):
    # any `check` key could otherwise claim to be whichever user it likes in `userInfo`
    reply = httpx.post(
        f"{server}/v1/admission", json=review("docs-scale-update"), headers=auth("ci")
    )
    assert reply.status_code == 403 and "webhooks.admission.callers" in reply.json()["message"]


def test_admission_answers_an_admission_review_with_warnings(server):
    reply = httpx.post(
        f"{server}/v1/admission",
        json=review("docs-scale-update"),
        headers=auth("kube-apiserver"),
    )
    assert reply.status_code == 200
    answer = reply.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert answer["response"]["allowed"] is True
    assert answer["response"]["warnings"] == ["[scaling-advisory] my-deployment is scaled"]


def test_an_approved_admission_is_admitted_on_retry(server):
    first = review("gatekeeper-deployment-create")
    refused = httpx.post(f"{server}/v1/admission", json=first, headers=auth("kube-apiserver"))
    response = refused.json()["response"]
    assert refused.status_code == 200 and response["allowed"] is False
    assert response["status"]["code"] == 403
    assert "require_approval" in response["status"]["message"]
    assert "approvers: sre-oncall" in response["status"]["message"]
    # the refusal is in the approvers' inbox, judged with the attested userInfo
    listed = httpx.get(f"{server}/v1/approvals", headers=auth("octocat")).json()["approvals"]
    (entry,) = [a for a in listed if a["action"]["kind"] == "deploy"]
    assert entry["actor"]["id"] == "john_doe" and entry["actor"]["trust"] == 2
    approved = httpx.post(
        f"{server}/v1/approvals",
        json={"decision_id": entry["decision_id"], "group": "sre-oncall"},
        headers=auth("octocat"),
    )
    assert approved.status_code == 201
    retry = copy.deepcopy(first)
    retry["request"]["uid"] = "abc124"  # a new request, the same change
    retry["request"]["object"]["metadata"]["resourceVersion"] = "7"
    admitted = httpx.post(f"{server}/v1/admission", json=retry, headers=auth("kube-apiserver"))
    assert admitted.json()["response"] == {"uid": "abc124", "allowed": True}


def test_an_unreadable_admission_review_is_refused_in_the_review(server):
    reply = httpx.post(
        f"{server}/v1/admission", content=b"{not json", headers=auth("kube-apiserver")
    )
    assert reply.status_code == 200
    assert reply.json()["response"]["allowed"] is False
    assert reply.json()["response"]["status"]["code"] == 400


def test_a_dry_run_is_judged_but_not_recorded(server, folder):
    dry = review("docs-scale-update")
    dry["request"]["uid"] = "dry-run-1"
    dry["request"]["dryRun"] = True
    dry["request"]["name"] = "dry-deployment"
    reply = httpx.post(f"{server}/v1/admission", json=dry, headers=auth("kube-apiserver"))
    assert reply.json()["response"]["allowed"] is True
    assert "dry-deployment" not in [a["target"] for a in logged_actions(folder)]


def test_without_an_identity_source_user_info_stays_a_claim(tmp_path):
    hooks = {"admission": {"callers": ["kube-apiserver"]}}
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}", webhooks=hooks)
    runtime = Runtime(PACK, config, clock=FakeClock("2025-03-11T14:00:00Z"))
    with app_server(create_app(runtime)) as url:
        reply = httpx.post(f"{url}/v1/admission", json=review("gatekeeper-deployment-create"))
    response = reply.json()["response"]
    # the pack sees no attested actor: an unverified production deploy is denied
    assert response["allowed"] is False
    assert "[unverified-production-deploy]" in response["status"]["message"]


# -- GitHub deployment protection ------------------------------------------------------------


def delivery(github: FakeGitHub, deployment_id: int, **changes: Any) -> dict[str, Any]:
    event = json.loads((GITHUB / "deployment_protection_rule.requested.json").read_text())
    # a run of the fake API's; each test its own deployment, so approvals do not carry over
    event["deployment_callback_url"] = (
        f"{github.url}/repos/Codertocat/Hello-World/actions/runs/1/deployment_protection_rule"  # type: ignore[attr-defined]
    )
    event["deployment"]["id"] = deployment_id
    event.update(changes)
    return event


def published_reviews(by: str = "octocat", commit: str = HEAD) -> list[dict[str, Any]]:
    found = json.loads((GITHUB / "pull-request-reviews.json").read_text())
    for item in found:
        item["user"]["login"], item["commit_id"] = by, commit
    return found


def deliver(server: str, event: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    body = json.dumps(event).encode()
    headers = {
        "X-GitHub-Event": "deployment_protection_rule",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": sign(body, secret),
        "Content-Type": "application/json",
    }
    return httpx.post(f"{server}/v1/github/deployment-protection", content=body, headers=headers)


def test_an_approving_review_approves_the_deployment(server, github):
    github.reset()
    github.reviews = {2: published_reviews()}
    reply = deliver(server, delivery(github, 1001))
    assert reply.status_code == 202 and reply.json()["decision"] == "allow"
    assert github.callbacks == [
        {"environment_name": "production", "state": "approved", "comment": "aigre-policy: allow"}
    ]
    # the reviews were read, and the answer posted, with the configured token
    assert ("GET", "/repos/Codertocat/Hello-World/pulls/2/reviews", "Bearer ghs_static") in (
        github.seen
    )
    assert github.seen[-1][2] == "Bearer ghs_static"


def test_a_bot_deploying_to_production_is_rejected(server, github):
    github.reset()
    event = delivery(github, 1002)
    event["sender"]["type"] = "Bot"
    reply = deliver(server, event)
    assert reply.json()["decision"] == "deny"
    (posted,) = github.callbacks
    assert posted["state"] == "rejected"
    assert "[no-bot-production-deploys]" in posted["comment"]


def test_without_a_review_the_deployment_stays_pending_with_a_comment(server, github):
    github.reset()
    reply = deliver(server, delivery(github, 1003))
    assert reply.json()["decision"] == "require_approval"
    (posted,) = github.callbacks
    assert "state" not in posted
    assert posted["comment"].endswith("waiting for an approving review from: sre-oncall")


def test_a_bad_signature_is_401_and_nothing_is_asked_or_posted(server, github):
    github.reset()
    github.reviews = {2: published_reviews()}
    reply = deliver(server, delivery(github, 1004), secret="not the secret")
    assert reply.status_code == 401
    assert github.seen == [] and github.callbacks == []


def test_the_pull_request_authors_own_review_does_not_count(server, github):
    github.reset()
    github.reviews = {2: published_reviews(by="Codertocat")}
    reply = deliver(server, delivery(github, 1005))
    assert reply.json()["decision"] == "require_approval"
    (ignored,) = reply.json()["approvals"]["ignored"]
    assert ignored["reason"] == "the pull request's author cannot approve its deployment"
    assert "state" not in github.callbacks[0]


def test_github_unreachable_leaves_the_deployment_pending(server, github):
    github.reset()
    github.down = True
    reply = deliver(server, delivery(github, 1007))
    assert reply.status_code == 500 and "503" in reply.json()["message"]
    assert reply.json()["decision"] is None and github.callbacks == []


def test_a_merge_deploy_finds_its_pull_request_by_the_commit(server, github):
    github.reset()
    pull = json.loads((GITHUB / "deployment_protection_rule.requested.json").read_text())[
        "pull_requests"
    ][0]
    merged = {**pull, "merged_at": "2019-05-15T15:20:00Z", "merge_commit_sha": DEPLOYED}
    unrelated = {**pull, "number": 3, "head": {**pull["head"], "sha": "0" * 40}}
    github.commit_pulls = [merged, unrelated]
    github.reviews = {2: published_reviews(), 3: published_reviews(commit="0" * 40)}
    reply = deliver(server, delivery(github, 1006, pull_requests=[]))
    assert reply.json()["decision"] == "allow"
    paths = [path for _, path, _ in github.seen]
    assert f"/repos/Codertocat/Hello-World/commits/{DEPLOYED}/pulls" in paths
    assert "/repos/Codertocat/Hello-World/pulls/3/reviews" not in paths


# -- Terraform plans -------------------------------------------------------------------------


def test_a_plan_gets_one_verdict_naming_the_risky_resource(server):
    body = (PLANS / "mixed-with-unsupported.json").read_bytes()
    reply = httpx.post(f"{server}/v1/terraform/plan", content=body, headers=auth("ci"))
    assert reply.status_code == 200
    verdict = reply.json()
    assert verdict["decision"] == "deny"
    assert verdict["deciding"] == ["azurerm_managed_disk.data"]
    assert "production-data-deletion" in verdict["summary"]
    # each resource was checked by the gate with the caller's actor, not the plan's
    disk = next(r for r in verdict["resources"] if r["address"] == "azurerm_managed_disk.data")
    assert disk["verdict"]["gate"]["actor"]["id"] == "ci-runner"


def logged_actions(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "decisions.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    return [e["body"]["input"]["action"] for e in entries if "input" in e.get("body", {})]


def test_a_plan_with_infracost_costs_in_a_form(server, folder):
    costs = {
        "projects": [
            {"diff": {"resources": [{"name": "azurerm_resource_group.rg", "monthlyCost": "12.5"}]}}
        ]
    }
    files = {
        "plan": ("plan.json", (PLANS / "mixed-with-unsupported.json").read_bytes()),
        "costs": ("infracost.json", json.dumps(costs).encode()),
    }
    reply = httpx.post(f"{server}/v1/terraform/plan", files=files, headers=auth("ci"))
    assert reply.status_code == 200
    judged = [a for a in logged_actions(folder) if a["target"] == "azurerm_resource_group.rg"]
    assert judged[-1]["cost"]["recurring_monthly_usd"] == 12.5


def test_a_plan_needs_credentials(server):
    body = (PLANS / "replace.json").read_bytes()
    assert httpx.post(f"{server}/v1/terraform/plan", content=body).status_code == 401


def test_costs_that_cannot_be_read_are_400(server):
    files = {
        "plan": ("plan.json", (PLANS / "replace.json").read_bytes()),
        "costs": ("infracost.json", b'{"projects": [{"diff": {"resources": [{"name": "x",'),
    }
    reply = httpx.post(f"{server}/v1/terraform/plan", files=files, headers=auth("ci"))
    assert reply.status_code == 400 and reply.json()["message"].startswith("costs: ")


def test_an_unreadable_plan_fails_closed(server):
    reply = httpx.post(f"{server}/v1/terraform/plan", content=b"{}", headers=auth("ci"))
    assert reply.status_code == 200
    assert reply.json()["fail_closed"] is True and reply.json()["decision"] != "allow"


# -- configuration ---------------------------------------------------------------------------


def test_routes_not_configured_answer_404(tmp_path):
    config = ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}", webhooks={"terraform": {}})
    runtime = Runtime(PACK, config, clock=FakeClock("2025-03-11T14:00:00Z"))
    with app_server(create_app(runtime)) as url:
        for path in ("/v1/admission", "/v1/github/deployment-protection"):
            reply = httpx.post(f"{url}{path}", json={})
            assert reply.status_code == 404 and "not configured" in reply.json()["message"]
        plan = (PLANS / "replace.json").read_bytes()
        assert httpx.post(f"{url}/v1/terraform/plan", content=plan).status_code == 200


def test_a_webhook_config_error_names_its_place(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text(
        "webhooks:\n"
        "  github:\n"
        "    secret: {env: GH_SECRET, value: also}\n"
        "    token: {value: t}\n"
        "  admission:\n"
        "    callers: []\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = str(raised.value).splitlines()
    assert lines[0].startswith(f"{path}:3:13: webhooks.github.secret")
    assert "exactly one of `value`, `env`, `file`" in lines[0]
    assert lines[1].startswith(f"{path}:6:14: webhooks.admission.callers")


def test_a_secret_that_cannot_be_read_stops_serve_without_showing_it(
    tmp_path, github, capsys, monkeypatch
):
    config = write_config(tmp_path, github.url)  # the token from an unset variable
    monkeypatch.delenv("AIGRE_TEST_GITHUB_TOKEN", raising=False)
    assert main(["serve", str(PACK), "--config", str(config), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith(
        "webhooks.github.token: the environment variable AIGRE_TEST_GITHUB_TOKEN is not set"
    )
    assert SECRET not in err and "Traceback" not in err


# -- TLS: the API server calls webhooks over HTTPS only --------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with ``cryptography``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigre-policy test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_admission_over_tls_with_a_self_signed_certificate(tmp_path, github):
    cert, key = self_signed(tmp_path)
    config = write_config(tmp_path, github.url, github=None)
    port = free_port()
    command = [*SERVE, "--config", str(config), "--port", str(port)]
    command += ["--tls-cert", str(cert), "--tls-key", str(key)]
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trusting) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "serve did not answer over TLS"
                time.sleep(0.1)
            reply = client.post(
                f"{url}/v1/admission",
                json=review("docs-scale-update"),
                headers=auth("kube-apiserver"),
            )
            assert reply.json()["response"]["allowed"] is True
        with pytest.raises(httpx.ConnectError):  # a client that does not trust it refuses
            httpx.get(f"{url}/healthz")
    finally:
        process.terminate()
        process.wait(30)


def test_tls_needs_both_files(tmp_path, capsys):
    cert, _key = self_signed(tmp_path)
    assert main(["serve", str(PACK), "--port", "0", "--tls-cert", str(cert)]) == 2
    assert capsys.readouterr().err.strip().endswith("--tls-cert and --tls-key go together")


def test_a_github_app_buys_an_installation_token_with_a_signed_jwt(github, tmp_path):
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from aigre_policy.adapters.github import deployment_action
    from aigre_policy.server.github_api import GitHubApi
    from aigre_policy.server.webhooks_config import GitHubWebhook

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "app.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = GitHubWebhook.model_validate(
        {
            "secret": {"value": SECRET},
            "api_url": github.url,
            "app": {
                "app_id": 1234,
                "installation_id": 99,
                "private_key": {"file": str(tmp_path / "app.pem")},
            },
        }
    )
    api = GitHubApi(config)
    github.reset()
    github.reviews = {2: published_reviews()}
    deployment = deployment_action(json.dumps(delivery(github, 1)), verified=True)
    assert api.reviews(deployment)[2][0]["state"] == "APPROVED"
    api.reviews(deployment)  # the token is kept until shortly before it expires
    bought = [s for s in github.seen if s[1] == "/app/installations/99/access_tokens"]
    assert len(bought) == 1 and github.seen[0] == bought[0]
    claims = jwt.decode(
        bought[0][2].removeprefix("Bearer "), key.public_key(), algorithms=["RS256"]
    )
    assert claims["iss"] == "1234" and 0 < claims["exp"] - claims["iat"] <= 600
    assert [s[2] for s in github.seen[1:]] == ["Bearer ghs_installation"] * 2
    api.close()


def test_reviews_follow_pages_of_the_same_api_only():
    from aigre_policy.adapters.github import deployment_action
    from aigre_policy.server.github_api import GitHubApi
    from aigre_policy.server.webhooks_config import GitHubWebhook

    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.params.get("page") == "2":  # the second page sends elsewhere
            link = '<https://evil.example/steal?page=3>; rel="next"'
            return httpx.Response(200, json=published_reviews(), headers={"Link": link})
        link = '<https://api.github.test/repos/Codertocat/Hello-World/pulls/2/reviews?page=2>; rel="next"'  # noqa: E501
        return httpx.Response(200, json=published_reviews(), headers={"Link": link})

    config = GitHubWebhook.model_validate(
        {"secret": {"value": SECRET}, "api_url": "https://api.github.test", "token": {"value": "t"}}
    )
    api = GitHubApi(config, httpx.Client(transport=httpx.MockTransport(answer)))
    event = json.loads((GITHUB / "deployment_protection_rule.requested.json").read_text())
    found = api.reviews(deployment_action(json.dumps(event), verified=True))
    assert len(found[2]) == 2 * len(published_reviews())
    assert [u.split("?")[0] for u in asked] == [
        "https://api.github.test/repos/Codertocat/Hello-World/pulls/2/reviews"
    ] * 2
