"""The docs are true: every ```aigre block compiles, the language tour's pack passes `ci`,
and the shell examples that run offline on the repository's own packs run as shown.

A block that is not a pack on its own says so in an HTML comment on the line before it:
``<!-- aigre-example: inside a rule -->`` (a clause, compiled inside a rule) or
``<!-- aigre-example: added to policy_packs/NAME -->`` (compiled with that pack's files).
Any other block is a whole policy file, compiled in a pack of the built-in schema whose
``fixtures/`` is the repository's.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aigre_policy.compiler import compile_pack
from aigre_policy.diagnostics import Severity

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted((REPO / "docs").glob("*.md"))
MANIFEST = "name: doc-example\nversion: 0.1.0\ndefault: allow\nfail_closed: deny\n"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!-- aigre-example: (.*?) -->\s*$")


def _blocks(path: Path, language: str) -> list[tuple[int, str, str]]:
    """(line, text, marker) of each fenced block of ``language`` in ``path``."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        if match.group(1) != language:
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        line = text.count("\n", 0, match.start()) + 1
        found.append((line, match.group(2), mark.group(1) if mark else ""))
    return found


AIGRE_BLOCKS = [
    pytest.param(path, line, text, mark, id=f"{path.name}:{line}")
    for path in DOCS
    if path.name != "tutorial.md"  # run step by step, in its own pack, by tests/test_tutorial.py
    for line, text, mark in _blocks(path, "aigre")
]


def _pack(tmp_path: Path, text: str, mark: str) -> Path:
    (tmp_path / "fixtures").symlink_to(REPO / "fixtures")  # `../../fixtures/...` from a pack
    root = tmp_path / "packs" / "example"
    if mark.startswith("added to "):
        shutil.copytree(REPO / mark.removeprefix("added to "), root)
    else:
        (root / "policies").mkdir(parents=True)
        (root / "pack.yaml").write_text(MANIFEST, encoding="utf-8")
        (root / "fixtures").symlink_to(REPO / "fixtures")
    if mark == "inside a rule":
        text = f"rule doc-example {{\n  category: risk\n{text}}}\n"
    (root / "policies" / "doc-example.aigre").write_text(text, encoding="utf-8")
    return root


def test_the_docs_hold_aigre_blocks() -> None:
    assert len(AIGRE_BLOCKS) >= 20


@pytest.mark.parametrize(("path", "line", "text", "mark"), AIGRE_BLOCKS)
def test_every_aigre_block_in_the_docs_compiles(tmp_path, path, line, text, mark) -> None:
    assert mark in ("", "inside a rule") or mark.startswith("added to "), mark
    report = compile_pack(_pack(tmp_path, text, mark))
    errors = [d for d in report.diagnostics if d.severity is Severity.ERROR]
    assert report.ok, [f"{d.code} {d.span}: {d.message}" for d in errors]


def tour_pack(directory: Path) -> Path:
    """The language tour's `deploy-guard`, as docs/language.md shows it."""
    language = REPO / "docs" / "language.md"
    yaml_blocks = [text for _, text, _ in _blocks(language, "yaml")]
    root = directory / "deploy-guard"
    (root / "policies").mkdir(parents=True)
    (root / "fixtures").mkdir()
    manifest = next(b for b in yaml_blocks if b.startswith("# deploy-guard/pack.yaml\n"))
    (root / "pack.yaml").write_text(manifest, encoding="utf-8")
    guard = _blocks(language, "aigre")[0][1]
    assert guard.startswith("# deploy-guard:")
    (root / "policies" / "guard.aigre").write_text(guard, encoding="utf-8")
    deploy = next(b for b in yaml_blocks if b.startswith("action:\n  id: act-7"))
    (root / "fixtures" / "llm-deploy.yaml").write_text(deploy, encoding="utf-8")
    return root


def test_the_language_tour_pack_passes_ci(tmp_path, capsys) -> None:
    from aigre_policy.cli.main import main

    root = tour_pack(tmp_path)
    assert main(["ci", str(root)]) == 0, capsys.readouterr()


# ------------------------------------------------------------------------ shell examples

_PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]{2,}\b")  # PACK, FILE, ENVELOPE.NAME...
_WRITES = {"init", "keygen", "checkpoint", "-o", "--output", "--write", "build"}
_FAST = {"check", "eval", "fmt", "inspect"}  # `test` and `ci` runs have their own tests
_FILE = re.compile(r"/|\.(ya?ml|json|jsonl|gz|pem|aigre)$")  # a word naming a file


def _documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``aigre-policy ...`` line of a shell block in the docs and the README."""
    found = []
    for path in [*DOCS, REPO / "README.md"]:
        for language in ("", "sh", "console", "bash"):
            for line, text, _ in _blocks(path, language):
                prompted = any(raw.startswith("$ ") for raw in text.splitlines())
                for offset, raw in enumerate(text.splitlines()):
                    if prompted and not raw.startswith("$ "):
                        continue  # a transcript: the rest is output (`aigre-policy ci` heads it)
                    command = raw.strip().removeprefix("$ ")
                    if not command.startswith("aigre-policy "):
                        continue
                    command = re.split(r"\s+#\s", command)[0].rstrip("\\").strip()
                    command = re.split(r"\s[|>]|\s2>|\s&&\s|;|\s&$", command)[0]
                    if re.search(r"\s\[-|\.\.\.|\w\|\w", command):
                        continue  # a synopsis: [--option], PACK..., text|json
                    try:
                        words = shlex.split(command)[1:]
                    except ValueError:  # an example cut mid-quote
                        continue
                    found.append((f"{path.name}:{line + 1 + offset}", words))
    return found


COMMANDS = _documented_commands()


def _runnable(words: list[str]) -> bool:
    """Runs offline on the repository's own packs and fixtures, quickly, writing nothing."""
    joined = " ".join(words)
    paths = [w for w in words if not w.startswith("-") and _FILE.search(w)]
    return (
        bool(words)
        and words[0] in _FAST
        and not _PLACEHOLDER.search(joined)
        and not _WRITES & set(words)
        and "opa" not in words
        and (words[0] != "fmt" or bool({"--check", "--diff"} & set(words)))
        and bool(paths)
        and all((REPO / p).exists() for p in paths)
        and ("regorus" not in words or _has("regorus"))
    )


def _has(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


SHELL = [(where, words) for where, words in COMMANDS if _runnable(words)]


def test_the_docs_hold_commands_and_runnable_ones() -> None:
    assert len(COMMANDS) >= 50
    assert len(SHELL) >= 5


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_each_documented_command_line_parses(where, words) -> None:
    """Its command and options exist and take the values shown (placeholders stand in for
    paths); a documented flag the CLI does not have fails here."""
    from aigre_policy.cli.main import build_parser

    try:
        build_parser(words).parse_args(words)
    except SystemExit as exit_:
        assert exit_.code == 0, where  # `--help` and `--version` exit 0


@pytest.mark.parametrize(("where", "words"), SHELL, ids=[s[0] for s in SHELL])
def test_each_offline_shell_example_runs(where, words) -> None:
    """It parses and runs to a documented outcome: a decision, a pass or a finding, never
    misuse (2) or an internal error (70)."""
    done = subprocess.run(
        [sys.executable, "-m", "aigre_policy.cli.main", *words],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "AIGRE_NO_CACHE": "1"},
    )
    assert done.returncode not in (2, 70, 74), (where, done.stderr[-2000:])
    assert "Traceback" not in done.stderr


def test_the_tour_s_evaluations_exit_as_the_tour_says(tmp_path, monkeypatch, capsys) -> None:
    from aigre_policy.cli.main import main

    tour_pack(tmp_path)
    monkeypatch.chdir(tmp_path)
    action = ["--action", "deploy-guard/fixtures/llm-deploy.yaml"]
    assert main(["eval", "deploy-guard", *action]) == 5  # deny
    out = capsys.readouterr().out
    for rule in ("llm-outside-its-remit", "irreversible-production-change", "costly-action"):
        assert f"{rule}  [" in out
    raised = ["--set", "cost.max_action_usd=500"]
    raised += ["--set", "autonomy.llm_may=[rollback, restart, scale, deploy]"]
    assert main(["eval", "deploy-guard", *action, *raised]) == 4  # require_approval
