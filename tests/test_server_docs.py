"""The curl sessions of docs/server.md and docs/adapters.md run word for word against a
real server.

Each ``<!-- session -->`` block is run by one bash, from a scratch folder holding the
repository's ``policy_packs``, ``examples`` and ``fixtures``; each ``$ command`` must
print exactly the lines the doc shows under it. Only the port may change, when the doc's is taken.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys

import pytest
from serving import ROOT

pytest.importorskip("uvicorn")

DOCS = (ROOT / "docs" / "server.md", ROOT / "docs" / "adapters.md")
MARK = "@@aigre-session-step@@"


def sessions() -> list[list[tuple[str, list[str]]]]:
    """Each session: its commands, each with the lines the doc shows it printing."""
    text = "\n".join(doc.read_text(encoding="utf-8") for doc in DOCS)
    found = []
    for block in re.findall(r"<!-- session -->\n```console\n(.*?)```", text, re.DOTALL):
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        found.append(steps)
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tools_or_skip() -> None:
    missing = [tool for tool in ("curl", "jq", "bash") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("AIGRE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"the documented session needs {', '.join(missing)}")
        pytest.skip(f"the documented session needs {', '.join(missing)}")


def test_the_documented_session_has_steps():
    assert sessions() and all(len(s) > 5 for s in sessions())


@pytest.mark.parametrize("index", range(len(sessions())))
def test_the_documented_curl_session_runs_verbatim(tmp_path, index):
    _tools_or_skip()
    steps = sessions()[index]
    work = tmp_path / "work"
    work.mkdir()
    for name in ("policy_packs", "examples", "fixtures"):
        (work / name).symlink_to(ROOT / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "aigre-policy"  # the source tree's command, whatever is installed
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m aigre_policy.cli.main "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    documented = re.search(r"--port (\d+)", steps[0][0]).group(1)  # type: ignore[union-attr]
    port = documented if _port_free(int(documented)) else str(_free_port())
    script = "set -u\n" + "".join(
        f"{command.replace(documented, port)}\necho '{MARK}'\n" for command, _ in steps
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    printed = out.split(f"{MARK}\n")
    for (command, expected), got in zip(steps, printed, strict=False):
        assert got.splitlines() == [line.replace(documented, port) for line in expected], (
            f"$ {command}\n{err[-2000:]}"
        )
    assert len(printed) == len(steps) + 1, err[-2000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
