"""The scripted agent in examples/agent_gate.py runs its allowed, approved and denied paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aigre_policy.gate.log import read_log

ROOT = Path(__file__).resolve().parent.parent


def test_the_agent_example_shows_each_path_and_leaves_an_intact_log(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "agent_gate.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "allowed:  restarted checkout-api",
        "held:     scale needs finops (action-cost-cap)",
        "approved: by fay.finops",
        "allowed:  scaled search-indexer to 16 nodes",
        "allowed:  rolled checkout-api back to v2.40.3",
        "denied:   delete (irreversible-production-change, llm-outside-its-remit)",
        "log:      9 entries, chain intact",
    ]
    kinds = [
        (e.kind, e.body.get("status") or e.body["verdict"]["decision"])
        for e in read_log(tmp_path / "decisions.jsonl")
    ]
    assert kinds == [
        ("decision", "allow"),
        ("outcome", "executed"),
        ("decision", "require_approval"),
        ("approval", "granted"),
        ("decision", "allow"),
        ("outcome", "executed"),
        ("decision", "allow"),
        ("outcome", "executed"),
        ("decision", "deny"),
    ]
    scaled = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"][2]
    assert scaled.body["verdict"]["gate"]["approvals"]["counted"][0]["by"] == "fay.finops"
    assert json.loads(json.dumps(scaled.body))["input"]["action"]["cost"] == {
        "estimated_usd": 400.0
    }
