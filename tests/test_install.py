"""CI installs the way a new user does: a new environment, the README's command verbatim."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CI = (REPO / ".ci" / "run").read_text(encoding="utf-8")


def _readme_test_command() -> str:
    block = re.search(r"```\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    assert block is not None
    (line,) = [text for text in block.group(1).splitlines() if "pytest" in text]
    return line


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    assert _readme_test_command() in CI.splitlines()


def test_ci_installs_into_a_new_virtual_environment_first() -> None:
    lines = CI.splitlines()
    made = next(i for i, line in enumerate(lines) if re.match(r"python3 -m venv ", line))
    entered = next(i for i, line in enumerate(lines) if re.match(r"source .*/bin/activate", line))
    installed = lines.index(_readme_test_command())
    assert made < entered < installed
    assert "mktemp -d" in CI  # a new directory on every run, never a reused environment


def test_no_dependency_on_hypothesis_jsonschema() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    named = [
        *project["dependencies"],
        *(d for ds in project["optional-dependencies"].values() for d in ds),
    ]
    assert not [d for d in named if d.lower().startswith("hypothesis-jsonschema")]
    sources = [*REPO.glob("aigre_policy/**/*.py"), *REPO.glob("tests/*.py")]
    importing = re.compile(r"^\s*(from|import)\s+hypothesis_jsonschema\b", re.M)
    assert not [p for p in sources if importing.search(p.read_text(encoding="utf-8"))]
