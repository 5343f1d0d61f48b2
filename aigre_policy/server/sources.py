"""What the server builds from its config for the gate: the approver directory and the
notifier, both shared by every version of the pack it serves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aigre_policy.gate import StaticDirectory
from aigre_policy.gate.directories import AnyDirectory, ClaimedGroups, FileDirectory
from aigre_policy.gate.notify import Notify, Webhook
from aigre_policy.gate.outbox import Notifier
from aigre_policy.gate.providers import PagerDutyIncidents, PrometheusValue, Sources
from aigre_policy.gate.world import Directory
from aigre_policy.server.config import ServerConfig


def claimed_groups(config: ServerConfig) -> ClaimedGroups | None:
    """Groups learnt from approvers' verified credentials, when the config asks for it."""
    claims = config.directory_from_claims
    return None if claims is None else ClaimedGroups(claims.remember_minutes * 60)


def directory_for(config: ServerConfig, claimed: ClaimedGroups | None) -> Directory:
    """``directory`` (static), ``directory_file`` (reloaded) and learnt groups, united."""
    sources: list[Directory] = [StaticDirectory(dict(config.directory))]
    if config.directory_file is not None:
        sources.append(FileDirectory(config.directory_file))
    if claimed is not None:
        sources.append(claimed)
    return sources[0] if len(sources) == 1 else AnyDirectory(sources)


def notifier_for(config: ServerConfig, ledger: Any) -> Notifier | None:
    """The notifier of the config's ``notify`` section, its worker started."""
    section = config.notify
    if section is None:
        return None
    hooks = tuple(
        Webhook(
            w.url,
            w.format,
            secret=_secret(w.secret_file),
            name=w.name or "",
            timeout=w.timeout_seconds,
        )
        for w in section.webhooks
    )
    renotify = section.renotify_minutes
    notify = Notify(
        hooks,
        inbox_url=section.inbox_url,
        max_attempts=section.max_attempts,
        backoff=section.backoff_seconds,
        max_backoff=max(section.max_backoff_seconds, section.backoff_seconds),
        renotify_after=None if renotify is None else timedelta(minutes=renotify),
    )
    notifier = Notifier(ledger, notify)
    notifier.start()
    return notifier


def _secret(path: Any) -> str | None:
    if path is None:
        return None
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < 16:
        raise ValueError(f"{path}: a webhook secret needs 16 characters or more")
    return secret


def context_for(config: ServerConfig) -> Sources | None:
    """The context provider of the config's ``context`` section."""
    section = config.context
    if section is None:
        return None
    sources: list[Any] = []

    def options(c: Any) -> dict[str, Any]:
        return {
            "timeout": c.timeout_seconds,
            "ttl": c.ttl_seconds,
            "max_age": max(c.max_age_seconds, c.ttl_seconds),
            "when_unknown": c.when_unknown,
        }

    pd = section.pagerduty
    if pd is not None:
        token = pd.token_file.read_text(encoding="utf-8").strip() if pd.token_file else None
        services = {name: list(targets) for name, targets in pd.services.items()}
        sources.append(PagerDutyIncidents(pd.url, token=token, services=services, **options(pd)))
    for p in section.prometheus:
        sources.append(PrometheusValue(p.url, p.query, field=p.field, **options(p)))
    return Sources(tuple(sources))
