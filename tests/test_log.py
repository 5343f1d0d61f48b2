"""The decision log: hash chain, tamper detection, crash recovery, concurrency, rotation,
fsync policies, sensitive fields."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigre_policy import load_pack
from aigre_policy.cli.main import main
from aigre_policy.compiler import compile_pack
from aigre_policy.gate.chain import GENESIS, decode, encode, seal
from aigre_policy.gate.log import (
    DecisionLog,
    LogError,
    log_files,
    read_log,
    validate_body,
    verify_log,
)
from aigre_policy.gate.redact import FIXED_MASK, Redactor

REPO = Path(__file__).resolve().parent.parent


def body(n: int = 0, decision: str = "allow", **action) -> dict:
    return {
        "verdict": {"decision": decision, "decision_id": f"d-{n}", "fired": []},
        "input": {"action": {"id": f"a-{n}", "kind": "scale", **action}, "context": {}},
    }


def write(path: Path, count: int, **options) -> list:
    with DecisionLog(path, fsync="none", **options) as log:
        return [log.append("decision", body(i)) for i in range(count)]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def codes(report) -> list[tuple[int, str]]:
    return [(p.line, p.code) for p in report.problems]


# ------------------------------------------------------------------------ the chain


def test_entries_chain_each_to_the_one_before(tmp_path):
    entries = write(tmp_path / "d.jsonl", 4)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev == GENESIS
    assert [e.prev for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert [e.id for e in entries] == ["d-0", "d-1", "d-2", "d-3"]
    report = verify_log(tmp_path / "d.jsonl")
    assert report.ok and report.entries == 4 and report.last_hash == entries[-1].hash


def test_lines_are_canonical_json_and_round_trip(tmp_path):
    (entry,) = write(tmp_path / "d.jsonl", 1)
    line = (tmp_path / "d.jsonl").read_bytes()
    assert line == encode(entry)
    decoded, intact = decode(line)
    assert intact and decoded == entry
    assert list(json.loads(line)) == sorted(json.loads(line))


def test_a_new_writer_continues_the_chain(tmp_path):
    path = tmp_path / "d.jsonl"
    first = write(path, 2)
    second = write(path, 2)
    assert [e.seq for e in second] == [3, 4]
    assert second[0].prev == first[-1].hash
    assert verify_log(path).ok


def test_reader_streams_entries_in_order(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 5, max_bytes=700)
    assert len(log_files(path)) > 1
    assert [e.seq for e in read_log(path)] == [1, 2, 3, 4, 5]


def test_reader_raises_on_a_line_that_is_not_an_entry(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 2)
    path.write_bytes(path.read_bytes() + b"{nope}\n")
    with pytest.raises(LogError, match=r"d.jsonl:3: not JSON"):
        list(read_log(path))


def test_reader_refuses_a_line_that_is_not_canonical(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 2)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    with pytest.raises(LogError, match=r"d.jsonl:1: not in canonical form, a carriage return"):
        list(read_log(path))


# ------------------------------------------------------------------- tamper detection


def test_an_edited_line_is_reported_at_its_line(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 5)
    lines = lines_of(path)
    lines[2] = lines[2].replace(b'"kind":"scale"', b'"kind":"deploy"')
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert codes(report) == [(3, "V002")]
    assert "seq 3" in report.problems[0].message and "edited" in report.problems[0].message


def test_an_edit_with_its_hash_recomputed_breaks_the_next_line(tmp_path):
    path = tmp_path / "d.jsonl"
    entries = write(path, 5)
    forged = seal(3, "d-2", "decision", entries[2].time, entries[2].prev, body(99, "deny"))
    lines = lines_of(path)
    lines[2] = encode(forged)
    path.write_bytes(b"".join(lines))
    assert codes(verify_log(path)) == [(4, "V005")]


def test_a_removed_line_is_reported_with_the_missing_seq(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 5)
    lines = lines_of(path)
    del lines[1]
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert codes(report) == [(2, "V003")]
    assert "seq 3 where 2 was expected: seq 2 removed" in report.problems[0].message


def test_reordered_lines_are_reported_at_both_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 5)
    lines = lines_of(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    assert codes(verify_log(path)) == [(2, "V003"), (3, "V004")]


def test_an_inserted_line_is_reported(tmp_path):
    path = tmp_path / "d.jsonl"
    entries = write(path, 4)
    # a well-formed entry claiming the next seq after line 2
    forged = seal(3, "x", "decision", entries[1].time, entries[1].hash, body(7))
    lines = lines_of(path)
    lines.insert(2, encode(forged))
    path.write_bytes(b"".join(lines))
    assert codes(verify_log(path)) == [(4, "V004")]


def test_a_duplicated_line_is_reported(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 3)
    lines = lines_of(path)
    lines.insert(2, lines[1])
    path.write_bytes(b"".join(lines))
    assert codes(verify_log(path)) == [(3, "V004")]


def test_a_line_that_is_not_an_entry_is_l001(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 3)
    lines = lines_of(path)
    lines[1] = b'{"hello": 1}\n'
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert codes(report) == [(2, "V001")]  # the line held seq 2: seq 3 follows it
    assert "missing" in report.problems[0].message


# The six edits measured to verify as intact while the chain hashed a re-serialised
# parse: each leaves the parsed entry (as Python reads it) unchanged.
FORM_ONLY_EDITS = {
    "whitespace": (b'"kind":"scale"', b'"kind" : "scale"', "column"),
    "crlf": (b"}\n", b"}\r\n", "CRLF"),
    "bom": (b'{"body"', b'\xef\xbb\xbf{"body"', "byte-order mark"),
    "reordered keys": (b'"id":"a-1","kind":"scale"', b'"kind":"scale","id":"a-1"', "column"),
    "escape": (b'"allow"', b'"\\u0061llow"', "column"),
    "duplicate key": (b'"decision":"allow"', b'"decision":"deny","decision":"allow"', "twice"),
}


@pytest.mark.parametrize("name", list(FORM_ONLY_EDITS))
def test_a_line_changed_only_in_form_is_reported_at_its_line(tmp_path, name):
    old, new, words = FORM_ONLY_EDITS[name]
    path = tmp_path / "d.jsonl"
    write(path, 3)
    lines = lines_of(path)
    assert old in lines[1]
    lines[1] = lines[1].replace(old, new, 1)
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert codes(report) == [(2, "V010" if name == "duplicate key" else "V009")]
    assert words in report.problems[0].message


def test_a_log_missing_its_start_is_l006(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 3)
    path.write_bytes(b"".join(lines_of(path)[1:]))
    assert codes(verify_log(path)) == [(1, "V006")]


def test_a_cut_tail_is_only_caught_with_an_anchor(tmp_path):
    path = tmp_path / "d.jsonl"
    entries = write(path, 4)
    path.write_bytes(b"".join(lines_of(path)[:3]))
    assert verify_log(path).ok  # a chain cannot know what came after its end
    report = verify_log(path, anchor=entries[-1].hash)
    assert [p.code for p in report.problems] == ["V008"]
    assert verify_log(path, anchor=entries[1].hash).ok


MUTATIONS = st.sampled_from(["edit", "remove", "swap", "duplicate"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(count=st.integers(3, 9), mutation=MUTATIONS, data=st.data())
def test_any_single_tampering_is_found_at_the_right_line(tmp_path, count, mutation, data):
    path = tmp_path / f"h-{count}-{mutation}.jsonl"
    if path.exists():
        path.unlink()
    write(path, count)
    lines = lines_of(path)
    # an index whose change the chain itself can see (not the very last line)
    index = data.draw(st.integers(0, count - 2))
    if mutation == "edit":
        lines[index] = lines[index].replace(b'"kind":"scale"', b'"kind":"scald"')
        expected = index + 1
    elif mutation == "remove":
        del lines[index]
        expected = index + 1
    elif mutation == "swap":
        lines[index], lines[index + 1] = lines[index + 1], lines[index]
        expected = index + 1
    else:
        lines.insert(index, lines[index])
        expected = index + 2
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert not report.ok
    assert report.problems[0].line == expected, (mutation, index, report.problems)


# --------------------------------------------------------------------- rotation


def test_rotation_chains_across_files(tmp_path):
    path = tmp_path / "d.jsonl"
    entries = write(path, 6, max_bytes=700)
    files = log_files(path)
    assert files[-1] == path and len(files) >= 3
    assert [f.name for f in files[:-1]] == [f"d.jsonl.{i}" for i in range(1, len(files))]
    for file in files:
        assert file.stat().st_size <= 700 or len(lines_of(file)) == 1
    # the first entry of each file carries the hash of the previous file's last entry
    for older, newer in itertools.pairwise(files):
        last, _ = decode(lines_of(older)[-1])
        first, _ = decode(lines_of(newer)[0])
        assert first.prev == last.hash
    report = verify_log(path)
    assert report.ok and report.entries == 6 and report.last_hash == entries[-1].hash


def test_a_missing_rotated_file_is_reported_in_the_next_file(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 6, max_bytes=700)
    files = log_files(path)
    removed = len(lines_of(files[1]))
    files[1].unlink()
    report = verify_log(path)
    (problem,) = report.problems
    assert problem.code == "V003" and problem.line == 1 and problem.file == str(files[2])
    assert f"where {len(lines_of(files[0])) + 1} was expected" in problem.message
    assert removed >= 1


def test_a_writer_continues_the_chain_into_a_fresh_file_after_rotation(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 3, max_bytes=700)
    path.write_bytes(b"")  # the active file was rotated out and a new empty one created
    rotated = log_files(path)[-2]
    last, _ = decode(lines_of(rotated)[-1])
    (entry,) = write(path, 1)
    assert entry.seq == last.seq + 1 and entry.prev == last.hash


# -------------------------------------------------------------- crashes and torn lines

CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from aigre_policy.gate.log import DecisionLog

    path, ready = sys.argv[1], sys.argv[2]
    real_write = os.write

    def write_half_then_hang(fd, data):
        if len(data) > 100_000:  # the large entry: stop half-way, as a kill would
            real_write(fd, bytes(data[: len(data) // 2]))
            open(ready, "w").close()
            time.sleep(60)
        return real_write(fd, data)

    log = DecisionLog(path, fsync="entry")
    for i in range(3):
        log.append("decision", {"verdict": {"decision": "allow", "decision_id": f"d-{i}"},
                                "input": {"action": {"kind": "scale"}}})
    os.write = write_half_then_hang
    log.append("decision", {"verdict": {"decision": "deny", "decision_id": "big"},
                            "input": {"action": {"kind": "scale", "blob": "x" * 300_000}}})
    """
)


def kill_mid_line(tmp_path: Path) -> Path:
    """Run a writer that is SIGKILLed half-way through writing a large entry."""
    path, ready = tmp_path / "d.jsonl", tmp_path / "ready"
    script = tmp_path / "writer.py"
    script.write_text(CRASHING_WRITER)
    child = subprocess.Popen([sys.executable, str(script), str(path), str(ready)], cwd=REPO)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert child.poll() is None, "the writer exited before the partial write"
        assert time.monotonic() < deadline, "the writer never reached the partial write"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    return path


def test_a_writer_killed_mid_line_leaves_a_torn_line_verify_pinpoints(tmp_path):
    path = kill_mid_line(tmp_path)
    report = verify_log(path)
    assert report.entries == 3
    (problem,) = report.problems
    assert problem.code == "V007" and problem.line == 4 and problem.file == str(path)
    torn = len(lines_of(path)[-1])
    assert f"{torn} bytes without a newline" in problem.message
    assert report.only_torn
    assert [e.seq for e in read_log(path)] == [1, 2, 3]  # the reader skips the torn line


def test_a_new_writer_repairs_a_torn_line_and_records_it(tmp_path):
    path = kill_mid_line(tmp_path)
    torn = lines_of(path)[-1]
    # the dead writer held the lock: it must be free again
    with DecisionLog(path, lock_timeout=5) as log:
        entry = log.append("decision", body(10))
        assert log.recoveries == 1
    assert entry.seq == 5
    report = verify_log(path)
    assert report.ok and report.entries == 5
    (recovery,) = report.recoveries
    assert recovery.line == 4
    entries = list(read_log(path))
    assert entries[3].kind == "recovery"
    assert entries[3].body["torn_bytes"] == len(torn)
    assert entries[3].body["offset"] == sum(len(line) for line in lines_of(path)[:3])
    assert entries[3].body["torn_text"].startswith('{"body":{"input"')
    assert entries[4].prev == entries[3].hash


def test_a_torn_first_line_is_repaired_into_a_fresh_chain(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"body":{"inp')
    assert codes(verify_log(path)) == [(1, "V007")]
    (entry,) = write(path, 1)
    entries = list(read_log(path))
    assert [e.kind for e in entries] == ["recovery", "decision"]
    assert entries[0].prev == GENESIS and entry.seq == 2
    assert verify_log(path).ok


def test_a_writer_killed_at_a_random_moment_leaves_a_log_that_resumes(tmp_path):
    path = tmp_path / "d.jsonl"
    script = tmp_path / "loop.py"
    script.write_text(
        "import sys\nfrom aigre_policy.gate.log import DecisionLog\n"
        "log = DecisionLog(sys.argv[1], fsync='none')\n"
        "i = 0\nwhile True:\n"
        "    log.append('decision', {'verdict': {'decision': 'allow', 'decision_id': str(i)},"
        " 'input': {'action': {'blob': 'y' * 200_000}}})\n    i += 1\n"
    )
    child = subprocess.Popen([sys.executable, str(script), str(path)], cwd=REPO)
    deadline = time.monotonic() + 30
    while not path.exists() or path.stat().st_size < 2_000_000:
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    report = verify_log(path)
    assert report.ok or report.only_torn
    write(path, 1)
    assert verify_log(path).ok


def test_a_tampered_last_entry_stops_the_writer(tmp_path):
    path = tmp_path / "d.jsonl"
    write(path, 2)
    lines = lines_of(path)
    lines[-1] = lines[-1].replace(b'"kind":"scale"', b'"kind":"deploy"')
    path.write_bytes(b"".join(lines))
    with pytest.raises(LogError, match="does not match its content"), DecisionLog(path) as log:
        log.append("decision", body(3))


# ------------------------------------------------------------------- concurrency

CONCURRENT_WRITER = textwrap.dedent(
    """
    import sys
    from aigre_policy.gate.log import DecisionLog

    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with DecisionLog(path, fsync="batch", max_bytes=40_000) as log:
        for i in range(count):
            log.append("decision", {"verdict": {"decision": "allow",
                                                "decision_id": f"{name}-{i}"},
                                    "input": {"action": {"writer": name, "i": i}}})
    """
)


def test_processes_appending_at_once_lose_nothing_and_the_chain_verifies(tmp_path):
    path = tmp_path / "d.jsonl"
    script = tmp_path / "writer.py"
    script.write_text(CONCURRENT_WRITER)
    writers, count = 4, 150
    children = [
        subprocess.Popen([sys.executable, str(script), str(path), f"w{n}", str(count)], cwd=REPO)
        for n in range(writers)
    ]
    assert all(child.wait(timeout=120) == 0 for child in children)
    report = verify_log(path)
    assert report.ok, report.problems[:3]
    assert report.entries == writers * count and report.last_seq == writers * count
    assert len(report.files) > 1  # rotation happened while others were writing
    ids = [e.id for e in read_log(path)]
    assert sorted(ids) == sorted(f"w{n}-{i}" for n in range(writers) for i in range(count))
    for n in range(writers):  # each writer's entries keep their order
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(f"w{n}-")]
        assert mine == sorted(mine)


def test_threads_sharing_one_log_lose_nothing(tmp_path):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path, fsync="none")

    def work(n: int) -> None:
        for i in range(50):
            log.append("decision", body(n * 1000 + i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    report = verify_log(path)
    assert report.ok and report.entries == 200


# ------------------------------------------------------------------ fsync policies


@pytest.mark.parametrize(
    ("policy", "appends", "expected"),
    [("entry", 5, 5), ("batch", 7, 2), ("none", 7, 0)],
)
def test_fsync_policy_decides_how_often_the_file_is_synced(
    tmp_path, monkeypatch, policy, appends, expected
):
    synced: list[int] = []
    real = os.fsync
    log = DecisionLog(tmp_path / "d.jsonl", fsync=policy, batch_entries=3, batch_seconds=3600)
    log.append("decision", body(0))  # the file exists: later syncs are the entries'
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    for i in range(1, appends + 1):
        log.append("decision", body(i))
    assert len(synced) == expected
    log.close()
    assert len(synced) == expected + (1 if policy == "batch" else 0)  # close syncs the rest


def test_batch_policy_syncs_after_the_interval(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    log = DecisionLog(tmp_path / "d.jsonl", fsync="batch", batch_entries=1000, batch_seconds=0.0)
    log.append("decision", body(0))  # creates the file (and syncs its directory)
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    log.append("decision", body(1))
    log.append("decision", body(2))
    assert len(synced) == 2
    log.close()


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(LogError, match="fsync must be one of entry, batch, none"):
        DecisionLog(tmp_path / "d.jsonl", fsync="sometimes")
    with pytest.raises(LogError, match="max_bytes"):
        DecisionLog(tmp_path / "d.jsonl", max_bytes=0)
    with pytest.raises(LogError, match="expected mask or drop"):
        DecisionLog(tmp_path / "d.jsonl", sensitive={"action.target": "hide"})


# --------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        ("verdict", {}, "unknown entry kind 'verdict'"),
        ("decision", {"input": {}}, "needs `verdict`"),
        ("decision", {"verdict": {"decision": "allow"}}, "needs `input`"),
        ("shadow", {"verdict": {"decision": "maybe"}, "input": {}}, "needs `verdict`"),
        ("approval", {"decision_id": "d", "status": "pending"}, "approval `status`"),
        ("approval", {"status": "granted"}, "needs `decision_id`"),
        (
            "review",
            {"decision_id": "d", "reviewer": {"kind": "robot"}, "decision": "allow"},
            "reviewer.kind",
        ),
        (
            "review",
            {"decision_id": "d", "reviewer": {"kind": "llm"}, "decision": "ok"},
            "review `decision`",
        ),
        ("outcome", {"decision_id": "d", "status": "done"}, "outcome `status`"),
        ("outcome", {"decision_id": "d", "status": "executed", "cost_usd": -1}, "cost_usd"),
        ("decision", [], "must be a mapping"),
    ],
)
def test_bodies_are_checked_before_they_are_logged(tmp_path, kind, payload, message):
    assert any(message in p for p in validate_body(kind, payload))
    with pytest.raises(LogError, match="".join("\\" + c if c in "`.()" else c for c in message)):
        DecisionLog(tmp_path / "d.jsonl").append(kind, payload)
    assert not (tmp_path / "d.jsonl").exists() or verify_log(tmp_path / "d.jsonl").entries == 0


def test_a_body_that_is_not_json_data_is_refused(tmp_path):
    with pytest.raises(LogError, match="not JSON data"):
        DecisionLog(tmp_path / "d.jsonl").append("decision", body(0, cost=float("nan")))


def test_every_kind_is_logged(tmp_path):
    path = tmp_path / "d.jsonl"
    with DecisionLog(path) as log:
        log.append("decision", body(1, "require_approval"))
        log.append("shadow", {**body(2, "deny"), "shadow_of": "d-1"})
        log.append("approval", {"decision_id": "d-1", "status": "granted", "by": "kim"})
        log.append(
            "review",
            {
                "decision_id": "d-1",
                "tier": 1,
                "reviewer": {"kind": "llm", "id": "judge"},
                "decision": "allow",
            },
        )
        log.append("outcome", {"decision_id": "d-1", "status": "executed", "cost_usd": 3.5})
    assert [e.kind for e in read_log(path)] == [
        "decision",
        "shadow",
        "approval",
        "review",
        "outcome",
    ]
    assert verify_log(path).ok


def test_the_clock_stamps_entries_in_utc(tmp_path):
    moment = datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC)
    log = DecisionLog(tmp_path / "d.jsonl", clock=lambda: moment)
    assert log.append("decision", body(0)).time == "2026-03-01T12:00:00.000005Z"
    naive = DecisionLog(tmp_path / "e.jsonl", clock=lambda: datetime(2026, 3, 1))
    with pytest.raises(LogError, match="timezone-aware"):
        naive.append("decision", body(0))


# -------------------------------------------------------------- sensitive fields


def test_masked_and_dropped_fields_never_reach_the_file(tmp_path):
    path = tmp_path / "d.jsonl"
    sensitive = {"action.target": "mask", "action.secret": "drop", "action.people.name": "mask"}
    with DecisionLog(path, sensitive=sensitive) as log:
        entry = log.append(
            "decision",
            body(
                0,
                target="payroll-db",
                secret="hunter2",
                people=[{"name": "Ada", "age": 36}, {"name": "Bo"}],
            ),
        )
    text = path.read_text()
    for secret in ("payroll-db", "hunter2", "Ada", '"Bo"'):
        assert secret not in text
    action = entry.body["input"]["action"]
    assert action["target"] == FIXED_MASK and "secret" not in action
    assert action["people"] == [{"name": FIXED_MASK, "age": 36}, {"name": FIXED_MASK}]
    assert entry.body["redacted"] == {
        "action.people.name": "mask",
        "action.secret": "drop",
        "action.target": "mask",
    }


def test_a_mask_key_gives_a_keyed_hash_that_matches_equal_values(tmp_path):
    with DecisionLog(
        tmp_path / "d.jsonl", sensitive={"action.target": "mask"}, mask_key="k1"
    ) as log:
        one = log.append("decision", body(0, target="payroll-db"))
        two = log.append("decision", body(1, target="payroll-db"))
        other = log.append("decision", body(2, target="billing"))
    masked = one.body["input"]["action"]["target"]
    assert masked.startswith("hmac-sha256:") and len(masked) == len("hmac-sha256:") + 64
    assert masked == two.body["input"]["action"]["target"]
    assert masked != other.body["input"]["action"]["target"]
    assert Redactor.from_spec({"a.b": "mask"}, "k2").mask_value("payroll-db") != masked


def test_fields_absent_from_the_input_are_not_reported_redacted(tmp_path):
    with DecisionLog(tmp_path / "d.jsonl", sensitive={"action.secret": "drop"}) as log:
        entry = log.append("decision", body(0))
    assert "redacted" not in entry.body


def test_the_verdict_evidence_of_a_sensitive_field_is_masked(tmp_path, new_pack, make_action):
    root = new_pack(
        """
        rule eu-subjects {
          title: "EU subjects need privacy"
          deny when has action.data.subject_regions and "eu" in action.data.subject_regions
          because "subjects in {action.data.subject_regions}"
        }
        rule costly {
          deny when action.cost.estimated_usd > 5
          because "costs {action.cost.estimated_usd}"
        }
        """,
        manifest={"sensitive": {"action.data.subject_regions": "mask"}},
    )
    pack = load_pack(root)
    assert pack.sensitive == {"action.data.subject_regions": "mask"}
    action = make_action(data={"classification": "restricted", "subject_regions": ["eu", "ch"]})
    verdict = pack.evaluate(action, {"now": "2026-11-20T10:00:00Z"})
    assert verdict.decision == "deny"
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, sensitive=pack.sensitive) as log:
        entry = log.append(
            "decision",
            {"verdict": verdict.to_dict(), "input": {"action": action, "context": {}}},
        )
    assert '"ch"' not in path.read_text()
    fired = {f["id"]: f for f in entry.body["verdict"]["fired"]}
    private = fired["eu-subjects"]
    assert private["message"] == "EU subjects need privacy" and private["redacted"] is True
    assert private["bindings"]["action.data.subject_regions"] == FIXED_MASK
    assert all(c["left"] == FIXED_MASK for c in private["comparisons"])
    assert fired["costly"]["message"] == "costs 10"  # rules that read nothing sensitive keep theirs


def test_schema_errors_about_a_sensitive_field_lose_the_value(tmp_path):
    redactor = Redactor.from_spec({"action.target": "drop"})
    result = redactor.apply(
        {
            "verdict": {
                "decision": "deny",
                "errors": [{"kind": "input", "path": "action.target", "message": "'x' bad"}],
            },
            "input": {"action": {}},
        }
    )
    (problem,) = result["verdict"]["errors"]
    assert "'x'" not in problem["message"] and result["redacted"] == {"action.target": "drop"}


@settings(max_examples=40, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    action=st.sampled_from(["mask", "drop"]),
)
def test_redaction_never_changes_the_caller_s_body(value, action):
    original = {"verdict": {"decision": "allow"}, "input": {"action": {"secret": value, "k": 1}}}
    snapshot = json.dumps(original, sort_keys=True)
    result = Redactor.from_spec({"action.secret": action}).apply(original)
    assert json.dumps(original, sort_keys=True) == snapshot
    if action == "drop":
        assert "secret" not in result["input"]["action"]
    else:
        assert result["input"]["action"]["secret"] == FIXED_MASK
    assert result["input"]["action"]["k"] == 1


def test_unknown_sensitive_path_is_e506(new_pack):
    root = new_pack(
        "rule r { deny when action.cost.estimated_usd > 5 }",
        manifest={
            "sensitive": {
                "action.data.subjcet_regions": "mask",
                "action.target.inner": "drop",
                "action.approvals.by": "mask",
            }
        },
    )
    report = compile_pack(root)
    found = [d for d in report.diagnostics if d.code == "E506"]
    assert [d.message for d in found] == [
        "sensitive path `action.data.subjcet_regions`: action.data has no field `subjcet_regions`",
        "sensitive path `action.target.inner`: `action.target` is a string, it has no fields",
    ]
    assert found[0].hint == "did you mean `subject_regions`?"
    assert found[0].span is not None and found[0].span.line == 5
    assert not report.ok


def test_sensitive_actions_other_than_mask_or_drop_break_the_pack_schema(new_pack):
    root = new_pack(
        "rule r { deny when action.cost.estimated_usd > 5 }",
        manifest={"sensitive": {"action.target": "hash", "target": "mask"}},
    )
    messages = [d.message for d in compile_pack(root).diagnostics if d.code == "E502"]
    assert any("'hash' is not one of ['mask', 'drop']" in m for m in messages)
    assert any("'target' does not match" in m for m in messages)


# --------------------------------------------------------------------------- CLI


def test_cli_verify_exit_codes(tmp_path, capsys, plain_console):
    path = tmp_path / "d.jsonl"
    write(path, 3)
    assert main(["log", "verify", str(path)]) == 0
    assert "intact: 3 entries in 1 file" in capsys.readouterr().out
    path.write_bytes(path.read_bytes() + b'{"body":{')
    assert main(["log", "verify", str(path)]) == 3
    out = capsys.readouterr().out
    assert "V007" in out and "d.jsonl:4: torn last line: 9 bytes" in out
    lines = lines_of(path)
    del lines[0]
    path.write_bytes(b"".join(lines))
    assert main(["log", "verify", str(path), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert [(p["line"], p["code"]) for p in data["problems"]] == [(1, "V006"), (3, "V007")]
    assert main(["log", "verify", str(tmp_path / "nope.jsonl")]) == 2
    assert "no log at" in capsys.readouterr().err


def test_cli_verify_anchor(tmp_path, capsys, plain_console):
    path = tmp_path / "d.jsonl"
    entries = write(path, 3)
    path.write_bytes(b"".join(lines_of(path)[:2]))
    assert main(["log", "verify", str(path), "--anchor", entries[-1].hash]) == 1
    assert "V008" in capsys.readouterr().out


# ------------------------------------------------------ a write that does not take


@pytest.mark.parametrize("failing", ["fsync", "write"])
def test_an_entry_whose_write_or_fsync_fails_is_taken_back_out_of_the_file(
    tmp_path, monkeypatch, failing
):
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path, fsync="entry")
    log.append("decision", body(0))
    before = path.read_bytes()
    real_write = os.write

    def fail(fd, data=b""):
        if failing == "write":  # half the line reaches the file, then the disk is full
            real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(LogError, match="Input/output error"):
        log.append("decision", body(1, decision="deny"))
    monkeypatch.undo()
    # the refused entry never stays: a reader must not see a decision that did not take effect
    assert path.read_bytes() == before
    entry = log.append("decision", body(2))
    log.close()
    assert entry.seq == 2
    assert [e.body["verdict"]["decision_id"] for e in read_log(path)] == ["d-0", "d-2"]
    report = verify_log(path)
    assert report.ok and report.entries == 2, report.problems
