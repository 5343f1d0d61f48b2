"""The server's configuration file (``--config server.yaml``), validated with pydantic.

Every field is optional: without a file the server runs on loopback with no identity
source (see ``identity``). A file that does not validate is refused with one line per
problem, ``file:line:col: message``, so a deployment never starts on a half-read config.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aigre_policy.server.webhooks_config import WebhooksConfig
from aigre_policy.yamlio import read_document

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a proposed action is a few KiB
SCOPES = ("check", "evaluate", "authzen", "approve", "read")
Scope = Literal["check", "evaluate", "authzen", "approve", "read"]
DEFAULT_SCOPES: tuple[Scope, ...] = ("check", "approve", "read")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ConfigError(Exception):
    """The configuration cannot be used; each line of the message is one problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActorConfig(_Strict):
    """The actor a credential stands for, attested as ``context.actor``."""

    id: str = Field(min_length=1)
    kind: Literal["human", "llm", "automation"]
    trust: int = Field(ge=0, le=5)
    on_behalf_of: str | None = None
    groups: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "trust": self.trust}
        if self.on_behalf_of:
            data["on_behalf_of"] = self.on_behalf_of
        if self.groups:
            data["groups"] = list(self.groups)
        return data


class ApiKey(_Strict):
    """An API key, stored as the hex SHA-256 of the key (keys are random, 128 bits or more)."""

    name: str = Field(min_length=1)
    sha256: str
    actor: ActorConfig
    # `evaluate` and `authzen` let the caller attest the input or the subject: never by default
    scopes: tuple[Scope, ...] = DEFAULT_SCOPES

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        value = value.strip().lower()
        if not _SHA256.match(value):
            raise ValueError("must be the 64 hex digits of the key's SHA-256")
        return value


class JwtClaims(_Strict):
    """Which claims of a verified token give the actor."""

    id: str = "sub"
    kind: str = "aigre_kind"
    trust: str = "aigre_trust"
    groups: str = "groups"
    scopes: str = "scope"
    default_kind: Literal["human", "llm", "automation"] = "human"
    default_trust: int = Field(default=0, ge=0, le=5)
    default_scopes: tuple[Scope, ...] = DEFAULT_SCOPES


class JwtConfig(_Strict):
    """Bearer tokens signed by a key of a JWKS file."""

    jwks_file: Path
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway_seconds: int = Field(default=30, ge=0, le=600)
    claims: JwtClaims = Field(default_factory=JwtClaims)


class AuthConfig(_Strict):
    api_keys: tuple[ApiKey, ...] = ()
    jwt: JwtConfig | None = None


class Limits(_Strict):
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=256, le=64 << 20)
    max_evaluations: int = Field(default=1000, ge=1, le=100_000)
    # checks waiting for the worker thread past this fail closed at once instead of queueing
    max_queued_checks: int = Field(default=1000, ge=1, le=1_000_000)


class TelemetryConfig(_Strict):
    """OpenTelemetry export over OTLP/HTTP: a span per check, a log record per decision."""

    otlp_endpoint: str = Field(min_length=1)  # e.g. http://collector:4318
    service_name: str = "aigre-policy"
    traces: bool = True
    logs: bool = True


class InboxConfig(_Strict):
    """The approvals inbox in the browser (``/inbox``): its sign-in sessions."""

    session_minutes: int = Field(default=480, ge=5, le=7 * 24 * 60)
    # the key that signs session cookies; default a random one per process (replicas
    # behind a load balancer share a file, or every replica asks people to sign in again)
    session_secret_file: Path | None = None


class NotifyWebhook(_Strict):
    """A receiver of notifications (``notify.webhooks``)."""

    url: str = Field(pattern=r"^https?://")
    name: str | None = None  # how the outbox names it; the URL when absent
    format: Literal["json", "slack"] = "json"
    secret_file: Path | None = None  # signs generic JSON bodies (X-Aigre-Signature)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class NotifyConfig(_Strict):
    """Webhooks told when a decision waits for people (``gate.notify``)."""

    webhooks: tuple[NotifyWebhook, ...] = Field(min_length=1)
    inbox_url: str | None = None  # this server's /inbox/ as approvers reach it
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_seconds: float = Field(default=2.0, gt=0, le=3600)
    max_backoff_seconds: float = Field(default=600.0, gt=0, le=86400)
    renotify_minutes: float | None = Field(default=60.0, ge=0)


class _SourceConfig(_Strict):
    timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    ttl_seconds: float = Field(default=30.0, ge=0, le=3600)
    max_age_seconds: float = Field(default=300.0, ge=0, le=86400)
    # an unknown value: left out (the pack's guard decides), fail the check closed, or this
    when_unknown: Literal["omit", "fail"] | float = "omit"


class PagerDutyConfig(_SourceConfig):
    url: str = Field(pattern=r"^https?://")  # the incidents endpoint
    token_file: Path | None = None
    services: dict[str, tuple[str, ...]] = {}  # a PagerDuty service's name -> action targets


class PrometheusConfig(_SourceConfig):
    url: str = Field(pattern=r"^https?://")  # the server; /api/v1/query is added
    query: str = Field(min_length=1)  # {target}: the action's target, when plain
    field: Literal["error_budget_remaining"] = "error_budget_remaining"


class ContextConfig(_Strict):
    """Where the gate reads ``context`` from (``providers``)."""

    pagerduty: PagerDutyConfig | None = None
    prometheus: tuple[PrometheusConfig, ...] = ()


class ClaimsDirectoryConfig(_Strict):
    """Approver groups learnt from approvers' verified credentials (a JWT's groups claim)."""

    remember_minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60)


class ServerConfig(_Strict):
    """The whole file; paths in it are relative to the file's folder."""

    ledger: str | None = None
    log: Path | None = None
    auth: AuthConfig | None = None
    directory: dict[str, tuple[str, ...]] = {}  # approver group -> members
    directory_file: Path | None = None  # {group: [people]}, read again when it changes
    directory_from_claims: ClaimsDirectoryConfig | None = None
    notify: NotifyConfig | None = None
    context: ContextConfig | None = None
    approval_lifetime_hours: Annotated[float, Field(gt=0)] | None = 24.0
    limits: Limits = Field(default_factory=Limits)
    authzen: Path | None = None  # the AuthZEN mapping; default: the pack's authzen.yaml
    shadow: Path | None = None
    telemetry: TelemetryConfig | None = None
    reload: bool = True  # watch the pack directory and swap in new versions
    reload_seconds: float = Field(default=2.0, gt=0, le=3600)  # how often to look
    webhooks: WebhooksConfig | None = None  # the adapters' routes (webhooks_config.py)
    inbox: InboxConfig = Field(default_factory=InboxConfig)
    # the Host headers served (DNS rebinding); default: the loopback names when bound there
    allowed_hosts: tuple[str, ...] | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in value or ():
            wild = pattern.startswith("*") and pattern != "*" and not pattern.startswith("*.")
            if not pattern or "*" in pattern[1:] or wild:
                raise ValueError(
                    f"{pattern!r}: a host, `*.example.com` or `*` (a wildcard only in front)"
                )
        return value

    def resolved(self, base: Path) -> ServerConfig:
        """Paths made relative to ``base`` (the config file's folder)."""

        def at(path: Path | None) -> Path | None:
            return None if path is None or path.is_absolute() else base / path

        update: dict[str, Any] = {
            name: at(getattr(self, name)) or getattr(self, name)
            for name in ("log", "authzen", "shadow", "directory_file")
        }
        if self.notify is not None:
            hooks = tuple(
                w.model_copy(update={"secret_file": at(w.secret_file) or w.secret_file})
                for w in self.notify.webhooks
            )
            update["notify"] = self.notify.model_copy(update={"webhooks": hooks})
        if self.auth is not None and self.auth.jwt is not None:
            jwt = self.auth.jwt
            jwks = at(jwt.jwks_file) or jwt.jwks_file
            update["auth"] = self.auth.model_copy(
                update={"jwt": jwt.model_copy(update={"jwks_file": jwks})}
            )
        if self.context is not None and self.context.pagerduty is not None:
            pd = self.context.pagerduty
            token = at(pd.token_file) or pd.token_file
            update["context"] = self.context.model_copy(
                update={"pagerduty": pd.model_copy(update={"token_file": token})}
            )
        if self.webhooks is not None:
            update["webhooks"] = self.webhooks.resolved(base)
        secret = at(self.inbox.session_secret_file)
        if secret is not None:
            update["inbox"] = self.inbox.model_copy(update={"session_secret_file": secret})
        return self.model_copy(update=update)


def load_config(path: str | Path | None) -> ServerConfig:
    """The configuration at ``path`` (YAML or JSON), or the defaults when ``None``.

    Raises ``ConfigError`` with one ``file:line:col: message`` line per problem.
    """
    if path is None:
        return ServerConfig()
    path = Path(path)
    document, problems = read_document(path)
    if document is None:
        reasons = [located(path, p) for p in problems] or [f"{path}: unreadable"]
        raise ConfigError("\n".join(reasons))
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1:1: the configuration must be a mapping")
    try:
        config = ServerConfig.model_validate(data)
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            span = document.span_of(loc)
            where = ".".join(str(k) for k in loc) or "<file>"
            found.append((span.line, span.column, f"{where}: {err['msg']}"))
        lines = [f"{path}:{line}:{column}: {text}" for line, column, text in sorted(found)]
        raise ConfigError("\n".join(lines)) from None
    return config.resolved(path.resolve().parent)


def located(path: Path, problem: Any) -> str:
    """A reading problem as ``file:line:col: message`` (``file: message`` without a place)."""
    span = getattr(problem, "span", None)
    if span is None:
        return f"{path}: {problem.message}"
    return f"{path}:{span.line}:{span.column}: {problem.message}"
