"""`test --watch`: a change to any file of the pack runs the tests again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aigre_policy.testing.watch import snapshot, watch

REPO = Path(__file__).resolve().parent.parent
RULE = "rule r {\n  category: cost\n  deny when action.cost.estimated_usd > LIMIT\n}\n"


def test_a_change_runs_again_and_an_unchanged_pack_does_not(new_pack) -> None:
    pack = new_pack(RULE.replace("LIMIT", "1"))
    runs: list[int] = []
    polls: list[int] = []

    def sleep(_seconds: float) -> None:
        polls.append(1)
        if len(polls) == 3:  # two quiet polls, then an edit
            policy = pack / "policies" / "main.aigre"
            policy.write_text(RULE.replace("LIMIT", "22"))

    def run() -> int:
        runs.append(1)
        return len(runs)

    code = watch([pack], run, lambda note: None, sleep=sleep, rounds=2)
    assert (len(runs), len(polls), code) == (2, 3, 2)


def test_an_added_test_file_counts_as_a_change(new_pack) -> None:
    pack = new_pack(RULE.replace("LIMIT", "1"))
    before = snapshot([pack])
    (pack / "tests").mkdir()
    (pack / "tests" / "more.yaml").write_text("tests: []\n")
    assert snapshot([pack]) != before


def test_the_cli_watches_until_interrupted(new_pack) -> None:
    pack = new_pack(RULE.replace("LIMIT", "1"))
    process = subprocess.Popen(
        [sys.executable, "-m", "aigre_policy.cli.main", "test", str(pack), "--watch"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "AIGRE_NO_CACHE": "1"},
    )
    notes = []
    try:
        assert process.stderr is not None
        notes.append(process.stderr.readline())  # the first run is over: it watches
        assert "watching" in notes[-1], notes
        time.sleep(1.1)  # a new mtime even on a file system with coarse timestamps
        (pack / "policies" / "main.aigre").write_text(RULE.replace("LIMIT", "5"))
        notes.append(process.stderr.readline())
        notes.append(process.stderr.readline())  # the second run is over
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert "running the tests again" in notes[1] and "watching" in notes[2], notes
    assert out.count("0 tests") == 2, (out, err)
