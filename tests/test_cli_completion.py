"""``aigre-policy completion``: the scripts load in their shell and complete what the
command really has. Bash is driven for real (the completion function is called as bash
calls it on Tab); zsh and tcsh are checked by their own parser where installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aigre_policy.cli.main import COMMANDS

REPO = Path(__file__).resolve().parent.parent


def _script(shell: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "aigre_policy.cli.main", "completion", shell],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


@pytest.fixture(scope="module")
def bash_tab(tmp_path_factory: pytest.TempPathFactory):
    """``tab(*words)``: what bash offers for the last word, with the script loaded."""
    bash = shutil.which("bash")
    assert bash is not None, "bash is part of the distribution the tests run on"
    folder = tmp_path_factory.mktemp("completion")
    script = folder / "aigre-policy.bash"
    script.write_text(_script("bash"))
    work = folder / "work"
    (work / "packs" / "guard").mkdir(parents=True)
    (work / "action.yaml").write_text("action: {}\n")

    def tab(*words: str) -> list[str]:
        quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in ("aigre-policy", *words))
        probe = (
            f"source '{script}'\n"
            f"COMP_WORDS=({quoted}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n"
            'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()\n'
            "_shtab_aigre_policy 2>/dev/null\n"
            "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
        )
        done = subprocess.run(
            [bash, "--noprofile", "--norc", "-c", probe],
            capture_output=True,
            text=True,
            cwd=work,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return [line for line in done.stdout.splitlines() if line]

    return tab


def test_every_command_completes(bash_tab) -> None:
    assert bash_tab("") == [name for name, _, _ in COMMANDS]
    assert bash_tab("ev") == ["eval"]
    assert bash_tab("mcp-") == ["mcp-proxy", "mcp-approve"]


def test_options_and_their_choices_complete(bash_tab) -> None:
    assert bash_tab("eval", "--ac") == ["--action"]
    assert bash_tab("eval", "--engine", "") == ["native", "opa", "rego", "regorus"]
    assert "sarif" in bash_tab("check", "--format", "")
    assert bash_tab("log", "") == ["verify", "keygen", "checkpoint", "stats"]


def test_packs_complete_as_directories_and_inputs_as_files(bash_tab) -> None:
    assert bash_tab("check", "pa") == ["packs"]
    assert bash_tab("check", "ac") == []  # a file is not a pack
    assert bash_tab("eval", "packs/guard", "--action", "ac") == ["action.yaml"]
    assert bash_tab("inspect", "ac") == ["action.yaml"]  # a bundle is a file
    assert bash_tab("test", "ac") == ["action.yaml"]  # a pack or a bundle


def test_the_script_is_made_from_the_parser_an_unknown_shell_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aigre_policy.cli.main", "completion", "powershell"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2 and "invalid choice: 'powershell'" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_each_script_names_every_command_and_parses_in_its_shell(shell: str, tmp_path) -> None:
    script = _script(shell)
    for name, _, _ in COMMANDS:
        assert name in script, name
    assert "regorus" in script  # the choices of `eval --engine`
    if shell == "bash":  # an option the script leaves unmarked completes as bash's default:
        assert "complete -o bashdefault -F _shtab_aigre_policy aigre-policy" in script
    binary = shutil.which(shell)
    if binary is None:
        if os.environ.get("AIGRE_REQUIRE_SERVICES") == "1":  # CI installs every shell
            pytest.fail(f"{shell} is required (AIGRE_REQUIRE_SERVICES=1)")
        pytest.skip(f"{shell} is not installed here: only the script's content is checked")
    path = tmp_path / f"aigre-policy.{shell}"
    path.write_text(script)
    done = subprocess.run([binary, "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
