"""Shared helpers: write a small pack into ``tmp_path``, valid actions, a plain CLI console."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

# The CLI's compile cache stays off in tests (a test that patches the compiler must see it
# run); tests/test_compile_cache.py turns it on where it is the subject.
os.environ.setdefault("AIGRE_NO_CACHE", "1")

# the store fixtures: every ledger test runs on SQLite and on PostgreSQL
from postgres_cluster import (  # noqa: F401
    ledger_sql,
    ledger_url,
    postgres_server,
    postgres_url,
    store_kind,
)

POLICY_FILE = "policies/main.aigre"

DEFAULT_MANIFEST: dict[str, Any] = {
    "name": "t",
    "version": "1.0.0",
    "default": "allow",
    "fail_closed": "deny",
}


def _manifest_text(manifest: Mapping[str, Any] | str | None) -> str:
    if isinstance(manifest, str):
        return manifest
    merged = {**DEFAULT_MANIFEST, **(manifest or {})}
    # JSON is YAML: no dependency on how a YAML dumper quotes things
    return "\n".join(f"{key}: {json.dumps(value)}" for key, value in merged.items()) + "\n"


def write_pack(
    root: Path,
    policies: str | Mapping[str, str] | None,
    *,
    manifest: Mapping[str, Any] | str | None = None,
    files: Mapping[str, str | bytes | dict[str, Any]] | None = None,
) -> Path:
    """A pack at ``root``: ``pack.yaml`` (defaults merged with ``manifest``, or its literal
    text), ``policies/<name>.aigre`` (a str is ``main.aigre``; text is dedented) and extra
    ``files`` (str, bytes, or a dict written as JSON) relative to the pack."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pack.yaml").write_text(_manifest_text(manifest), encoding="utf-8")
    if policies is not None:
        (root / "policies").mkdir(exist_ok=True)
        named = {"main.aigre": policies} if isinstance(policies, str) else policies
        for name, text in named.items():
            (root / "policies" / name).write_text(dedent(text), encoding="utf-8")
    for relative, content in (files or {}).items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, dict):
            target.write_text(json.dumps(content, indent=2), encoding="utf-8")
        else:
            target.write_text(content, encoding="utf-8")
    return root


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def new_pack(tmp_path: Path) -> Callable[..., Path]:
    """``new_pack(policies, manifest=..., files=..., name=...)``: a fresh pack in tmp_path."""
    counter = iter(range(10_000))

    def make(
        policies: str | Mapping[str, str] | None,
        *,
        manifest: Mapping[str, Any] | str | None = None,
        files: Mapping[str, str | bytes | dict[str, Any]] | None = None,
        name: str | None = None,
    ) -> Path:
        root = tmp_path / (name or f"pack{next(counter)}")
        return write_pack(root, policies, manifest=manifest, files=files)

    return make


def _action(**overrides: Any) -> dict[str, Any]:
    """A valid proposed action for ``builtin:proposed-action/v1``."""
    base: dict[str, Any] = {
        "id": "act-1",
        "kind": "rollback",
        "target": "checkout",
        "environment": "production",
        "actor": {"kind": "llm", "id": "agent-7", "trust": 3},
        "change": {"type": "code", "lines": 40},
        "reversible": True,
        "blast_radius": {"users_share": 0.2, "services": ["checkout"]},
        "cost": {"estimated_usd": 10},
        "requested_at": "2026-11-20T10:00:00Z",
    }
    base.update(overrides)
    return base


CONTEXT: dict[str, Any] = {"now": "2026-11-20T10:00:00Z"}


@pytest.fixture
def make_action() -> Callable[..., dict[str, Any]]:
    """``make_action(**overrides)``: a valid proposed action for the built-in schema."""
    return _action


@pytest.fixture
def valid_context() -> dict[str, Any]:
    """A valid context for the built-in schema."""
    return dict(CONTEXT)


@pytest.fixture
def plain_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich writes plain, unwrapped text whatever the terminal the tests run in."""
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERM", "dumb")


def gate_action(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid proposal the gate tests vary: an LLM agent scaling `checkout` in production."""
    base: dict[str, Any] = {
        "id": f"act-{n}",
        "kind": "scale",
        "target": "checkout",
        "environment": "production",
        "actor": {"kind": "llm", "id": "agent-7", "trust": 3, "on_behalf_of": "olga"},
        "change": {"type": "infra", "lines": 10},
        "reversible": True,
        "blast_radius": {"users_share": 0.1},
        "cost": {"estimated_usd": 10},
        "requested_at": "2025-03-10T11:59:00Z",
    }
    base.update(overrides)
    return base


def comparable_verdict(verdict: Any) -> dict[str, Any]:
    """What every engine's verdict must share with native (``comparisons`` are native-only)."""

    def records(items):
        return [{k: v for k, v in r.items() if k != "comparisons"} for r in items]

    return {
        "decision": verdict.decision,
        "fail_closed": verdict.fail_closed,
        "default_applied": verdict.default_applied,
        "fired": records(verdict.fired),
        "warnings": records(verdict.warnings),
        "approvers": verdict.approvers,
        "escalate_to": verdict.escalate_to,
        "errors": verdict.errors,
    }


def fixture_input(path: Path) -> dict[str, Any]:
    """The input document of a labelled fixture file: its action, context and usage."""
    case = yaml.safe_load(path.read_text())
    return {
        "action": case["action"],
        "context": case.get("context") or {},
        "usage": case.get("usage") or {},
    }


def verdict_core(verdict: dict[str, Any]) -> dict[str, Any]:
    """What a verdict decides and why, without per-call ids and timings."""

    def record(rule: dict[str, Any]) -> tuple:
        return (
            rule["id"],
            rule["verdict"],
            rule["category"],
            rule["severity"],
            rule["message"],
            rule["tags"],
            rule["approvers"],
            rule["escalate_to"],
            rule.get("title"),
            rule["bindings"],
            rule["location"],
        )

    return {
        "decision": verdict["decision"],
        "fail_closed": verdict["fail_closed"],
        "default_applied": verdict["default_applied"],
        "approvers": verdict["approvers"],
        "escalate_to": verdict["escalate_to"],
        "fired": [record(r) for r in verdict["fired"]],
        "warnings": [record(r) for r in verdict["warnings"]],
        "errors": [(e["kind"], e["path"]) for e in verdict["errors"]],
    }
