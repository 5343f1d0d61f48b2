"""GitHub custom deployment protection rules (the ``deployment_protection_rule`` webhook).

``verify_signature`` checks ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the
webhook secret); only a verified delivery's ``sender`` is attested, and only a verified
delivery is answered at all: its ``deployment_callback_url`` is where the answer goes,
with the app's token, so an unverified one could send it anywhere. ``deployment_action``
reads the deployment into the proposed action; ``review_approvals`` turns pull-request
reviews into approvals (never the pull request's author's, never the deployer's, only
reviews of the pull request's latest commit); ``callback_body`` is what is posted back:
``approved`` for ``allow``, ``rejected`` for ``deny``, and for ``require_approval`` or
``escalate`` a comment alone, so the deployment stays pending until a person decides.

Deferred imports: an adapter's parsing and the gate load only when that format is
judged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aigre_policy.adapters.common import (
    AdapterError,
    VerdictLike,
    environment_of,
    mapping,
    messages,
    now_iso,
    read_json,
    text,
)

EVENT = "deployment_protection_rule"
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
MAX_COMMENT = 1024  # GitHub shows the comment on the run; keep it short


class SignatureError(AdapterError):
    """The delivery's signature is missing or does not match: nothing in it is believed."""


def verify_signature(body: bytes, header: str | None, secret: bytes | str) -> None:
    """Raise ``SignatureError`` unless ``header`` is ``sha256=`` the HMAC of ``body``.

    Compared in constant time. An empty secret verifies nothing."""
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise SignatureError("no webhook secret is configured, so no delivery is verified")
    if not isinstance(header, str) or not header.startswith("sha256="):
        raise SignatureError(f"the delivery has no {SIGNATURE_HEADER}: sha256=... header")
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body and the secret")


def sign(body: bytes, secret: bytes | str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class DeploymentOptions:
    """How a deployment becomes an action, and who may approve it.

    ``environments``: GitHub environment name to the model's (common names are known;
    an unknown one is production). ``trust``: the attested sender's trust by login
    (else ``default_trust``). ``reviewer_groups``: approver groups of each reviewer's
    login (a review from someone in none of them approves nothing). ``api_url``: the
    only place answers go (``https://api.github.com``, or a GitHub Enterprise Server's
    ``https://HOST/api/v3``).
    """

    environments: Mapping[str, str] = field(default_factory=dict)
    trust: Mapping[str, int] = field(default_factory=dict)
    default_trust: int = 0
    reviewer_groups: Mapping[str, Iterable[str]] = field(default_factory=dict)
    users_share: float = 0.0
    api_url: str = "https://api.github.com"


@dataclass(frozen=True)
class Deployment:
    """A delivery read: the action, the attested actor, the pull requests, where to answer."""

    action: dict[str, Any]
    actor: dict[str, Any] | None  # attested only for a verified delivery
    environment_name: str
    callback_url: str
    pull_requests: tuple[dict[str, Any], ...]  # {number, author, head_sha}
    deployer: str
    sha: str = ""  # the deployed commit
    repository: str = ""  # owner/name


def deployment_action(
    payload: Any, options: DeploymentOptions | None = None, *, verified: bool = False
) -> Deployment:
    """The proposed action of a ``deployment_protection_rule`` ``requested`` delivery.

    Raises ``AdapterError`` (one line) when it cannot be read. ``verified``: the
    signature was checked (``verify_signature``), so ``sender`` is attested."""
    options = options or DeploymentOptions()
    event = mapping(read_json(payload, "the delivery"), "the delivery")
    if event.get("action") != "requested":
        raise AdapterError(f"the delivery's action is {event.get('action')!r}, not 'requested'")
    environment_name = text(event.get("environment"), "environment")
    callback = text(event.get("deployment_callback_url"), "deployment_callback_url")
    deployment = mapping(event.get("deployment"), "deployment")
    repository = mapping(event.get("repository"), "repository")
    sender = mapping(event.get("sender"), "sender")
    login = text(sender.get("login"), "sender.login")
    repo_name = text(repository.get("name"), "repository.name")
    full_name = text(repository.get("full_name"), "repository.full_name")
    sha = text(deployment.get("sha"), "deployment.sha")
    ref = deployment.get("ref") if isinstance(deployment.get("ref"), str) else ""
    deployment_id = deployment.get("id")
    if isinstance(deployment_id, bool) or not isinstance(deployment_id, int):
        raise AdapterError("deployment.id is not a number")
    created = text(deployment.get("created_at"), "deployment.created_at")
    creator = deployment.get("creator")
    deployer = creator.get("login") if isinstance(creator, Mapping) else None
    kind = "automation" if sender.get("type") == "Bot" else "human"
    pulls = tuple(_pull(p, i) for i, p in enumerate(event.get("pull_requests") or []))
    action = {
        "id": f"gh-deployment-{deployment_id}",
        "kind": "deploy",
        "target": repo_name,
        "environment": environment_of(environment_name, options.environments),
        "actor": {"kind": kind, "id": login, "trust": 0},
        "change": {
            "type": "code",
            "summary": f"deploy {full_name}@{sha[:12]} ({ref}) to {environment_name}",
        },
        "reversible": True,
        "blast_radius": {"users_share": options.users_share, "services": [repo_name]},
        "cost": {"estimated_usd": 0},
        "requested_at": created,  # stable across redeliveries: the same action, the same digest
    }
    actor = None
    if verified:
        trust = options.trust.get(login, options.default_trust)
        actor = {"kind": kind, "id": login, "trust": trust}
    return Deployment(
        action,
        actor,
        environment_name,
        callback,
        pulls,
        deployer if isinstance(deployer, str) else login,
        sha,
        full_name,
    )


def _pull(raw: Any, index: int) -> dict[str, Any]:
    pull = mapping(raw, f"pull_requests[{index}]")
    number = pull.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        raise AdapterError(f"pull_requests[{index}].number is not a number")
    user = mapping(pull.get("user"), f"pull_requests[{index}].user")
    head = pull.get("head")
    head_sha = head.get("sha") if isinstance(head, Mapping) else None
    return {
        "number": number,
        "author": text(user.get("login"), f"pull_requests[{index}].user.login"),
        "head_sha": head_sha if isinstance(head_sha, str) else None,
    }


@dataclass(frozen=True)
class Approvals:
    counted: tuple[dict[str, Any], ...]  # {by, group, at}: what context.approvals holds
    ignored: tuple[dict[str, Any], ...]  # {by, pull_request, reason}


def review_approvals(
    deployment: Deployment,
    reviews: Mapping[int, list[Any]],
    options: DeploymentOptions | None = None,
) -> Approvals:
    """Approvals from the pull requests' reviews (``GET .../pulls/N/reviews``, by number).

    A review counts when its state is ``APPROVED``, it approved the pull request's
    latest commit, its author is not the pull request's author, the sender or the
    deployment's creator, and ``reviewer_groups`` lists the reviewer; then it is one
    approval per group of the reviewer."""
    options = options or DeploymentOptions()
    counted: list[dict[str, Any]] = []
    ignored: list[dict[str, Any]] = []
    proposer = {deployment.action["actor"]["id"], deployment.deployer}
    for pull in deployment.pull_requests:
        for review in reviews.get(pull["number"], []):
            if not isinstance(review, Mapping) or review.get("state") != "APPROVED":
                continue
            user = review.get("user")
            by = user.get("login") if isinstance(user, Mapping) else None
            at = review.get("submitted_at")
            reason = None
            if not isinstance(by, str) or not isinstance(at, str):
                reason = "the review has no reviewer or time"
            elif by == pull["author"]:
                reason = "the pull request's author cannot approve its deployment"
            elif by in proposer:
                reason = "whoever deploys cannot approve the deployment"
            elif pull["head_sha"] and review.get("commit_id") != pull["head_sha"]:
                reason = "the review approved an earlier commit of the pull request"
            elif not _groups(options, by):
                reason = "the reviewer is in no approver group"
            if reason is not None:
                ignored.append({"by": by, "pull_request": pull["number"], "reason": reason})
                continue
            for group in _groups(options, str(by)):
                approval = {"by": by, "group": group, "at": at}
                if approval not in counted:
                    counted.append(approval)
    return Approvals(tuple(counted[:32]), tuple(ignored))


def _groups(options: DeploymentOptions, login: str) -> list[str]:
    """The reviewer's approver groups; a single group may be given as a string."""
    groups = options.reviewer_groups.get(login, ())
    if isinstance(groups, str):
        return [groups]
    return [g for g in groups if isinstance(g, str) and g]


# -- the answer -----------------------------------------------------------------------------


def callback_body(deployment: Deployment, verdict: VerdictLike) -> dict[str, Any]:
    """The body to post to ``deployment_callback_url``.

    ``allow``: ``approved``; ``deny`` (or a verdict that failed closed on ``deny``):
    ``rejected``; ``require_approval`` and ``escalate``: a comment only, so the
    deployment stays pending."""
    decision = verdict.decision
    if decision == "allow":
        comment = "aigre-policy: allow"
        if verdict.warnings:
            comment += "; " + "; ".join(messages(verdict.warnings))
        return _body(deployment, "approved", comment)
    if verdict.fail_closed:
        detail = "; ".join(e.get("message", "") for e in verdict.errors[:3])
        comment = f"aigre-policy failed closed ({decision}): {detail}"
    else:
        comment = f"aigre-policy: {decision}: " + "; ".join(messages(verdict.fired))
    if decision == "deny":
        return _body(deployment, "rejected", comment)
    if decision == "require_approval":
        comment += f"; waiting for an approving review from: {', '.join(verdict.approvers)}"
    else:
        comment += f"; waiting for {', '.join(verdict.escalate_to) or 'a reviewer'}"
    return _body(deployment, None, comment)


def _body(deployment: Deployment, state: str | None, comment: str) -> dict[str, Any]:
    body: dict[str, Any] = {"environment_name": deployment.environment_name}
    if state is not None:
        body["state"] = state
    body["comment"] = comment[:MAX_COMMENT]
    return body


# owner and repository as GitHub spells them (no "." or ".." segment): nothing a query,
# fragment, encoded slash, backslash or dot segment could turn into another request
_NAME = r"(?!\.\.?/)[A-Za-z0-9_.-]+"
_CALLBACK_PATH = re.compile(
    rf"/repos/{_NAME}/{_NAME}/actions/runs/[0-9]+/deployment_protection_rule", re.ASCII
)


def check_callback_url(url: str, api_url: str) -> None:
    """Refuse to post anywhere but the configured API's protection-rule endpoint."""
    base = api_url.rstrip("/")
    if not url.startswith(base + "/") or not _CALLBACK_PATH.fullmatch(url[len(base) :]):
        raise AdapterError(f"deployment_callback_url {url[:120]!r} is not an endpoint of {base}")


Post = Callable[[str, bytes, Mapping[str, str]], int]
"""Posts ``body`` to a URL with headers and returns the HTTP status (injectable in tests)."""


def urllib_post(timeout: float = 10.0) -> Post:
    """A ``Post`` over the standard library's HTTP client."""

    import urllib.error
    import urllib.request

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    return post


def deliver(
    deployment: Deployment,
    body: Mapping[str, Any],
    token: str,
    post: Post,
    options: DeploymentOptions | None = None,
) -> int:
    """Post the answer to the deployment's callback URL with the app's installation token."""
    options = options or DeploymentOptions()
    check_callback_url(deployment.callback_url, options.api_url)
    headers = {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    return post(deployment.callback_url, json.dumps(dict(body)).encode(), headers)


JudgeDeployment = Callable[[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]], Any]
"""``judge(action, attested_actor, approvals) -> verdict``."""


def pack_deployment_judge(
    pack: Any, context: Mapping[str, Any] | None = None, usage: Any = None
) -> JudgeDeployment:
    """Judges with the pack alone: the attested actor and the counted review approvals go
    in ``context`` (the adapter attests them: GitHub said so over a verified delivery)."""

    def judge(action: dict[str, Any], actor: Any, approvals: list[dict[str, Any]]) -> Any:
        attested = dict(context or {})
        attested.setdefault("now", now_iso())
        attested.pop("actor", None)
        if actor is not None:
            attested["actor"] = actor
        attested["approvals"] = list(approvals)
        return pack.evaluate(action, attested, usage)

    return judge


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery: the webhook's HTTP status, the answer, its delivery."""

    status: int  # for GitHub's webhook delivery: 202 judged, 401 unverified, 400 unreadable
    message: str
    decision: str | None = None
    callback: dict[str, Any] | None = None
    delivered: int | None = None  # the callback's HTTP status, when it was posted
    approvals: Approvals | None = None


def handle_delivery(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: bytes | str,
    judge: JudgeDeployment,
    reviews: Callable[[Deployment], Mapping[int, list[Any]]] | None = None,
    token: str | None = None,
    post: Post | None = None,
    options: DeploymentOptions | None = None,
    pulls: Callable[[Deployment], Iterable[Any]] | None = None,
) -> Outcome:
    """The whole webhook: verify, read, gather approvals, judge, answer; never raises.

    ``reviews(deployment)`` fetches each pull request's reviews (``GET
    /repos/{owner}/{repo}/pulls/{n}/reviews``); ``post`` and ``token`` deliver the answer
    (left out: the answer is returned, not posted). ``pulls(deployment)`` lists the pull
    requests of the deployed commit (as ``GET .../commits/{sha}/pulls`` answers them),
    asked only when the delivery lists none (a deploy of a merge). An unverified or
    unreadable delivery is answered with nothing posted: the deployment stays pending."""
    options = options or DeploymentOptions()
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        verify_signature(body, lowered.get(SIGNATURE_HEADER.lower()), secret)
    except SignatureError as exc:
        return Outcome(401, str(exc))
    event = lowered.get(EVENT_HEADER.lower())
    if event != EVENT:
        return Outcome(202, f"event {event!r} is not {EVENT}: ignored")
    try:
        deployment = deployment_action(body, options, verified=True)
        check_callback_url(deployment.callback_url, options.api_url)
    except AdapterError as exc:
        return Outcome(400, str(exc))
    try:
        if pulls is not None and not deployment.pull_requests:
            listed = tuple(_pull(p, i) for i, p in enumerate(pulls(deployment)))
            deployment = replace(deployment, pull_requests=listed)
        found = reviews(deployment) if reviews is not None else {}
        approvals = review_approvals(deployment, found, options)
        verdict = judge(deployment.action, deployment.actor, list(approvals.counted))
        answer = callback_body(deployment, verdict)
    except Exception as exc:  # nothing is posted: the deployment stays pending
        return Outcome(500, f"the deployment was not judged: {type(exc).__name__}: {exc}")
    delivered = None
    if post is not None and token is not None:
        try:
            delivered = deliver(deployment, answer, token, post, options)
        except Exception as exc:
            return Outcome(
                502,
                f"the answer was not delivered: {type(exc).__name__}: {exc}",
                verdict.decision,
                answer,
                None,
                approvals,
            )
    return Outcome(202, answer["comment"], verdict.decision, answer, delivered, approvals)
