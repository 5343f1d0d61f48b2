"""Signed checkpoints of the decision log: when they are written, where, by whom, and the
one-line errors about keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigre_policy.cli.main import main
from aigre_policy.gate import FakeClock, Gate, open_ledger
from aigre_policy.gate import checkpoint as cp
from aigre_policy.gate.log import DecisionLog, LogError, verify_log

REPO = Path(__file__).resolve().parent.parent
PACK = REPO / "policy_packs/aigre-baseline"


def approval(n: int) -> dict:
    return {"decision_id": f"d-{n}", "status": "granted"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keys")
    cp.generate_key_pair(root / "log.key", root / "log.pub")
    return root


def checkpoint_entries(path: Path) -> list[int]:
    return [
        json.loads(line)["entries"] for line in cp.checkpoint_path(path).read_text().splitlines()
    ]


def test_checkpoints_follow_the_first_entry_every_n_entries_and_close(tmp_path, keys):
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, fsync="none", signing_key=keys / "log.key", checkpoint_entries=4) as log:
        for n in range(10):
            log.append("approval", approval(n))
        assert checkpoint_entries(path) == [1, 5, 9]
    assert checkpoint_entries(path) == [1, 5, 9, 10]
    report = verify_log(path, key=keys / "log.pub")
    assert report.ok and (report.checkpoints, report.covered) == (4, 10)


def test_a_checkpoint_is_due_after_checkpoint_seconds(tmp_path, keys):
    path = tmp_path / "d.jsonl"
    clock = FakeClock("2026-01-01T00:00:00Z")
    with DecisionLog(
        path, fsync="none", signing_key=keys / "log.key", clock=clock, checkpoint_seconds=30
    ) as log:
        log.append("approval", approval(0))
        clock.advance(seconds=29)
        log.append("approval", approval(1))
        assert checkpoint_entries(path) == [1]
        clock.advance(seconds=1)
        log.append("approval", approval(2))
        assert checkpoint_entries(path) == [1, 3]


def test_a_new_writer_resumes_the_schedule_from_the_checkpoint_file(tmp_path, keys):
    path = tmp_path / "d.jsonl"
    options = {"fsync": "none", "signing_key": keys / "log.key", "checkpoint_entries": 3}
    with DecisionLog(path, **options) as log:
        log.append("approval", approval(0))
        log.append("approval", approval(1))
    with DecisionLog(path, **options) as log:
        for n in range(2, 6):
            log.append("approval", approval(n))
        assert checkpoint_entries(path) == [1, 2, 5]
    assert verify_log(path, key=keys / "log.pub").ok


def test_writers_sharing_a_log_sign_one_chain(tmp_path, keys):
    path = tmp_path / "d.jsonl"
    options = {"fsync": "none", "signing_key": keys / "log.key", "checkpoint_entries": 2}
    with DecisionLog(path, **options) as first, DecisionLog(path, **options) as second:
        for n in range(9):
            (first if n % 2 else second).append("approval", approval(n))
    report = verify_log(path, key=keys / "log.pub")
    assert report.ok and report.covered == 9


def test_a_torn_checkpoint_line_is_cut_by_the_next_writer(tmp_path, keys):
    path = tmp_path / "d.jsonl"
    options = {"fsync": "none", "signing_key": keys / "log.key", "checkpoint_entries": 2}
    with DecisionLog(path, **options) as log:
        log.append("approval", approval(0))
    checkpoints = cp.checkpoint_path(path)
    checkpoints.write_bytes(checkpoints.read_bytes() + b'{"entries":7,"he')
    assert verify_log(path, key=keys / "log.pub").ok  # a crash mid-checkpoint is no tampering
    with DecisionLog(path, **options) as log:
        log.append("approval", approval(1))
    assert checkpoint_entries(path) == [1, 2]
    assert verify_log(path, key=keys / "log.pub").ok


def test_a_checkpoint_that_cannot_be_written_never_fails_the_append(tmp_path, keys, caplog):
    path = tmp_path / "d.jsonl"
    cp.checkpoint_path(path).mkdir()  # the checkpoint file cannot be opened
    with DecisionLog(path, fsync="none", signing_key=keys / "log.key") as log:
        entry = log.append("approval", approval(0))
        log.append("approval", approval(1))
        assert entry.seq == 1 and log.checkpoint_faults == 2
        assert "checkpoint of" in log.last_checkpoint_fault
    assert "not written" in caplog.text
    cp.checkpoint_path(path).rmdir()
    assert verify_log(path).ok


class FailingStore:
    name = "failing"

    def add_checkpoint(self, log_id: str, entries: int, line: str) -> None:
        raise OSError("disk full")

    def checkpoints(self, log_id: str) -> list[str]:
        return []


def test_a_store_that_fails_is_counted_not_raised(tmp_path, keys):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(
        path, fsync="none", signing_key=keys / "log.key", checkpoint_store=FailingStore()
    )
    log.append("approval", approval(0))
    log.close()
    assert log.checkpoint_faults == 1
    assert "not copied to failing: disk full" in (log.last_checkpoint_fault or "")
    assert verify_log(path, key=keys / "log.pub").ok


def test_a_gate_copies_its_log_s_checkpoints_to_its_ledger(
    tmp_path, keys, make_action, ledger_url, capsys, plain_console
):
    gate = Gate.from_pack(
        PACK,
        ledger=ledger_url,
        log=tmp_path / "d.jsonl",
        clock=FakeClock("2025-03-13T14:00:10Z"),
        log_options={"signing_key": keys / "log.key", "checkpoint_entries": 2},
    )
    for n in range(5):
        gate.check(make_action(id=f"act-{n}"))
    gate.close()
    ledger = open_ledger(ledger_url)
    report = verify_log(tmp_path / "d.jsonl", key=keys / "log.pub", ledger=ledger)
    assert report.ok, report.problems
    assert report.entries >= 5 and report.covered == report.last_seq
    log_id = json.loads(cp.checkpoint_path(tmp_path / "d.jsonl").read_text().splitlines()[0])["log"]
    assert len(ledger.checkpoints(log_id)) == len(checkpoint_entries(tmp_path / "d.jsonl"))
    ledger.close()
    # the command line reads the same copy, from either store
    verify = ["log", "verify", str(tmp_path / "d.jsonl"), "--key", str(keys / "log.pub")]
    assert main([*verify, "--ledger", ledger_url]) == 0


def test_an_older_log_is_adopted_by_signing_its_head(tmp_path, keys, capsys, plain_console):
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, fsync="none") as log:
        for n in range(3):
            log.append("approval", approval(n))
    assert main(["log", "verify", str(path), "--key", str(keys / "log.pub")]) == 1
    assert "V015" in capsys.readouterr().out
    assert main(["log", "checkpoint", str(path), "--key", str(keys / "log.key")]) == 0
    assert "signed: 3 entries" in capsys.readouterr().out
    assert main(["log", "checkpoint", str(path), "--key", str(keys / "log.key")]) == 0
    assert "already covers" in capsys.readouterr().out
    assert main(["log", "verify", str(path), "--key", str(keys / "log.pub")]) == 0
    assert "1 signed checkpoints hold" in capsys.readouterr().out


# ---------------------------------------------------------------------------- keys


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path, capsys, plain_console):
    assert main(["log", "keygen", str(tmp_path / "k")]) == 0
    assert "sha256:" in capsys.readouterr().out
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert b"PUBLIC KEY" in (tmp_path / "k.pub").read_bytes()
    assert main(["log", "keygen", str(tmp_path / "k")]) == 2
    assert "already exists; not overwriting" in capsys.readouterr().err


def _encrypted_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )


def _rsa_public_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (None, "cannot read the key"),
        (lambda p: p.write_text("not a key\n"), "not a PEM public key"),
        (lambda p: p.write_bytes(b""), "not a PEM public key"),
        (_rsa_public_key, "the key is RSA; checkpoints are signed with Ed25519"),
        ("private", "a private key; verify with the public key (.pub)"),
    ],
)
def test_verify_key_errors_are_one_line(tmp_path, keys, capsys, plain_console, make, message):
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, fsync="none") as log:
        log.append("approval", approval(0))
    key = keys / "log.key" if make == "private" else tmp_path / "bad.pub"
    if callable(make):
        make(key)
    assert main(["log", "verify", str(path), "--key", str(key)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "make, message",
    [
        (_encrypted_key, "the private key is encrypted"),
        ("public", "a public key; signing needs the private key"),
        (lambda p: p.write_text("-----BEGIN PRIVATE KEY-----\nxx\n"), "not a PEM private key"),
    ],
)
def test_signing_key_errors_are_one_line(tmp_path, keys, capsys, plain_console, make, message):
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, fsync="none") as log:
        log.append("approval", approval(0))
    key = keys / "log.pub" if make == "public" else tmp_path / "bad.key"
    if callable(make):
        make(key)
    with pytest.raises(LogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DecisionLog(path, signing_key=key)
    assert main(["log", "checkpoint", str(path), "--key", str(key)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_verify_without_a_ledger_file_is_a_usage_error(tmp_path, capsys, plain_console):
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, fsync="none") as log:
        log.append("approval", approval(0))
    assert main(["log", "verify", str(path), "--ledger", str(tmp_path / "none.db")]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
