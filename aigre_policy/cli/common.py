"""Pieces the commands share: exit codes, pack discovery, ``--set`` parsing, input files.

Deferred imports: a command loads what it needs when it runs, so `aigre-policy --help`
and the other commands start without it (docs/cli.md, tests/test_cli_start.py).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aigre_policy.cli.exits import (  # re-exported: the commands import them from here
    DECISION_EXIT,
    EXIT_ALLOW,
    EXIT_APPROVAL,
    EXIT_DENY,
    EXIT_ESCALATE,
    EXIT_FAIL_CLOSED,
    EXIT_FAILURES,
    EXIT_INTERNAL,
    EXIT_IO,
    EXIT_USAGE,
    UsageError,
)
from aigre_policy.yamlio import parse_document, read_document

__all__ = [
    "DECISION_EXIT",
    "EXIT_ALLOW",
    "EXIT_APPROVAL",
    "EXIT_DENY",
    "EXIT_ESCALATE",
    "EXIT_FAILURES",
    "EXIT_FAIL_CLOSED",
    "EXIT_INTERNAL",
    "EXIT_IO",
    "EXIT_USAGE",
    "EvalInput",
    "UsageError",
    "find_packs",
    "parse_overrides",
    "read_eval_input",
]


def find_packs(paths: list[str]) -> list[Path]:
    """Pack directories named, or found one level below a directory of packs."""
    from aigre_policy.checked import MANIFEST  # the compiler loads only when a pack compiles

    packs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / MANIFEST).is_file():
            packs.append(path)
        elif path.is_dir():
            found = sorted(p.parent for p in path.glob(f"*/{MANIFEST}"))
            if not found:
                raise UsageError(f"{path} holds no pack (no {MANIFEST} in it or its subfolders)")
            packs.extend(found)
        else:
            raise UsageError(f"no pack at {path}")
    return packs


def parse_overrides(assignments: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--set cost.monthly_budget_usd=200`` (values read as YAML scalars or lists)."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in assignments or []:
        target, sep, raw = item.partition("=")
        envelope, dot, name = target.strip().partition(".")
        if not sep or not dot or not envelope or not name:
            raise UsageError(
                f"--set {item!r}: write ENVELOPE.NAME=VALUE, e.g. cost.monthly_budget_usd=200"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        overrides.setdefault(envelope, {})[name] = value
    return overrides


@dataclass
class EvalInput:
    action: Any
    context: Any
    usage: Any
    expect: dict[str, Any] | None
    source: str


def _load(path: str) -> Any:
    if path == "-":
        if sys.stdin is None or sys.stdin.closed:
            raise UsageError("--action -: standard input is closed")
        try:
            text = sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read standard input: {exc}") from None
        doc, problems = parse_document(text, "<stdin>")
    else:
        doc, problems = read_document(Path(path))
    if doc is None:
        if problems and problems[0].span is not None:
            raise UsageError(f"{problems[0].span}: {problems[0].message}")
        raise UsageError(problems[0].message if problems else f"cannot read {path}")
    return doc.data


def read_input_file(path: str) -> Any:
    """A JSON or YAML file's data (``-``: standard input); unreadable, a ``UsageError``."""
    return _load(path)


INPUT_SUFFIXES = (".yaml", ".yml", ".json")
MAX_INPUTS = 100_000  # inputs one `eval` run judges: a directory or JSON lines past it is refused


def eval_inputs(
    sources: list[str], context_path: str | None, usage_path: str | None
) -> list[EvalInput]:
    """The inputs ``--action`` names: files, every action or case file of a directory (by
    name), each line of a ``.jsonl`` file (``FILE:LINE`` names it), or ``-``."""
    found: list[EvalInput] = []
    for source in sources:
        path = Path(source)
        if source != "-" and path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in INPUT_SUFFIXES and p.is_file())
            if not files:
                raise UsageError(f"{source} holds no .yaml, .yml or .json input")
            found += [read_eval_input(str(f), context_path, usage_path) for f in files]
        elif path.suffix == ".jsonl":
            found += _json_lines(path, context_path, usage_path)
        else:
            found.append(read_eval_input(source, context_path, usage_path))
        if len(found) > MAX_INPUTS:
            raise UsageError(f"more than {MAX_INPUTS} inputs: split them over several runs")
    return found


def _json_lines(path: Path, context_path: str | None, usage_path: str | None) -> list[EvalInput]:
    import json

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: not a JSON document ({exc})") from None
        found.append(_eval_input(data, f"{path}:{number}", context_path, usage_path))
    if not found:
        raise UsageError(f"{path} holds no input")
    return found


def read_eval_input(
    action_path: str, context_path: str | None, usage_path: str | None
) -> EvalInput:
    """An action file, or a case file holding ``action``, ``context``, ``usage`` and ``expect``."""
    return _eval_input(_load(action_path), action_path, context_path, usage_path)


def _eval_input(
    data: Any, action_path: str, context_path: str | None, usage_path: str | None
) -> EvalInput:
    if not isinstance(data, dict):
        raise UsageError(f"{action_path}: expected a mapping (an action, or a case with `action:`)")
    if "action" in data and isinstance(data["action"], dict):
        action, context, usage = data["action"], data.get("context"), data.get("usage")
        expect = data.get("expect")
    else:
        action, context, usage, expect = data, None, None, None
    if context_path:
        context = _load(context_path)
    if usage_path:
        usage = _load(usage_path)
    return EvalInput(action, context, usage, expect, action_path)


def add_cache_argument(parser: Any) -> None:
    """``--no-cache``: compile the pack afresh, neither reading nor writing the cache."""
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="compile afresh: do not read or write the compile cache (docs/cli.md#compile-cache)",
    )


def compile_cache(args: Any) -> Any:
    """The compile cache a command uses (``aigre_policy.cache.CompileCache``), or ``None``
    with ``--no-cache`` or ``AIGRE_NO_CACHE=1``."""
    import os

    if getattr(args, "no_cache", False) or os.environ.get("AIGRE_NO_CACHE") == "1":
        return None
    from aigre_policy.cache import CompileCache

    return CompileCache()


class Once(argparse.Action):
    """An option that may be given once: a second value is refused, not silently kept."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option} is given more than once; give it once")
        setattr(namespace, self.dest, values)
