"""``aigre-policy build``: compile a pack to an OPA bundle (``.tar.gz``).

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from aigre_policy.checked import MANIFEST
from aigre_policy.cli.common import EXIT_FAILURES, UsageError, parse_overrides
from aigre_policy.cli.keys import add_signing_arguments, signer_from
from aigre_policy.diagnostics import Severity, render
from aigre_policy.rego.bundle import (
    Bundle,
    BundleSignatureError,
    build_pack_bundle,
    read_bundle,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build",
        help="compile a pack to an OPA bundle",
        description="Compile a pack to Rego and write an OPA bundle (a gzipped tarball with "
        "the modules, data.json and .manifest; with --signing-key, .signatures.json as OPA "
        "signs bundles). The same sources give the same bytes. "
        "Exit 1 if the pack does not compile, 2 on misuse or a key that cannot sign.",
    )
    parser.add_argument("pack", help="the pack directory")
    parser.add_argument(
        "-o",
        "--output",
        default="bundle.tar.gz",
        metavar="FILE",
        help="where to write the bundle (default: bundle.tar.gz)",
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="ENVELOPE.NAME=VALUE",
        help="override an envelope value in the bundle's data (repeatable)",
    )
    add_signing_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    overrides = parse_overrides(args.set)
    pack = Path(args.pack)
    if not (pack / MANIFEST).is_file():
        raise UsageError(f"no pack at {pack} (no {MANIFEST})")
    signer = signer_from(args)
    try:
        built = build_pack_bundle(pack, overrides, signer)
    except BundleSignatureError as exc:
        raise UsageError(f"cannot sign the bundle: {exc}") from None
    for diagnostic in _at_pack_levels(pack, built.diagnostics):
        style = "red" if diagnostic.severity is Severity.ERROR else "yellow"
        console.print(
            render(diagnostic, built.sources),
            style=style,
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        console.print()
    if built.archive is None:
        reason = built.problem or f"{pack} does not compile; run `aigre-policy check {pack}`"
        console.print(f"[red]error:[/red] {reason}", highlight=False)
        return EXIT_FAILURES
    output = Path(args.output)
    _write_atomically(output, built.archive)
    # read back, and with the signer's public half: what is deployed verifies
    if signer is None:
        bundle = read_bundle(built.archive, str(output))
    else:
        verifier = signer.key.verifier()
        bundle = read_bundle(built.archive, str(output), verifier, signer.signed_scope)
    signed = f", signed {signer.key.algorithm} (kid {signer.key.key_id!r})" if signer else ""
    console.print(
        f"[green]built[/green] {output}: {_named(bundle)}, "
        f"{len(bundle.modules)} modules, revision {bundle.revision}{signed}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _at_pack_levels(pack: Path, diagnostics: Sequence[Any]) -> list[Any]:
    """The target warnings at the level the pack's ``lint:`` sets (``W603: off`` hides it),
    as ``check --strict`` and ``ci`` report them."""
    from aigre_policy.lint.config import read_config
    from aigre_policy.lint.target import TARGET_CODES

    if not any(d.code in TARGET_CODES for d in diagnostics):
        return list(diagnostics)
    config = read_config(pack)
    kept = [d if d.code not in TARGET_CODES else config.apply(d) for d in diagnostics]
    return [d for d in kept if d is not None]


def _named(bundle: Bundle) -> str:
    pack = bundle.metadata.get("pack", {})
    return f"{pack.get('name', '?')} {pack.get('version', '?')}"


def _write_atomically(target: Path, content: bytes) -> None:
    """Readers of ``target`` see the old bundle or the new one, never half of one."""
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"cannot write {target}: no directory {directory}")
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
