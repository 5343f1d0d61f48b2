"""Terraform and OpenTofu plans (``terraform show -json``): one action per resource change,
one verdict for the plan.

A plan applies as a unit, so its verdict is the lattice's most restrictive of the
verdicts of its resource changes, and its evidence lists every resource: address,
decision, the rules that fired. A plan that cannot be read whole (malformed JSON, a
``format_version`` of another major version, an errored plan) gets the pack's
fail-closed decision with one line saying why; so does a resource change the adapter
cannot map (an action it does not know, a value it needs that is unknown until apply).

The mapping is in ``docs/adapters.md``: the kind by resource type (``KIND_BY_TYPE``),
``reversible`` false for a delete or replace of a stateful type (``STATEFUL_TYPES``),
the environment from a tag or the workspace, the recurring cost from an Infracost
JSON (``costs_from_infracost``), the network paths a firewall opens (``network.py``)
when the pack's schema declares ``action.network``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aigre_policy.adapters.common import (
    AdapterError,
    Judge,
    VerdictLike,
    environment_of,
    fingerprint,
    mapping,
    now_iso,
    read_json,
    text,
)
from aigre_policy.adapters.network import NETWORK_TYPES, network_of
from aigre_policy.lattice import LATTICE

# `terraform show -json` promises: a new minor version only adds; another major version
# is incompatible and must be rejected. 0.x is what Terraform 0.12 to 0.15 wrote.
KNOWN_MAJOR_VERSIONS = ("0", "1")

# Each resource change's `change.actions`, as the format documents them.
ACTIONS = {
    ("no-op",): "no-op",
    ("read",): "read",
    ("create",): "create",
    ("update",): "update",
    ("delete",): "delete",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("forget",): "forget",
}
SKIPPED = frozenset({"no-op", "read"})  # nothing changes in the world

# Resource types whose deletion loses data: a delete or a replace of one cannot be undone.
STATEFUL_TYPES = frozenset(
    {
        # AWS
        "aws_db_instance",
        "aws_rds_cluster",
        "aws_dynamodb_table",
        "aws_s3_bucket",
        "aws_ebs_volume",
        "aws_efs_file_system",
        "aws_elasticache_cluster",
        "aws_elasticache_replication_group",
        "aws_redshift_cluster",
        "aws_docdb_cluster",
        "aws_neptune_cluster",
        "aws_kinesis_stream",
        "aws_sqs_queue",
        "aws_msk_cluster",
        "aws_opensearch_domain",
        "aws_elasticsearch_domain",
        "aws_kms_key",
        "aws_backup_vault",
        # Google Cloud
        "google_sql_database_instance",
        "google_sql_database",
        "google_storage_bucket",
        "google_bigquery_dataset",
        "google_bigquery_table",
        "google_spanner_instance",
        "google_spanner_database",
        "google_bigtable_instance",
        "google_bigtable_table",
        "google_compute_disk",
        "google_filestore_instance",
        "google_redis_instance",
        "google_kms_crypto_key",
        # Azure
        "azurerm_managed_disk",
        "azurerm_storage_account",
        "azurerm_storage_container",
        "azurerm_mssql_server",
        "azurerm_mssql_database",
        "azurerm_postgresql_server",
        "azurerm_postgresql_flexible_server",
        "azurerm_mysql_flexible_server",
        "azurerm_cosmosdb_account",
        "azurerm_redis_cache",
        "azurerm_key_vault",
        "azurerm_key_vault_key",
        # Kubernetes provider
        "kubernetes_persistent_volume",
        "kubernetes_persistent_volume_claim",
        "kubernetes_namespace",
    }
)

# The kind by resource type: the first pattern that matches the type wins. A type that
# none matches is an `infra_change`. (kind on create/update, kind on delete, change.type)
KIND_BY_TYPE: tuple[tuple[str, str, str, str], ...] = (
    (r"(_iam_|_role_assignment$|_role_policy|_policy_attachment$|^vault_policy$)",
     "iam_grant", "iam_revoke", "access"),
    (r"(_s3_bucket_policy$|_s3_bucket_acl$|_s3_bucket_public_access_block$)",
     "bucket_policy", "bucket_policy", "access"),
    (r"(_route53_record$|_dns_record_set$|^azurerm_dns_|^cloudflare_record$|^cloudflare_dns_record$)",
     "dns_change", "dns_change", "infra"),
    (r"(_acm_certificate|_ssl_certificate$|_key_vault_certificate$|^tls_)",
     "certificate_rotation", "certificate_rotation", "infra"),
    (r"(_secretsmanager_secret|_secret_manager_secret|_key_vault_secret$|^vault_.*secret)",
     "secret_rotation", "secret_rotation", "config"),
    (r"(_ssm_parameter$|_appconfig_|_feature_flag)",
     "config_change", "config_change", "config"),
)  # fmt: skip
_KIND_PATTERNS = tuple((re.compile(p), c, d, t) for p, c, d, t in KIND_BY_TYPE)

TAG_ATTRIBUTES = ("tags", "labels")  # where providers keep tags: AWS, Azure / Google


@dataclass(frozen=True)
class PlanOptions:
    """How a plan's resource changes become proposed actions.

    ``environment``: every resource's environment, when the whole plan lands in one.
    Otherwise ``environment_tag`` is read from each resource's ``tags`` or ``labels``
    (after the change; before it, for a delete), then ``workspace``; a name is mapped
    by ``environments`` then the common names (``prod``, ``stg``, ...), and an unknown
    name or none at all is production. ``actor`` is the proposal's actor (a claim).
    ``users_share`` is the blast radius given to each resource: a plan says nothing
    about users. ``monthly_costs``: address to monthly cost delta in USD
    (``costs_from_infracost``). ``stateful_types`` extends ``STATEFUL_TYPES``.
    """

    environment: str | None = None
    environment_tag: str = "environment"
    workspace: str | None = None
    environments: Mapping[str, str] = field(default_factory=dict)
    actor: Mapping[str, Any] = field(
        default_factory=lambda: {"kind": "automation", "id": "terraform", "trust": 0}
    )
    users_share: float = 0.0
    monthly_costs: Mapping[str, float] = field(default_factory=dict)
    stateful_types: frozenset[str] = frozenset()
    requested_at: str | None = None  # the plan's `timestamp` when it has one, else now
    # Action fields the pack's input schema declares (``declared_action_fields(pack)``):
    # ``network`` is filled from firewall and security-group resources only when declared.
    action_fields: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ResourceChange:
    """One resource change of the plan: its proposed action, or why it has none."""

    address: str
    type: str
    actions: str  # create, update, delete, replace, forget
    action: dict[str, Any] | None
    problem: str | None = None  # set when the change cannot be judged: it fails closed


@dataclass(frozen=True)
class Plan:
    """A plan read: its version, and its resource changes that change something."""

    format_version: str
    terraform_version: str | None
    changes: tuple[ResourceChange, ...]
    skipped: int  # no-op and read changes


def read_plan(payload: Any, options: PlanOptions | None = None) -> Plan:
    """A plan (bytes, text or parsed JSON) as resource changes with their actions.

    Raises ``AdapterError`` (one line) when the plan as a whole cannot be read.
    """
    options = options or PlanOptions()
    plan = mapping(read_json(payload, "the plan"), "the plan")
    version = plan.get("format_version")
    if not isinstance(version, str) or version.split(".")[0] not in KNOWN_MAJOR_VERSIONS:
        raise AdapterError(
            f"the plan's format_version is {version!r}: this adapter reads versions "
            f"{' and '.join(v + '.x' for v in KNOWN_MAJOR_VERSIONS)} of `terraform show -json`"
        )
    if plan.get("errored") is True:
        raise AdapterError("the plan errored: Terraform could not finish it, so it is not judged")
    if "resource_changes" not in plan and "planned_values" not in plan:
        raise AdapterError("the document has no resource_changes: it is not a plan (a state?)")
    raw_changes = plan.get("resource_changes", [])
    if not isinstance(raw_changes, list):
        raise AdapterError("the plan's resource_changes is not a list")
    plan_id = fingerprint(raw_changes)[:12]
    requested_at = options.requested_at
    if requested_at is None:
        stamp = plan.get("timestamp")
        requested_at = stamp if isinstance(stamp, str) and stamp else now_iso()
    changes: list[ResourceChange] = []
    skipped = 0
    for index, raw in enumerate(raw_changes):
        change = _resource_change(raw, index, plan_id, requested_at, options)
        if change is None:
            skipped += 1
        else:
            changes.append(change)
    terraform_version = plan.get("terraform_version")
    return Plan(
        version,
        terraform_version if isinstance(terraform_version, str) else None,
        tuple(changes),
        skipped,
    )


def _resource_change(
    raw: Any, index: int, plan_id: str, requested_at: str, options: PlanOptions
) -> ResourceChange | None:
    where = f"resource_changes[{index}]"
    address = raw.get("address") if isinstance(raw, Mapping) else None
    address = address if isinstance(address, str) and address else where
    try:
        raw = mapping(raw, where)
        resource_type = text(raw.get("type"), f"{where}.type")
        change = mapping(raw.get("change"), f"{address}: change")
        actions = change.get("actions")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise AdapterError(f"{address}: change.actions is not a list of names")
        name = ACTIONS.get(tuple(actions))
        if name is None:
            raise AdapterError(
                f"{address}: change.actions {actions} is not an action this "
                "adapter knows, so it is not judged"
            )
        if name in SKIPPED:
            return None  # a no-op, or a data source read: nothing changes
        # a data source only ever reads: `mode: data` on a change that writes is judged
        action = _action(address, resource_type, name, change, plan_id, requested_at, options)
    except AdapterError as exc:
        return ResourceChange(
            address,
            str(raw.get("type", "")) if isinstance(raw, Mapping) else "",
            "unknown",
            None,
            str(exc),
        )
    return ResourceChange(address, resource_type, name, action)


def _action(
    address: str,
    resource_type: str,
    name: str,
    change: Mapping[str, Any],
    plan_id: str,
    requested_at: str,
    options: PlanOptions,
) -> dict[str, Any]:
    stateful = resource_type in STATEFUL_TYPES or resource_type in options.stateful_types
    destroys = name in ("delete", "replace")
    kind, change_type = _kind(resource_type, name)
    if destroys and stateful:
        kind, change_type = "data_deletion", "data"
    reason = change.get("action_reason")
    summary = f"{name} {address}" + (f" ({reason})" if isinstance(reason, str) else "")
    replace_paths = change.get("replace_paths")
    if name == "replace" and isinstance(replace_paths, list) and replace_paths:
        paths = [".".join(str(step) for step in p) for p in replace_paths if isinstance(p, list)]
        summary += f"; replaced because {', '.join(paths)} changed"
    monthly = options.monthly_costs.get(address, 0.0)
    action: dict[str, Any] = {
        "id": f"tf-{plan_id}:{address}",
        "kind": kind,
        "target": address,
        "environment": _environment(address, name, change, options),
        "actor": dict(options.actor),
        "change": {"type": change_type, "summary": summary},
        "reversible": not (destroys and stateful),
        "blast_radius": {"users_share": options.users_share},
        "cost": {"estimated_usd": 0, "recurring_monthly_usd": max(monthly, 0.0)},
        "requested_at": requested_at,
    }
    if "network" in options.action_fields and resource_type in NETWORK_TYPES and name != "delete":
        opened = network_of(
            resource_type, change.get("after"), change.get("after_unknown"), address
        )
        if opened:
            action["network"] = opened
    return action


def _kind(resource_type: str, name: str) -> tuple[str, str]:
    for pattern, kind, on_delete, change_type in _KIND_PATTERNS:
        if pattern.search(resource_type):
            return (on_delete if name == "delete" else kind), change_type
    return "infra_change", "infra"


def _environment(address: str, name: str, change: Mapping[str, Any], options: PlanOptions) -> str:
    if options.environment is not None:
        return environment_of(options.environment, options.environments)
    side = "before" if name == "delete" else "after"
    values = change.get(side)
    unknown = change.get("after_unknown") if side == "after" else None
    key = options.environment_tag
    for attribute in TAG_ATTRIBUTES:
        if _is_unknown(unknown, attribute, key):
            raise AdapterError(
                f"{address}: its {attribute}.{key} is unknown until apply, so its "
                "environment cannot be told"
            )
        tags = values.get(attribute) if isinstance(values, Mapping) else None
        if isinstance(tags, Mapping) and isinstance(tags.get(key), str):
            return environment_of(tags[key], options.environments)
    return environment_of(options.workspace, options.environments)


def _is_unknown(unknown: Any, attribute: str, key: str) -> bool:
    """Whether ``after_unknown`` marks the attribute, or its key, as known only after apply."""
    if unknown is True:
        return True
    if not isinstance(unknown, Mapping):
        return False
    marked = unknown.get(attribute)
    return marked is True or (isinstance(marked, Mapping) and marked.get(key) is True)


def costs_from_infracost(payload: Any) -> dict[str, float]:
    """Monthly cost deltas by resource address from an Infracost JSON
    (``infracost diff --format json``, or ``breakdown``): each project's
    ``diff.resources[]`` (else ``breakdown.resources[]``) ``name`` and ``monthlyCost``."""
    data = mapping(read_json(payload, "the cost file"), "the cost file")
    projects = data.get("projects")
    if not isinstance(projects, list):
        raise AdapterError("the cost file has no projects list: is it Infracost's JSON?")
    costs: dict[str, float] = {}
    for index, project in enumerate(projects):
        project = mapping(project, f"projects[{index}]")
        section = project.get("diff") or project.get("breakdown") or {}
        resources = mapping(section, f"projects[{index}].diff").get("resources") or []
        if not isinstance(resources, list):
            raise AdapterError(f"projects[{index}].diff.resources is not a list")
        for resource in resources:
            resource = mapping(resource, f"projects[{index}] resource")
            name = text(resource.get("name"), f"projects[{index}] resource name")
            cost = resource.get("monthlyCost")
            if cost is None:
                continue  # usage-based, not priced
            try:
                value = float(cost)
            except (TypeError, ValueError):
                raise AdapterError(f"{name}: monthlyCost {cost!r} is not a number") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise AdapterError(f"{name}: monthlyCost {cost!r} is not a finite number")
            costs[name] = costs.get(name, 0.0) + value
    return costs


# -- the plan's verdict ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceVerdict:
    address: str
    actions: str
    decision: str
    fired: tuple[str, ...]
    warnings: tuple[str, ...]
    fail_closed: bool
    verdict: dict[str, Any] | None  # the full verdict document; None when it was not judged
    problem: str | None = None


@dataclass(frozen=True)
class PlanVerdict:
    """The plan's one verdict: the most restrictive of its resources', with theirs."""

    decision: str
    fail_closed: bool
    resources: tuple[ResourceVerdict, ...]
    errors: tuple[dict[str, Any], ...]
    pack: dict[str, Any]
    format_version: str | None = None
    terraform_version: str | None = None
    skipped: int = 0

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def deciding(self) -> list[ResourceVerdict]:
        """The resources whose verdict is the plan's (all of them when it is ``allow``)."""
        return [r for r in self.resources if r.decision == self.decision]

    @property
    def approvers(self) -> list[str]:
        return _union(r.verdict.get("approvers", []) for r in self.deciding if r.verdict)

    @property
    def escalate_to(self) -> list[str]:
        return _union(r.verdict.get("escalate_to", []) for r in self.deciding if r.verdict)

    @property
    def summary(self) -> str:
        """One line: the decision and the resources that set it, with their rules."""
        if self.errors and not self.resources:
            return f"{self.decision} (failed closed): {self.errors[0]['message']}"
        if self.decision == "allow":
            return f"allow: {len(self.resources)} resource change(s), none held"
        named = "; ".join(
            f"{r.address} ({', '.join(r.fired) or r.problem or 'failed closed'})"
            for r in self.deciding
        )
        return f"{self.decision}: {named}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "fail_closed": self.fail_closed,
            "summary": self.summary,
            "approvers": self.approvers,
            "escalate_to": self.escalate_to,
            "deciding": [r.address for r in self.deciding],
            "resources": [
                {
                    "address": r.address,
                    "actions": r.actions,
                    "decision": r.decision,
                    "fired": list(r.fired),
                    "warnings": list(r.warnings),
                    "fail_closed": r.fail_closed,
                    **({"problem": r.problem} if r.problem else {}),
                    **({"verdict": r.verdict} if r.verdict is not None else {}),
                }
                for r in self.resources
            ],
            "errors": list(self.errors),
            "pack": self.pack,
            "plan": {
                "format_version": self.format_version,
                "terraform_version": self.terraform_version,
                "unchanged": self.skipped,
            },
        }


def _union(lists: Any) -> list[str]:
    seen: dict[str, None] = {}
    for items in lists:
        for item in items:
            seen.setdefault(item, None)
    return list(seen)


def judge_plan(
    payload: Any,
    judge: Judge,
    *,
    fail_closed: str,
    pack: Mapping[str, Any] | None = None,
    options: PlanOptions | None = None,
) -> PlanVerdict:
    """Judge every resource change of a plan and combine the verdicts; never raises.

    ``fail_closed`` is the pack's fail-closed decision: the plan's decision is never
    weaker than it when the plan, or one of its changes, cannot be read or judged.
    """
    pack_ref = dict(pack or {})
    try:
        plan = read_plan(payload, options)
    except AdapterError as exc:
        problem = {"kind": "input", "path": "plan", "message": str(exc)}
        return PlanVerdict(fail_closed, True, (), (problem,), pack_ref)
    verdicts: list[ResourceVerdict] = []
    errors: list[dict[str, Any]] = []
    for change in plan.changes:
        if change.action is None:
            message = change.problem or "not judged"
            errors.append({"kind": "input", "path": change.address, "message": message})
            verdicts.append(
                ResourceVerdict(
                    change.address, change.actions, fail_closed, (), (), True, None, message
                )
            )
            continue
        verdicts.append(_judged(change, judge, fail_closed, errors))
    decisions = [v.decision for v in verdicts]
    decision = max(decisions, key=LATTICE.__getitem__, default="allow")
    failed = any(v.fail_closed for v in verdicts)
    return PlanVerdict(
        decision,
        failed,
        tuple(verdicts),
        tuple(errors),
        pack_ref,
        plan.format_version,
        plan.terraform_version,
        plan.skipped,
    )


def _judged(
    change: ResourceChange, judge: Judge, fail_closed: str, errors: list[dict[str, Any]]
) -> ResourceVerdict:
    assert change.action is not None
    try:
        verdict: VerdictLike = judge(change.action)
        document = verdict.to_dict()
        decision = verdict.decision
        if decision not in LATTICE:
            raise ValueError(f"the judge answered {decision!r}")
    except Exception as exc:  # a judge that fails never lets the plan through
        message = f"{change.address}: the judge failed: {type(exc).__name__}: {exc}"
        errors.append({"kind": "engine", "path": change.address, "message": message})
        return ResourceVerdict(
            change.address, change.actions, fail_closed, (), (), True, None, message
        )
    for problem in verdict.errors:
        errors.append({**problem, "path": f"{change.address}: {problem.get('path', '')}"})
    return ResourceVerdict(
        change.address,
        change.actions,
        decision,
        tuple(r["id"] for r in verdict.fired),
        tuple(r["id"] for r in verdict.warnings),
        verdict.fail_closed,
        document,
    )
