"""docs/tutorial.md, run from top to bottom as a reader would.

Each block under ``<!-- tutorial: write PATH -->`` is written to PATH (a later block may
replace an earlier one, as the reader edits the file); each ``$`` line of a ``console``
block is run in order, in one scratch directory, and must exit as its ``# exit N``
comment says (0 without one) and print the lines shown under it, in order: ``...``
stands for output left out, box-drawing characters and runs of spaces do not count. A
console block under ``<!-- tutorial: skip -->`` (installing) is not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "docs" / "tutorial.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!-- tutorial: (write (?P<path>\S+)|skip) -->\s*$")
_EXIT = re.compile(r"\s+#\s+exit\s+(\d+)\s*$")
_BOX = re.compile(r"[\u2500-\u257f]")


def _steps() -> list[tuple[int, str, object]]:
    """(line, "write" | "run", (path, text) | (command, exit code, shown lines))."""
    text = TUTORIAL.read_text(encoding="utf-8")
    steps: list[tuple[int, str, object]] = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        language, body = match.group(1), match.group(2)
        if mark is not None and mark.group("path"):
            steps.append((line, "write", (mark.group("path"), body)))
        elif language == "console" and mark is None:
            for command, shown in _commands(body):
                code = _EXIT.search(command)
                command = _EXIT.sub("", command) if code else command
                steps.append((line, "run", (command, int(code.group(1)) if code else 0, shown)))
    return steps


def _commands(body: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for raw in body.splitlines():
        if raw.startswith("$ "):
            found.append((raw[2:], []))
        elif found:
            found[-1][1].append(raw)
    return found


def _plain(line: str) -> str:
    return " ".join(_BOX.sub(" ", line).split())


def _shows(output: str, shown: list[str]) -> str | None:
    """``None`` when ``output`` holds the ``shown`` lines in order, else the first missing."""
    lines = [_plain(line) for line in output.splitlines()]
    at = 0
    for expected in shown:
        parts = [_plain(p) for p in expected.split("...")]
        parts = [p for p in parts if p]
        if not parts:
            continue  # `...`: output left out
        while at < len(lines) and not _in_order(parts, lines[at]):
            at += 1
        if at == len(lines):
            return expected
        at += 1
    return None


def _in_order(parts: list[str], line: str) -> bool:
    start = 0
    for part in parts:
        found = line.find(part, start)
        if found < 0:
            return False
        start = found + len(part)
    return True


def test_the_tutorial_has_every_kind_of_step() -> None:
    steps = _steps()
    kinds = [kind for _, kind, _ in steps]
    assert kinds.count("write") >= 6 and kinds.count("run") >= 10
    commands = [detail[0] for _, kind, detail in steps if kind == "run"]  # type: ignore[index]
    for needed in ("init", "ci", "check", "test", "eval", "mcp-proxy", "log verify"):
        assert any(c.startswith(f"aigre-policy {needed}") for c in commands), needed
    assert "python agent.py" in commands
    text = TUTORIAL.read_text(encoding="utf-8")
    written = {detail[0] for _, kind, detail in steps if kind == "write"}  # type: ignore[index]
    assert "my-guard/policies/agents.aigre" in written
    assert text.count("```aigre") == sum(
        1
        for _, kind, detail in steps
        if kind == "write" and detail[0].endswith(".aigre")  # type: ignore[index]
    )  # every policy block is written and then checked, none only shown


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(REPO / "examples")  # "run from the repository root"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # as in the reader's virtual environment: `aigre-policy` for agent.py's host to start,
    # `python` for the proxy to start the example server with
    for name, body in (
        # the SDK starts it with a minimal environment: the checkout is named here
        (
            "aigre-policy",
            f'PYTHONPATH="{REPO}" exec "{sys.executable}" -m aigre_policy.cli.main "$@"',
        ),
        ("python", f'exec "{sys.executable}" "$@"'),
    ):
        command = bin_dir / name
        command.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        command.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "AIGRE_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "NO_COLOR": "1",
    }
    for line, kind, detail in _steps():
        if kind == "write":
            path, text = detail  # type: ignore[misc]
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            continue
        shell, code, shown = detail  # type: ignore[misc]
        words = shlex.split(shell)
        if words[0] == "aigre-policy":
            words = [sys.executable, "-m", "aigre_policy.cli.main", *words[1:]]
        elif words[0] == "python":
            words = [sys.executable, *words[1:]]
        else:
            pytest.fail(f"tutorial.md:{line}: a command this test does not know: {shell}")
        done = subprocess.run(words, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == code, (f"tutorial.md:{line}", shell, output[-3000:])
        missing = _shows(output, shown)
        assert missing is None, (f"tutorial.md:{line}", shell, missing, output[-3000:])
        assert "Traceback" not in output, (f"tutorial.md:{line}", shell)


def test_the_comparison_of_shown_and_printed_lines() -> None:
    printed = "╭─ decision: DENY ──╮\n│ deny   rule-a  [x]  a.aigre:7:6 │\n│ note │\n"
    assert _shows(printed, ["╭─ decision: DENY ─...", "...", "│ note"]) is None
    assert _shows(printed, ["deny rule-a ... a.aigre:7:6"]) is None
    assert _shows(printed, ["│ note", "deny rule-a"]) == "deny rule-a"  # order counts
    assert _shows(printed, ["decision: ALLOW"]) == "decision: ALLOW"
