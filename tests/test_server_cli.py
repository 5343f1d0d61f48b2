"""``aigre-policy serve`` on the command line: misuse is one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from serving import ROOT

from aigre_policy.cli.main import main

BASELINE = ROOT / "policy_packs" / "aigre-baseline"


def test_a_missing_extra_names_the_pip_command(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import fails as when not installed
    assert main(["serve", str(BASELINE)]) == 2
    err = capsys.readouterr().err
    assert 'pip install "aigre-policy[serve]"' in err
    assert "Traceback" not in err


def test_the_cli_entry_point_imports_no_server_library():
    code = (
        "import sys, aigre_policy.cli.main; "
        "print(sorted(m for m in ('starlette','uvicorn','prometheus_client','opentelemetry',"
        "'jinja2','httpx','orjson') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_serving_beyond_loopback_without_auth_is_refused(capsys, tmp_path):
    pytest.importorskip("uvicorn")
    code = main(
        ["serve", str(BASELINE), "--host", "0.0.0.0", "--ledger", f"sqlite:///{tmp_path}/l.db"]
    )
    assert code == 2
    assert "without an `auth` section" in capsys.readouterr().err


def test_a_bad_config_is_refused_with_file_line_and_column(capsys, tmp_path):
    pytest.importorskip("uvicorn")
    config = tmp_path / "server.yaml"
    config.write_text(
        "limits:\n  max_body_bytes: 10\nauth:\n  api_keys:\n    - name: k\n      sha256: nope\n"
    )
    assert main(["serve", str(BASELINE), "--config", str(config)]) == 2
    err = "".join(capsys.readouterr().err.split())  # the console may wrap long paths
    assert f"{config}:2:19:limits.max_body_bytes:" in err
    assert err.endswith("(and2moreproblems)")  # the first by position, on one line


def test_a_bundle_is_refused_with_the_reason(capsys, tmp_path):
    pytest.importorskip("uvicorn")
    bundle = tmp_path / "pack.tar.gz"
    bundle.write_bytes(b"not read")
    assert main(["serve", str(bundle)]) == 2
    assert "serve takes a pack directory" in capsys.readouterr().err


def test_a_pack_that_does_not_compile_is_refused(capsys, tmp_path):
    pytest.importorskip("uvicorn")
    assert main(["serve", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_port_in_use_is_one_line(capsys, tmp_path):
    pytest.importorskip("uvicorn")
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", str(BASELINE), "--port", str(port)])
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_sigterm_stops_the_server_cleanly_and_the_log_verifies(tmp_path):
    pytest.importorskip("uvicorn")
    import os
    import signal

    import httpx
    from serving import free_port, wait_ready

    port = free_port()
    log = tmp_path / "decisions.jsonl"
    command = [sys.executable, "-m", "aigre_policy.cli.main", "serve", str(BASELINE)]
    command += ["--port", str(port), "--ledger", f"sqlite:///{tmp_path}/l.db", "--log", str(log)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process)
        action = {"kind": "restart", "id": "x"}
        assert httpx.post(f"{url}/v1/check", json=action).json()["fail_closed"] is True
        process.send_signal(signal.SIGTERM)
        # drained and closed, then ended as the signal asks (uvicorn raises it again)
        assert process.wait(30) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in process.stderr.read()
    assert main(["log", "verify", str(log)]) == 0
