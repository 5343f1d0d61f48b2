"""The signing and verification options that ``build``, ``inspect``, ``eval`` and ``test``
share, read into ``rego.signing`` keys. A key that cannot be used is misuse (exit 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aigre_policy.cli.common import UsageError

# rego.signing (PyJWT, cryptography) loads only when a key is given; these two names are
# the ones it defines, held equal by tests/test_cli_start.py.
ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"),
)
DEFAULT_KEY_ID = "default"

KEY_HELP = "a PEM file, PEM text, or (with --signing-alg HS256/384/512) the HMAC secret"


def add_signing_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("signing (OPA's .signatures.json)")
    group.add_argument("--signing-key", metavar="KEY", help=f"sign the bundle: {KEY_HELP}")
    group.add_argument(
        "--signing-alg",
        choices=ALGORITHMS,
        metavar="ALG",
        help="the JWT algorithm (default: from the PEM key: RSA RS256, EC ES256/384/512, "
        "Ed25519 EdDSA; a shared secret needs HS256, HS384 or HS512)",
    )
    group.add_argument(
        "--signing-key-id",
        default=DEFAULT_KEY_ID,
        metavar="ID",
        help=f"the key id written as the JWT's `kid` (default {DEFAULT_KEY_ID!r}, as OPA)",
    )
    group.add_argument(
        "--claims-file",
        metavar="FILE",
        help="a JSON object of extra claims for the JWT payload (iss, iat, scope...)",
    )
    group.add_argument("--scope", help="the JWT's `scope` claim, which verifiers must expect")


def add_verification_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("verification of a signed bundle")
    group.add_argument(
        "--verification-key", metavar="KEY", help=f"verify the bundle's signature: {KEY_HELP}"
    )
    group.add_argument(
        "--signing-alg",
        choices=ALGORITHMS,
        metavar="ALG",
        help="the algorithm the bundle was signed with (default: from the key)",
    )
    group.add_argument(
        "--scope", default="", help="the scope the signature must carry (default: none)"
    )


def signer_from(args: argparse.Namespace) -> Any:
    """The signer ``build``'s options describe; ``None`` when not signing."""
    if args.signing_key is None:
        for option in ("claims_file", "scope"):
            if getattr(args, option):
                raise UsageError(f"--{option.replace('_', '-')} needs --signing-key")
        return None
    from aigre_policy.rego.signing import (
        BundleSigner,
        SignatureError,
        read_key_argument,
        signing_key,
    )

    try:
        material = read_key_argument(args.signing_key, args.signing_alg)
        key = signing_key(material, args.signing_alg, args.signing_key_id)
    except SignatureError as exc:
        raise UsageError(f"--signing-key: {exc}") from None
    try:
        return BundleSigner(key, _claims(args.claims_file), args.scope)
    except SignatureError as exc:
        raise UsageError(f"--claims-file: {exc}") from None


def verification_from(args: argparse.Namespace) -> Any:
    """The key ``--verification-key`` names; ``None`` when none was given."""
    if getattr(args, "verification_key", None) is None:
        for option, value in (("--signing-alg", args.signing_alg), ("--scope", args.scope)):
            if value:
                raise UsageError(f"{option} needs --verification-key")
        return None
    from aigre_policy.rego.signing import SignatureError, read_key_argument, verification_key

    try:
        material = read_key_argument(args.verification_key, args.signing_alg)
        return verification_key(material, args.signing_alg)
    except SignatureError as exc:
        raise UsageError(f"--verification-key: {exc}") from None


def _claims(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        claims = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--claims-file: cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--claims-file: {path} is not JSON ({exc})") from None
    if not isinstance(claims, dict):
        raise UsageError(f"--claims-file: {path} must hold a JSON object")
    return claims
