"""Kubernetes validating admission (``admission.k8s.io/v1`` AdmissionReview).

``review_action`` reads a request into the proposed action; ``admit`` judges it and
writes the AdmissionReview response: ``allowed`` only for ``allow``, ``status.message``
from the fired rules, ``warnings`` from the warn rules, answered within a budget
(``ADMISSION_BUDGET_SECONDS``) or refused. A request that cannot be read is refused.

What stays stable across a retry: the action carries no ``uid`` of the request and is
built from the objects with ``metadata.resourceVersion``, ``managedFields``,
``generation``, ``uid``, ``creationTimestamp``, ``selfLink`` and ``status`` removed, and
its ``requested_at`` is when that content was first seen (``FirstSeen``): so the action's
digest, to which an approval binds, is the same when the client retries.

Deferred imports: an adapter's parsing and the gate load only when that format is
judged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.adapters.common import (
    AdapterError,
    FirstSeen,
    VerdictLike,
    environment_of,
    fingerprint,
    mapping,
    messages,
    read_json,
    text,
)

API_VERSION = "admission.k8s.io/v1"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")

# The API server waits `timeoutSeconds` (10 by default, 30 at most) for the webhook. The
# answer must come well within it: past this budget the request is refused, so a slow
# judge never runs into the API server's own timeout and its failurePolicy.
ADMISSION_BUDGET_SECONDS = 5.0

# Fields that change on every write or retry and say nothing about what is asked.
VOLATILE_METADATA = (
    "resourceVersion",
    "managedFields",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
)

# Kind by resource (`request.resource.resource`), then by operation.
WORKLOADS = frozenset({"deployments", "statefulsets", "daemonsets", "replicasets"})
KIND_BY_RESOURCE: Mapping[str, tuple[str, str]] = {
    # resource: (kind, change.type)
    "configmaps": ("config_change", "config"),
    "secrets": ("secret_rotation", "config"),
    "roles": ("iam_grant", "access"),
    "clusterroles": ("iam_grant", "access"),
    "rolebindings": ("iam_grant", "access"),
    "clusterrolebindings": ("iam_grant", "access"),
    "serviceaccounts": ("iam_grant", "access"),
    "certificates": ("certificate_rotation", "infra"),
    "jobs": ("run_job", "code"),
    "cronjobs": ("run_job", "code"),
    "horizontalpodautoscalers": ("scale", "infra"),
    "services": ("infra_change", "infra"),
    "ingresses": ("infra_change", "infra"),
    "networkpolicies": ("infra_change", "infra"),
    "gateways": ("infra_change", "infra"),
    "httproutes": ("infra_change", "infra"),
    "persistentvolumeclaims": ("infra_change", "infra"),
    "persistentvolumes": ("infra_change", "infra"),
    "namespaces": ("infra_change", "infra"),
}
# Deleting these loses data: the action is a data deletion, and cannot be undone.
STATEFUL_RESOURCES = frozenset({"persistentvolumeclaims", "persistentvolumes", "namespaces"})
RBAC = frozenset({"roles", "clusterroles", "rolebindings", "clusterrolebindings"})


@dataclass(frozen=True)
class AdmissionOptions:
    """How a request becomes an action.

    ``environment_label``: the object's label naming its environment; else
    ``namespaces`` (namespace to environment name); else ``environment``; a name
    is mapped by ``environments`` then the common names, an unknown one is production.
    ``authenticated``: the webhook's transport is authenticated (the API server
    presents a client certificate the server verifies), so ``userInfo`` is what the API
    server authenticated and becomes the attested actor; otherwise it is only a claim.
    ``trust_by_group``: the attested actor's trust, the highest of its groups' (else 0).
    ``first_seen``: when each request content was first seen (shared across requests).
    """

    environment_label: str = "environment"
    namespaces: Mapping[str, str] = field(default_factory=dict)
    environment: str | None = None
    environments: Mapping[str, str] = field(default_factory=dict)
    authenticated: bool = False
    trust_by_group: Mapping[str, int] = field(default_factory=dict)
    users_share: float = 0.0
    first_seen: Callable[[str], str] = field(default_factory=FirstSeen)
    budget_seconds: float = ADMISSION_BUDGET_SECONDS


@dataclass(frozen=True)
class AdmissionRequest:
    """A request read: its uid (for the answer), the action, the attested actor, dry run."""

    uid: str
    action: dict[str, Any]
    actor: dict[str, Any] | None  # attested only over an authenticated transport
    dry_run: bool


def stable_object(obj: Any) -> Any:
    """The object without what changes on every write or retry (``VOLATILE_METADATA``,
    ``status``)."""
    if not isinstance(obj, Mapping):
        return obj
    kept = {k: v for k, v in obj.items() if k != "status"}
    metadata = kept.get("metadata")
    if isinstance(metadata, Mapping):
        kept["metadata"] = {k: v for k, v in metadata.items() if k not in VOLATILE_METADATA}
    return kept


def read_review(payload: Any, options: AdmissionOptions | None = None) -> AdmissionRequest:
    """An AdmissionReview (bytes, text or parsed) as the action it proposes.

    Raises ``AdapterError`` (one line) when it cannot be read."""
    options = options or AdmissionOptions()
    review = mapping(read_json(payload, "the AdmissionReview"), "the AdmissionReview")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise AdapterError(
            f"the body is {review.get('apiVersion')!r} {review.get('kind')!r}: this webhook "
            f"reads {API_VERSION} AdmissionReview (set admissionReviewVersions: [v1])"
        )
    request = mapping(review.get("request"), "request")
    uid = text(request.get("uid"), "request.uid")
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise AdapterError(f"request.operation is {operation!r}, not one of {OPERATIONS}")
    resource = mapping(request.get("resource"), "request.resource")
    resource_name = text(resource.get("resource"), "request.resource.resource")
    sub = request.get("subResource") or ""
    if not isinstance(sub, str):
        raise AdapterError("request.subResource is not a string")
    namespace = request.get("namespace") or ""
    obj = request.get("object")
    old = request.get("oldObject")
    current = obj if isinstance(obj, Mapping) else old if isinstance(old, Mapping) else {}
    metadata = current.get("metadata") if isinstance(current, Mapping) else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = request.get("name") or metadata.get("name") or metadata.get("generateName") or ""
    if not isinstance(name, str) or not isinstance(namespace, str):
        raise AdapterError("request.name and request.namespace must be strings")
    user = mapping(request.get("userInfo"), "request.userInfo")
    username = text(user.get("username"), "request.userInfo.username")
    dry_run = request.get("dryRun") is True

    stable = {
        "operation": operation,
        "resource": {k: resource.get(k) for k in ("group", "version", "resource")},
        "subResource": sub,
        "namespace": namespace,
        "name": name,
        "object": stable_object(obj),
        "oldObject": stable_object(old),
        "user": username,
    }
    key = fingerprint(stable)
    kind, change_type, reversible = _kind(resource_name, sub, operation, obj, old)
    target = name or resource_name
    where = f"{namespace}/" if namespace else ""
    summary = f"{operation} {resource_name}{'/' + sub if sub else ''} {where}{target}"
    action: dict[str, Any] = {
        "id": f"k8s-{key[:16]}",
        "kind": kind,
        "target": target,
        "environment": _environment(metadata, namespace, options),
        "actor": {"kind": _actor_kind(username), "id": username, "trust": 0},
        "change": {
            "type": change_type,
            "lines": _changed_leaves(stable_object(old), stable_object(obj)),
            "summary": summary,
        },
        "reversible": reversible,
        "blast_radius": {"users_share": options.users_share, "services": [target]},
        "cost": {"estimated_usd": 0},
        "requested_at": options.first_seen(key),
    }
    actor = _attested(user, username, options) if options.authenticated else None
    return AdmissionRequest(uid, action, actor, dry_run)


def _kind(resource: str, sub: str, operation: str, obj: Any, old: Any) -> tuple[str, str, bool]:
    """(kind, change.type, reversible) by resource and operation."""
    if operation == "CONNECT":  # exec, attach, port-forward: a person inside a pod
        return "run_job", "access", True
    if operation == "DELETE" and resource in STATEFUL_RESOURCES:
        return "data_deletion", "data", False
    if resource in RBAC and operation == "DELETE":
        return "iam_revoke", "access", True
    if resource == "pods" and operation == "DELETE":
        return "restart", "infra", True
    if resource in WORKLOADS:
        if sub == "scale" or (operation == "UPDATE" and _only_replicas_changed(obj, old)):
            return "scale", "infra", True
        if operation == "UPDATE" and _only_restart_changed(obj, old):
            return "restart", "infra", True
        if operation == "DELETE":
            return "infra_change", "infra", True
        return "deploy", "code", True
    kind, change_type = KIND_BY_RESOURCE.get(resource, ("config_change", "config"))
    return kind, change_type, True


def _spec(obj: Any) -> Any:
    return stable_object(obj).get("spec") if isinstance(obj, Mapping) else None


def _only_replicas_changed(obj: Any, old: Any) -> bool:
    new_spec, old_spec = _spec(obj), _spec(old)
    if not isinstance(new_spec, Mapping) or not isinstance(old_spec, Mapping):
        return False
    rest = lambda s: {k: v for k, v in s.items() if k != "replicas"}  # noqa: E731
    return rest(new_spec) == rest(old_spec) and new_spec.get("replicas") != old_spec.get("replicas")


RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets


def _only_restart_changed(obj: Any, old: Any) -> bool:
    def without_restart(o: Any) -> Any:
        spec = _spec(o)
        if not isinstance(spec, Mapping):
            return None
        template = dict(spec.get("template") or {})
        meta = dict(template.get("metadata") or {})
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k != RESTARTED_AT}  # fmt: skip
        meta["annotations"] = annotations
        template["metadata"] = meta
        return {**spec, "template": template}

    stripped_new, stripped_old = without_restart(obj), without_restart(old)
    return stripped_new is not None and stripped_new == stripped_old and _spec(obj) != _spec(old)


def _changed_leaves(old: Any, new: Any, limit: int = 100_000) -> int:
    """How many leaf values differ between the objects: the change's size in lines."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return min(
            limit,
            sum(_changed_leaves(old.get(k), new.get(k), limit) for k in {*old, *new}),
        )
    if isinstance(old, list) and isinstance(new, list):
        longest = max(len(old), len(new))
        return min(
            limit,
            sum(
                _changed_leaves(
                    old[i] if i < len(old) else None, new[i] if i < len(new) else None, limit
                )
                for i in range(longest)
            ),
        )
    if old == new:
        return 0
    if isinstance(old, Mapping | list) or isinstance(new, Mapping | list):
        return _leaves(old) + _leaves(new)
    return 1


def _leaves(value: Any) -> int:
    if isinstance(value, Mapping):
        return sum(_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_leaves(v) for v in value)
    return 0 if value is None else 1


def _environment(metadata: Mapping[str, Any], namespace: str, options: AdmissionOptions) -> str:
    labels = metadata.get("labels")
    if isinstance(labels, Mapping) and isinstance(labels.get(options.environment_label), str):
        return environment_of(labels[options.environment_label], options.environments)
    if namespace in options.namespaces:
        return environment_of(options.namespaces[namespace], options.environments)
    return environment_of(options.environment, options.environments)


def _actor_kind(username: str) -> str:
    # service accounts and the control plane's own users are automation
    return "automation" if username.startswith("system:") else "human"


def _attested(user: Mapping[str, Any], username: str, options: AdmissionOptions) -> dict[str, Any]:
    groups = [g for g in user.get("groups") or [] if isinstance(g, str)][:64]
    trust = max((options.trust_by_group.get(g, 0) for g in groups), default=0)
    return {"kind": _actor_kind(username), "id": username, "trust": trust, "groups": groups}


# -- the answer -----------------------------------------------------------------------------

JudgeAdmission = Callable[[AdmissionRequest], VerdictLike]
"""Judges a request. For ``dry_run`` requests it must record nothing (no ledger row)."""


def response(uid: str, allowed: bool, message: str = "", warnings: list[str] | None = None,
             code: int = 403) -> dict[str, Any]:  # fmt: skip
    """An ``admission.k8s.io/v1`` AdmissionReview response."""
    answer: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        answer["status"] = {"code": code, "message": message or "refused by policy"}
    if warnings:
        answer["warnings"] = warnings
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": answer}


def refusal(payload: Any, message: str, code: int = 403) -> dict[str, Any]:
    """A refusal of a review that could not be judged, with the uid when one can be read."""
    uid = ""
    try:
        data = read_json(payload, "the AdmissionReview")
        if isinstance(data, Mapping) and isinstance(data.get("request"), Mapping):
            found = data["request"].get("uid")
            uid = found if isinstance(found, str) else ""
    except AdapterError:
        pass
    return response(uid, False, message, code=code)


def answer(request: AdmissionRequest, verdict: VerdictLike) -> dict[str, Any]:
    """The response for a judged request: allowed only for ``allow``."""
    warnings = [_warning(m) for m in messages(verdict.warnings)]
    if verdict.decision == "allow":
        return response(request.uid, True, warnings=warnings)
    if verdict.fail_closed:
        detail = "; ".join(e.get("message", "") for e in verdict.errors[:3])
        message = f"aigre-policy failed closed ({verdict.decision}): {detail}"
    else:
        message = f"aigre-policy: {verdict.decision}: " + "; ".join(messages(verdict.fired))
    if verdict.decision == "require_approval":
        digest = verdict.to_dict().get("gate", {}).get("action_digest", "")
        message += f"; approvers: {', '.join(verdict.approvers)}"
        message += f"; approve action {request.action['id']} {digest}".rstrip() + ", then retry"
    elif verdict.decision == "escalate":
        message += f"; waiting for {', '.join(verdict.escalate_to) or 'a reviewer'}"
    return response(request.uid, False, message, warnings)


def _warning(message: str) -> str:
    # The API server shows warnings to the client; keep them printable and short.
    printable = "".join(c if c.isprintable() else " " for c in message)
    return printable[:240]


def admit(payload: Any, judge: JudgeAdmission, options: AdmissionOptions | None = None
          ) -> dict[str, Any]:  # fmt: skip
    """The AdmissionReview response to a request body; never raises, never allows in error.

    The judge runs in a worker thread; past ``options.budget_seconds`` the request is
    refused (the API server's own timeout would otherwise apply its failurePolicy).
    """
    options = options or AdmissionOptions()
    try:
        request = read_review(payload, options)
    except AdapterError as exc:
        return refusal(payload, f"aigre-policy cannot read the request: {exc}", code=400)
    except Exception as exc:  # never a traceback, never an allow
        return refusal(payload, f"aigre-policy failed: {type(exc).__name__}", code=500)
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(judge(request))
        except BaseException as exc:  # reported below as a refusal
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"admission-{request.uid[:8]}", daemon=True).start()
    if not done.wait(options.budget_seconds):
        return response(
            request.uid,
            False,
            f"aigre-policy did not judge the request within {options.budget_seconds:g} s",
            code=504,
        )
    result = outcome[0]
    if isinstance(result, BaseException):
        message = f"aigre-policy failed: {type(result).__name__}: {result}"
        return response(request.uid, False, message[:500], code=500)
    try:
        return answer(request, result)
    except Exception as exc:
        return response(request.uid, False, f"aigre-policy failed: {type(exc).__name__}", code=500)


def pack_admission_judge(
    pack: Any, context: Mapping[str, Any] | None = None, usage: Any = None
) -> JudgeAdmission:
    """Judges with the pack alone (``eval``): ``context.actor`` is the attested actor when the
    request carries one; nothing is recorded, so dry runs need nothing more."""
    from aigre_policy.adapters.common import now_iso

    def judge(request: AdmissionRequest) -> VerdictLike:
        attested = dict(context or {})
        attested.setdefault("now", now_iso())
        if request.actor is not None:
            attested["actor"] = request.actor
        return pack.evaluate(request.action, attested, usage)

    return judge


def gate_admission_judge(gate: Any, preview_usage: Mapping[str, Any] | None = None
                         ) -> JudgeAdmission:  # fmt: skip
    """Judges with a gate: ``gate.check`` records the decision; a dry run is judged by the
    gate's pack without its ledger (nothing recorded; usage limits read ``preview_usage``,
    0 by default: the real request is judged again in full)."""
    from aigre_policy.adapters.common import now_iso

    def judge(request: AdmissionRequest) -> VerdictLike:
        if not request.dry_run:
            return gate.check(request.action, actor=request.actor)
        context: dict[str, Any] = {"now": now_iso(gate.clock())}  # the gate's clock
        if request.actor is not None:
            context["actor"] = request.actor
        usage = dict(preview_usage or {})
        names = gate.pack.input_schema.get("properties", {}).get("usage", {}).get("properties", {})
        for name in names:
            usage.setdefault(name, 0)
        return gate.pack.evaluate(request.action, context, usage)

    return judge
