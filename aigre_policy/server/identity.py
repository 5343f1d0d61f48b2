"""Who is calling: the actor a request's credentials stand for, never what its body claims.

``Authorization: Bearer <credential>`` (or ``X-API-Key: <key>``) carries an API key,
looked up by its SHA-256 among the configured keys, or a JWT, verified against the
keys of a JWKS file (signature, expiry, issuer, audience) and read for the actor's
claims. The caller's actor is what the gate attests as ``context.actor``; its scopes
say which APIs it may use.

With no ``auth`` section the server has no identity source: every request is the
anonymous caller, with no attested actor (a pack treats it as the least trusted) and
no right to approve. ``cli.serve`` allows that only on a loopback address.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aigre_policy.server.config import SCOPES, AuthConfig, JwtConfig


class Unauthenticated(Exception):
    """No usable credentials: answered 401 with this reason."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: its name (for logs), attested actor and scopes."""

    name: str
    actor: dict[str, Any] | None
    scopes: frozenset[str]
    expires: float | None = None  # a token's ``exp``; an API key does not expire

    def may(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Caller("anonymous", None, frozenset({"check", "evaluate", "authzen", "read"}))


def key_digest(key: str) -> str:
    """The hex SHA-256 a configuration stores for an API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Authenticator:
    """Maps a request's headers to its ``Caller``; raises ``Unauthenticated``."""

    def __init__(self, auth: AuthConfig | None):
        self.required = auth is not None
        self._keys = {}
        self._jwt: _JwtVerifier | None = None
        if auth is not None:
            self._keys = {
                k.sha256: Caller(k.name, k.actor.to_dict(), frozenset(k.scopes))
                for k in auth.api_keys
            }
            if auth.jwt is not None:
                self._jwt = _JwtVerifier(auth.jwt)

    def caller(self, headers: Mapping[str, str]) -> Caller:
        if not self.required:
            return ANONYMOUS
        credential = _credential(headers)
        if credential is None:
            raise Unauthenticated("credentials required: Authorization: Bearer <key or token>")
        if credential.count(".") == 2 and self._jwt is not None:
            return self._jwt.caller(credential)
        digest = key_digest(credential)
        # looked up by the digest of the presented key: timing tells nothing about a stored key
        found = self._keys.get(digest)
        if found is None:
            raise Unauthenticated("unknown API key")
        return found

    def by_key_digest(self, digest: str) -> Caller | None:
        """The caller of the configured API key with this SHA-256, if it is (still) one."""
        return self._keys.get(digest)


def _credential(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            return rest.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class _JwtVerifier:
    """JWTs checked against a JWKS file read once at start (and again on reload)."""

    def __init__(self, config: JwtConfig):
        import jwt  # PyJWT: a core dependency already (bundle signatures)

        self._jwt = jwt
        self.config = config
        try:
            data = json.loads(config.jwks_file.read_text(encoding="utf-8"))
            self._keys = jwt.PyJWKSet.from_dict(data)
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise ValueError(f"{config.jwks_file}: not a usable JWKS file: {exc}") from None
        self._by_kid = {k.key_id: k for k in self._keys.keys if k.key_id}

    def caller(self, token: str) -> Caller:
        jwt = self._jwt
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(header.get("kid"))
            # the JWK itself, not its raw key: PyJWT then verifies with the JWK's own
            # algorithm, so a header naming another one (ES256 over an RSA key) is refused
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(self.config.algorithms),
                issuer=self.config.issuer,
                audience=self.config.audience,
                leeway=self.config.leeway_seconds,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self.config.audience is not None,
                    "verify_iss": self.config.issuer is not None,
                },
            )
        except (jwt.PyJWTError, TypeError, ValueError) as exc:  # a forged header is a refusal
            raise Unauthenticated(f"bearer token refused: {exc}") from None
        return self._caller(claims)

    def _key(self, kid: Any) -> Any:
        if kid is not None and kid in self._by_kid:
            return self._by_kid[kid]
        if kid is None and len(self._keys.keys) == 1:
            return self._keys.keys[0]
        raise self._jwt.InvalidTokenError("no key of the JWKS file matches the token's `kid`")

    def _caller(self, claims: Mapping[str, Any]) -> Caller:
        names = self.config.claims
        ident = claims.get(names.id)
        if not isinstance(ident, str) or not ident:
            raise Unauthenticated(f"bearer token refused: claim `{names.id}` is not a string")
        kind = claims.get(names.kind, names.default_kind)
        trust = claims.get(names.trust, names.default_trust)
        if kind not in ("human", "llm", "automation"):
            raise Unauthenticated(f"bearer token refused: claim `{names.kind}` is {kind!r}")
        if isinstance(trust, bool) or not isinstance(trust, int) or not 0 <= trust <= 5:
            raise Unauthenticated(f"bearer token refused: claim `{names.trust}` is {trust!r}")
        actor: dict[str, Any] = {"id": ident, "kind": kind, "trust": trust}
        groups = claims.get(names.groups)
        if isinstance(groups, list) and all(isinstance(g, str) for g in groups):
            actor["groups"] = groups
        scopes = claims.get(names.scopes)
        if isinstance(scopes, str):
            granted = frozenset(scopes.split()) & frozenset(SCOPES)
        else:
            granted = frozenset(names.default_scopes)
        expires = claims.get("exp")
        return Caller(ident, actor, granted, float(expires) if expires is not None else None)
