"""``aigre-policy inspect``: what an OPA bundle holds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from aigre_policy.cli import output
from aigre_policy.cli.common import EXIT_FAILURES, UsageError
from aigre_policy.cli.keys import add_verification_arguments, verification_from
from aigre_policy.rego.bundle import Bundle, BundleError, read_bundle


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "inspect",
        help="list what an OPA bundle holds",
        description="Read a bundle (.tar.gz), check the layout rules OPA enforces, and list its "
        "manifest, modules, data roots and entrypoint; with --verification-key, verify its "
        "signature first. Exit 1 if the file is not a valid bundle or its signature does not "
        "verify, 2 if it or the key cannot be read.",
    )
    parser.add_argument("bundle", help="the bundle file")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_verification_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    key = verification_from(args)
    path = Path(args.bundle)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        bundle = read_bundle(blob, str(path), key, args.scope)
    except BundleError as exc:
        message = Text.assemble(("error:", "red"), f" {exc}")
        output.console(stderr=True).print(message, highlight=False, soft_wrap=True)
        return EXIT_FAILURES
    summary = describe(bundle, str(path))
    if args.format == "json":
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    else:
        show(console, summary)
    return 0


def describe(bundle: Bundle, file: str) -> dict[str, Any]:
    """The inspect document: manifest fields, modules, data roots and the entrypoint."""
    return {
        "file": file,
        "manifest": bundle.manifest,
        "entrypoint": bundle.entrypoint,
        "modules": [{"path": m.path, "package": m.package, "size": m.size} for m in bundle.modules],
        "data_roots": [
            {"root": root, "keys": sorted(value) if isinstance(value, dict) else []}
            for root in bundle.data_roots()
            for value in [bundle.data_at(root)]
        ],
        "files": [{"path": path, "size": size} for path, size in bundle.files],
        "signature": signature_summary(bundle),
    }


def signature_summary(bundle: Bundle) -> dict[str, Any] | None:
    """``None`` for an unsigned bundle; ``verified`` false when no key was given."""
    if bundle.signature is not None:
        return bundle.signature.to_dict()
    return {"verified": False} if bundle.signed else None


def show(console: Console, summary: dict[str, Any]) -> None:
    manifest = summary["manifest"]
    meta = manifest.get("metadata", {})
    pack = meta.get("pack", {})
    compiler = meta.get("compiler", {})
    rows = [
        ("bundle", summary["file"]),
        ("revision", manifest.get("revision", "")),
        ("roots", ", ".join(manifest.get("roots", [""])) or '"" (everything)'),
    ]
    if "rego_version" in manifest:
        rows.append(("rego_version", str(manifest["rego_version"])))
    if pack:
        rows.append(
            ("pack", f"{pack.get('name', '?')} {pack.get('version', '?')} {pack.get('digest', '')}")
        )
    if compiler:
        rows.append(("compiler", f"{compiler.get('name', '?')} {compiler.get('version', '?')}"))
    if "content_digest" in meta:
        rows.append(("content", meta["content_digest"]))
    rows.append(("entrypoint", summary["entrypoint"] or "(not recorded)"))
    rows.append(("signature", _signature_line(summary["signature"])))
    for label, value in rows:
        # digests stay on one line, whatever the console width
        console.print(Text.assemble((f"{label:<14}", "bold"), value), soft_wrap=True)

    console.print()
    _columns(
        console,
        "modules",
        ("path", "package", "bytes"),
        [(m["path"], m["package"], str(m["size"])) for m in summary["modules"]],
    )
    console.print()
    _columns(
        console,
        "data",
        ("root", "keys"),
        [(d["root"] or "(top)", ", ".join(d["keys"])) for d in summary["data_roots"]],
    )


def _signature_line(signature: dict[str, Any] | None) -> str:
    if signature is None:
        return "none"
    if not signature["verified"]:
        return "present, not verified (give --verification-key)"
    scope = f", scope {signature['scope']!r}" if signature["scope"] else ""
    return (
        f"verified: {signature['algorithm']}, kid {signature['key_id']!r}{scope}, "
        f"{len(signature['files'])} files"
    )


def _columns(console: Console, title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    """A plain aligned table that never folds a path, whatever the console width; a column
    of numbers is aligned right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = [bool(rows) and all(row[i].isdigit() for row in rows) for i in range(len(header))]
    console.print(Text(title, style="bold"))
    for index, row in enumerate([header, *rows]):
        cells = [
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ]
        style = "dim" if index == 0 else ""
        console.print(Text("  " + "  ".join(cells).rstrip(), style=style), soft_wrap=True)
