"""The ``webhooks:`` section of the server's configuration: which adapter routes are on.

Each route is served only when its key is present (``admission``, ``github``,
``terraform``); an absent one answers 404. Secrets (the GitHub webhook secret, a static
token, an App's private key) are given as ``{value: ...}``, ``{env: NAME}`` or ``{file:
PATH}``, read once when the server starts, held as ``SecretStr`` and never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(_Strict):
    """Where a secret is read from: exactly one of ``value``, ``env``, ``file``."""

    value: SecretStr | None = None
    env: str | None = Field(default=None, min_length=1)
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        given = [n for n in ("value", "env", "file") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `value`, `env`, `file`")
        return self

    def resolved(self, base: Path) -> SecretSource:
        if self.file is None or self.file.is_absolute():
            return self
        return self.model_copy(update={"file": base / self.file})

    def read(self, what: str) -> str:
        """The secret; ``ValueError`` naming where it was looked for (never its value)."""
        if self.value is not None:
            secret = self.value.get_secret_value()
        elif self.env is not None:
            secret = os.environ.get(self.env, "")
            if not secret:
                raise ValueError(f"{what}: the environment variable {self.env} is not set")
        else:
            assert self.file is not None
            try:
                secret = self.file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"{what}: cannot read {self.file}: {exc.strerror}") from None
            secret = secret.strip() if not secret.lstrip().startswith("-----") else secret
        if not secret.strip():
            raise ValueError(f"{what} is empty")
        return secret


class AdmissionWebhook(_Strict):
    """``POST /v1/admission``: the Kubernetes validating webhook."""

    # the credentials that are the API server's: only these may call the route, and only
    # their requests' `userInfo` is attested (any other `check` caller could claim anyone)
    callers: tuple[str, ...] = Field(min_length=1)
    environment_label: str = "environment"
    namespaces: dict[str, str] = {}
    environment: str | None = None
    environments: dict[str, str] = {}
    trust_by_group: dict[str, int] = {}
    users_share: float = Field(default=0.0, ge=0, le=1)
    budget_seconds: float = Field(default=5.0, gt=0, le=25)


class GitHubApp(_Strict):
    """A GitHub App's credentials: its private key signs a JWT that buys installation tokens."""

    app_id: str | int
    installation_id: int
    private_key: SecretSource


class GitHubWebhook(_Strict):
    """``POST /v1/github/deployment-protection``: the deployment protection rule."""

    secret: SecretSource
    api_url: str = "https://api.github.com"
    # how the server calls GitHub: a static token (tests, a personal token) or an App
    token: SecretSource | None = None
    app: GitHubApp | None = None
    reviewer_groups: dict[str, tuple[str, ...]] | None = None  # default: from `directory`
    trust: dict[str, int] = {}
    default_trust: int = Field(default=0, ge=0, le=5)
    environments: dict[str, str] = {}
    users_share: float = Field(default=0.0, ge=0, le=1)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _one_credential(self) -> GitHubWebhook:
        if (self.token is None) == (self.app is None):
            raise ValueError("give exactly one of `token` and `app`")
        return self


class TerraformWebhook(_Strict):
    """``POST /v1/terraform/plan``: a plan judged through the gate."""

    environment: str | None = None
    environment_tag: str = "environment"
    workspace: str | None = None
    environments: dict[str, str] = {}
    stateful_types: tuple[str, ...] = ()
    users_share: float = Field(default=0.0, ge=0, le=1)


class WebhooksConfig(_Strict):
    admission: AdmissionWebhook | None = None
    github: GitHubWebhook | None = None
    terraform: TerraformWebhook | None = None

    def resolved(self, base: Path) -> WebhooksConfig:
        """Secret files made relative to ``base`` (the config file's folder)."""
        if self.github is None:
            return self
        github = self.github
        update: dict[str, Any] = {"secret": github.secret.resolved(base)}
        if github.token is not None:
            update["token"] = github.token.resolved(base)
        if github.app is not None:
            key = github.app.private_key.resolved(base)
            update["app"] = github.app.model_copy(update={"private_key": key})
        return self.model_copy(update={"github": github.model_copy(update=update)})
