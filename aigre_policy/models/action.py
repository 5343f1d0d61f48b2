"""The canonical proposed action and the context it lands in.

These models are the contract between a tool that proposes an action and the
packs that judge it. Their JSON Schema (``docs/schemas/``) is what a pack's
compiler types its rules against, so every field here is something a rule can
read. Optional fields are absent, never ``null``: a rule that reads one must give
a default (``??``) or guard it (``has``).

The proposed action is a claim: whoever proposes it (possibly a hostile agent)
writes every field. Fields that describe authority rather than the action itself
(who proposes it, which approvals it holds, when it was proposed) are marked
``x-aigre-claim`` in the schema, with ``x-aigre-attested-as`` naming the field
the gate attests instead. ``Context`` is attested (``x-aigre-attested``): the
gate fills it from its own sources, overwriting whatever the proposal says.

Every list has a ``maxItems``: a rule's cost grows with the lists it walks, so
an input past these bounds gets the pack's fail-closed verdict instead of an
evaluation that takes seconds (``docs/packs.md``, "Input bounds").
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema

# Schema annotations that tell a claim from an attestation (read by the linter, L502).
CLAIM = "x-aigre-claim"
ATTESTED = "x-aigre-attested"
ATTESTED_AS = "x-aigre-attested-as"

# Operational bounds on every list of the builtin schema. Generous for real actions
# (the blast-radius ceiling is 8 services), small enough that the costliest nesting
# in a rule (services x incidents x incident services) stays well under a second.
MAX_SERVICES = 128
MAX_USD = 1e12  # a trillion USD: past any real action; keeps sums of costs finite
MAX_REGIONS = 32
MAX_APPROVALS = 32
MAX_GROUPS = 64
MAX_FREEZES = 32
MAX_INCIDENTS = 32
MAX_ENVIRONMENTS = 8
MAX_ALERTS = 64
MAX_NETWORK_RULES = 64
MAX_PERMISSIONS = 64
MAX_TABLES = 32
MAX_ANALYSES = 32
MAX_BACKUPS = 32
MAX_MIGRATIONS = 32

# Names of services, regions and resources, compared by rules with `==` and `in`. They
# are not constrained yet: " payments-api" or "Payments-API" would slip past a freeze on
# payments-api (docs/packs.md, identifiers).
Identifier = str


def _claim(attested_as: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {CLAIM: True}
    if attested_as is not None:
        extra[ATTESTED_AS] = attested_as
    return extra


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)


class ActionKind(StrEnum):
    ROLLBACK = "rollback"
    ROLL_FORWARD = "roll_forward"
    DEPLOY = "deploy"
    RESTART = "restart"
    SCALE = "scale"
    THROTTLE = "throttle"
    FEATURE_FLAG = "feature_flag"
    CONFIG_CHANGE = "config_change"
    CODE_PATCH = "code_patch"
    SCHEMA_MIGRATION = "schema_migration"
    INFRA_CHANGE = "infra_change"
    FAILOVER = "failover"
    CACHE_FLUSH = "cache_flush"
    RUN_JOB = "run_job"
    DNS_CHANGE = "dns_change"
    CERTIFICATE_ROTATION = "certificate_rotation"
    SECRET_ROTATION = "secret_rotation"
    IAM_GRANT = "iam_grant"
    IAM_REVOKE = "iam_revoke"
    BUCKET_POLICY = "bucket_policy"
    DATA_DELETION = "data_deletion"
    DATA_EXPORT = "data_export"
    DATA_MIGRATION = "data_migration"
    CREDENTIAL_REVOKE = "credential_revoke"
    KEY_DISABLE = "key_disable"
    KEY_DELETION = "key_deletion"
    SECRET_READ = "secret_read"


class Environment(StrEnum):
    PRODUCTION = "production"
    STAGING = "staging"
    DEVELOPMENT = "development"
    SANDBOX = "sandbox"


class ActorKind(StrEnum):
    HUMAN = "human"
    LLM = "llm"
    AUTOMATION = "automation"


class ChangeType(StrEnum):
    CONFIG = "config"
    CODE = "code"
    INFRA = "infra"
    DATA = "data"
    ACCESS = "access"


class DataClassification(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class Signal(StrEnum):
    ALERT = "alert"
    INCIDENT = "incident"
    SLO_BURN = "slo_burn"
    TICKET = "ticket"
    SCHEDULE = "schedule"
    REQUEST = "request"


class IncidentSeverity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"


class DeliveryStrategy(StrEnum):
    CANARY = "canary"
    BLUE_GREEN = "blue_green"
    ROLLING = "rolling"


class AnalysisStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    RUNNING = "running"
    INCONCLUSIVE = "inconclusive"


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ALL = "all"


class DatabaseOperation(StrEnum):
    ADD_TABLE = "add_table"
    ADD_COLUMN = "add_column"
    ADD_INDEX = "add_index"
    BACKFILL = "backfill"
    RENAME = "rename"
    ALTER_TYPE = "alter_type"
    DROP_COLUMN = "drop_column"
    DROP_TABLE = "drop_table"
    TRUNCATE = "truncate"
    DELETE_ROWS = "delete_rows"


class MigrationPhase(StrEnum):
    EXPAND = "expand"
    MIGRATE = "migrate"
    CONTRACT = "contract"


class BackupKind(StrEnum):
    SNAPSHOT = "snapshot"
    PITR = "pitr"


class Actor(_Model):
    """Who proposes the action."""

    kind: ActorKind
    id: str = Field(min_length=1, description="Stable identity: a user, a pipeline, an agent.")
    model: str | None = Field(None, description="The model behind an LLM actor.")
    trust: int = Field(ge=0, le=5, description="Trust level granted to this actor, 0 to 5.")
    on_behalf_of: str | None = Field(None, description="The person an agent acts for.")


class Change(_Model):
    """What the action changes, and how much."""

    type: ChangeType
    lines: int = Field(0, ge=0, description="Lines touched by a code or config change.")
    files: int = Field(0, ge=0)
    architectural: bool = Field(False, description="Changes how components fit together.")
    summary: str | None = None


class Rollback(_Model):
    """How the action is undone."""

    plan: str = Field(min_length=1)
    tested: bool = False
    automatic: bool = False
    estimated_minutes: float = Field(0, ge=0)


class BlastRadius(_Model):
    """How much of the system the action can hurt."""

    users_share: float = Field(ge=0, le=1, description="Share of users affected, 0 to 1.")
    services: list[Identifier] = Field(
        default_factory=list, max_length=MAX_SERVICES, description="Services touched."
    )
    regions: list[Identifier] = Field(default_factory=list, max_length=MAX_REGIONS)


class Cost(_Model):
    """Money the action spends."""

    # bounded so sums of costs and usage stay finite (no overflow, exact whole cents)
    estimated_usd: float = Field(
        ge=0, le=MAX_USD, description="One-off cost of carrying out the action."
    )
    recurring_monthly_usd: float = Field(
        0, ge=0, le=MAX_USD, description="Cost it adds every month."
    )


class DataTouched(_Model):
    """Data the action reads, moves or destroys."""

    classification: DataClassification
    personal_data: bool = False
    subject_regions: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_REGIONS,
        description="Jurisdictions of the data subjects: eu, us, uk, ...",
    )
    stored_in: list[Identifier] = Field(
        default_factory=list, max_length=MAX_REGIONS, description="Cloud regions holding it."
    )
    processed_in: Identifier | None = Field(None, description="Region the action runs from.")
    records: int = Field(0, ge=0)
    public_access: bool = Field(False, description="The action makes the data publicly readable.")


class Delivery(_Model):
    """The step of a progressive rollout (canary, blue/green) that the action takes."""

    strategy: DeliveryStrategy
    revision: str = Field(min_length=1, description="The release being rolled out.")
    step: int = Field(1, ge=1, description="The rollout step this action takes, from 1.")
    from_share: float = Field(0, ge=0, le=1, description="Traffic on the revision before.")
    to_share: float = Field(ge=0, le=1, description="Traffic on the revision after this step.")


class NetworkRule(_Model):
    """One rule the action opens: who may reach what, on which ports."""

    cidr: str = Field(
        min_length=1, description="Source (ingress) or destination (egress): 0.0.0.0/0, ::/0, ..."
    )
    protocol: Protocol = Protocol.TCP
    from_port: int = Field(0, ge=0, le=65535, description="First port; absent means 0.")
    to_port: int = Field(65535, ge=0, le=65535, description="Last port; absent means 65535.")


class Network(_Model):
    """Network exposure the action opens (a security group, firewall or network policy)."""

    ingress: list[NetworkRule] = Field(default_factory=list, max_length=MAX_NETWORK_RULES)
    egress: list[NetworkRule] = Field(default_factory=list, max_length=MAX_NETWORK_RULES)


class AccessGrant(_Model):
    """What an iam_grant grants: the role, to whom, for how long."""

    principal: str = Field(min_length=1, description="Who receives the role.")
    role: str = Field(min_length=1, description="The role as the cloud names it: roles/editor.")
    permissions: list[str] = Field(
        default_factory=list, max_length=MAX_PERMISSIONS, description="Inline permissions."
    )
    scope: str | None = Field(None, description="Project, account or resource it applies to.")
    expires_at: datetime | None = Field(None, description="When the grant lapses; absent: never.")
    break_glass: bool = Field(False, description="Emergency access, paged and reviewed after.")


class DatabaseChange(_Model):
    """What a schema migration or data change does to a database."""

    operation: DatabaseOperation
    tables: list[Identifier] = Field(default_factory=list, max_length=MAX_TABLES)
    rows: int = Field(0, ge=0, description="Rows in the tables it touches.")
    phase: MigrationPhase | None = Field(
        None, description="Its step in an expand/migrate/contract sequence."
    )


class PriorApproval(_Model):
    """An approval for this action: claimed in a proposal, attested in the context."""

    by: str = Field(min_length=1)
    group: str = Field(min_length=1)
    at: datetime


class HeldApproval(PriorApproval):
    """An approval the gate holds for this action: bound to its digest, checked and in date."""

    reusable: bool = Field(
        False, description="The approval is not used up when the action it approves runs."
    )


class AttestedActor(_Model):
    """Who the gate authenticated as proposing the action, from its identity source."""

    kind: ActorKind
    id: str = Field(min_length=1, description="Authenticated identity.")
    model: str | None = Field(None, description="The model behind an LLM actor.")
    trust: int = Field(ge=0, le=5, description="Trust level granted to this actor, 0 to 5.")
    on_behalf_of: str | None = Field(None, description="The person an agent acts for.")
    groups: list[str] = Field(
        default_factory=list, max_length=MAX_GROUPS, description="Groups the actor belongs to."
    )


class Justification(_Model):
    """The signal the proposer says prompted the action (a claim: see ``ProposedAction``)."""

    signal: Signal
    ref: str | None = Field(None, description="Alert, incident or ticket id.")
    summary: str | None = None


class ProposedAction(_Model):
    """One operational action, proposed by a person, a pipeline or an LLM agent."""

    id: str = Field(min_length=1)
    kind: ActionKind
    target: str = Field(description="The service or resource acted on.")
    environment: Environment
    actor: Actor = Field(
        description="Who claims to propose it; rules read the attested `context.actor`.",
        json_schema_extra=_claim("context.actor"),
    )
    change: Change
    reversible: bool
    rollback: Rollback | None = None
    blast_radius: BlastRadius
    cost: Cost
    data: DataTouched | None = None
    delivery: Delivery | None = None
    network: Network | None = None
    access: AccessGrant | None = None
    database: DatabaseChange | None = None
    approvals: list[PriorApproval] = Field(
        default_factory=list,
        max_length=MAX_APPROVALS,
        description="Approvals the proposer claims; rules read the attested `context.approvals`.",
        json_schema_extra=_claim("context.approvals"),
    )
    justification: Justification | None = Field(
        None,
        description=(
            "The signal the proposer cites; rules count an alert or incident only when "
            "its ref is in the attested `context.alerts_firing` or `context.incidents_open`."
        ),
        json_schema_extra=_claim(),
    )
    requested_at: datetime = Field(
        description="When the proposer says it proposed the action; `context.now` is the clock.",
        json_schema_extra=_claim(),
    )


class ChangeFreeze(_Model):
    """A window in which changes are held."""

    name: str
    starts_at: datetime
    ends_at: datetime
    services: list[Identifier] = Field(
        default_factory=list, max_length=MAX_SERVICES, description="Empty means every service."
    )
    environments: list[Environment] = Field(default_factory=list, max_length=MAX_ENVIRONMENTS)


class Incident(_Model):
    id: str
    severity: IncidentSeverity
    services: list[Identifier] = Field(default_factory=list, max_length=MAX_SERVICES)


class Alert(_Model):
    """An alert firing now, from the gate's monitoring source."""

    id: str = Field(min_length=1, description="The alert's id, as a justification cites it.")
    service: Identifier | None = Field(None, description="The service the alert is about.")
    summary: str | None = None


class RolloutAnalysis(_Model):
    """A rollout analysis (Argo Rollouts, Flagger, Spinnaker Kayenta) the gate reads."""

    target: Identifier
    revision: str = Field(min_length=1, description="The release the analysis judged.")
    status: AnalysisStatus
    traffic_share: float = Field(ge=0, le=1, description="Traffic the revision had meanwhile.")
    finished_at: datetime


class Backup(_Model):
    """The latest restorable point of a datastore, from the gate's backup source."""

    target: Identifier
    kind: BackupKind
    restorable_at: datetime = Field(description="The latest moment a restore can return to.")


class ForwardOnlyMigration(_Model):
    """A forward-only migration applied since the release a rollback would return to."""

    id: str = Field(min_length=1)
    target: Identifier
    applied_at: datetime | None = None


class Context(_Model):
    """The world the action lands in, attested by the gate. Time arrives here, not a clock."""

    model_config = ConfigDict(json_schema_extra={ATTESTED: True})

    now: datetime
    actor: AttestedActor | None = Field(
        None,
        description="The authenticated actor; absent, packs treat it as the least trusted one.",
    )
    approvals: list[HeldApproval] = Field(
        default_factory=list,
        max_length=MAX_APPROVALS,
        description="Approvals the gate holds for this action, checked against its store.",
    )
    change_freezes: list[ChangeFreeze] = Field(default_factory=list, max_length=MAX_FREEZES)
    error_budget_remaining: float | None = Field(
        None, ge=0, le=1, description="Share of the target's error budget left, 0 to 1."
    )
    incidents_open: list[Incident] = Field(default_factory=list, max_length=MAX_INCIDENTS)
    alerts_firing: list[Alert] = Field(
        default_factory=list,
        max_length=MAX_ALERTS,
        description="Alerts firing now; an alert justification counts only when listed here.",
    )
    rollout_analyses: list[RolloutAnalysis] = Field(
        default_factory=list,
        max_length=MAX_ANALYSES,
        description="Latest rollout analyses of the targets in play.",
    )
    backups: list[Backup] = Field(
        default_factory=list,
        max_length=MAX_BACKUPS,
        description="Latest restorable points of the datastores in play.",
    )
    forward_only_migrations: list[ForwardOnlyMigration] = Field(
        default_factory=list,
        max_length=MAX_MIGRATIONS,
        description="Forward-only migrations a rollback of the action's target would cross.",
    )


class _OptionalIsAbsent(GenerateJsonSchema):
    """Publish ``X | None = None`` as an optional ``X``: absent, never ``null``."""

    def nullable_schema(self, schema: Any) -> dict[str, Any]:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: Any) -> dict[str, Any]:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", 0) is None:
            del json_schema["default"]
        return json_schema


def json_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The published JSON Schema of a model (draft 2020-12)."""
    schema = model.model_json_schema(schema_generator=_OptionalIsAbsent)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
