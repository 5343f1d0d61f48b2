"""The decision log's tamper matrix: every way of editing a log or its checkpoints, and
the line ``aigre-policy log verify`` reports it at.

One signed log of 8 entries is written once (checkpoints every 3 entries: at seq 1, 4,
7 and, on close, 8; copied to a ledger); each case edits a copy and runs the CLI.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aigre_policy.cli.main import main
from aigre_policy.gate import checkpoint as cp
from aigre_policy.gate.chain import GENESIS, decode, encode, seal
from aigre_policy.gate.ledger import SqliteLedger
from aigre_policy.gate.log import DecisionLog, verify_log

ENTRIES = 8
EVERY = 3
CHECKPOINTED = (1, 4, 7, 8)  # the seqs the checkpoints cover, one per checkpoint line


def body(n: int) -> dict:
    return {
        "verdict": {"decision": "allow", "decision_id": f"d-{n}", "fired": []},
        "input": {"action": {"id": f"a-{n}", "kind": "scale", "cost": 10}, "context": {}},
    }


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    cp.generate_key_pair(root / "signing.key", root / "signing.pub")
    cp.generate_key_pair(root / "other.key", root / "other.pub")  # the attacker's own key
    ledger = SqliteLedger(root / "ledger.db")
    with DecisionLog(
        root / "d.jsonl",
        fsync="none",
        signing_key=root / "signing.key",
        checkpoint_entries=EVERY,
        checkpoint_store=ledger,
    ) as log:
        for n in range(ENTRIES):
            log.append("decision", body(n))
    ledger.close()
    return root


@dataclass
class Copy:
    root: Path
    capsys: pytest.CaptureFixture[str]
    messages: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.root / "d.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "d.jsonl.checkpoints"

    def lines(self) -> list[bytes]:
        return self.log.read_bytes().splitlines(keepends=True)

    def write(self, lines: list[bytes]) -> None:
        self.log.write_bytes(b"".join(lines))

    def checkpoint_lines(self) -> list[bytes]:
        return self.checkpoints.read_bytes().splitlines(keepends=True)

    def write_checkpoints(self, lines: list[bytes]) -> None:
        self.checkpoints.write_bytes(b"".join(lines))

    def verify(self, *options: str) -> tuple[int, list[tuple[str, int, str]]]:
        """``log verify`` on the copy: its exit code and (file name, line, code) problems;
        the messages are kept in ``self.messages``."""
        args = [str(self.log), "--format", "json"]
        for option in options:
            args += {
                "key": ["--key", str(self.root / "signing.pub")],
                "ledger": ["--ledger", f"sqlite:///{self.root / 'ledger.db'}"],
            }[option]
        code = main(["log", "verify", *args])
        report = json.loads(self.capsys.readouterr().out)
        self.messages = [p["message"] for p in report["problems"]]
        return code, [(Path(p["file"]).name, p["line"], p["code"]) for p in report["problems"]]


@pytest.fixture
def copy(pristine: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Copy:
    for item in pristine.iterdir():
        shutil.copy(item, tmp_path / item.name)
    return Copy(tmp_path, capsys)


def rechain(lines: list[bytes], start: int, edit: Callable[[dict], None]) -> list[bytes]:
    """Edit the body of line ``start`` (from 0) and recompute every hash from there on,
    as a writer of the file without the signing key can."""
    out = list(lines[:start])
    prev = decode(lines[start - 1])[0].hash if start else GENESIS
    for index, line in enumerate(lines[start:], start):
        entry, _ = decode(line)
        new_body = json.loads(json.dumps(entry.body))
        if index == start:
            edit(new_body)
        sealed = seal(entry.seq, entry.id, entry.kind, entry.time, prev, new_body)
        out.append(encode(sealed))
        prev = sealed.hash
    return out


def to_deny(body: dict) -> None:
    body["verdict"]["decision"] = "deny"


def resign(copy: Copy, key_file: str) -> None:
    """Replace the checkpoint file with checkpoints of the (edited) log signed by ``key_file``."""
    key = cp.load_private_key(copy.root / key_file)
    entries = [decode(line)[0] for line in copy.lines()]
    log_id = entries[0].hash
    copy.write_checkpoints(
        [
            cp.sign(key, log_id, seq, entries[seq - 1].hash, "2026-01-01T00:00:00.000000Z").line()
            for seq in CHECKPOINTED
            if seq <= len(entries)
        ]
    )


# ------------------------------------------------------------------ the unedited log


@pytest.mark.parametrize("options", [(), ("key",), ("ledger",), ("key", "ledger")])
def test_the_unedited_log_verifies(copy, options):
    assert copy.verify(*options) == (0, [])


def test_the_unedited_log_reports_its_checkpoints(copy):
    report = verify_log(copy.log, key=copy.root / "signing.pub")
    assert report.ok and report.signed
    assert (report.checkpoints, report.covered, report.last_seq) == (4, 8, 8)


# ------------------------------------------------------------ edits to a line's bytes

Edit = Callable[[list[bytes]], list[bytes]]


def _replace(index: int, old: bytes, new: bytes) -> Edit:
    def edit(lines: list[bytes]) -> list[bytes]:
        assert old in lines[index], (old, lines[index])
        return [*lines[:index], lines[index].replace(old, new, 1), *lines[index + 1 :]]

    return edit


def _reordered(index: int) -> Edit:
    def edit(lines: list[bytes]) -> list[bytes]:
        data = json.loads(lines[index])
        shuffled = dict(reversed(list(data.items())))
        line = json.dumps(shuffled, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        return [*lines[:index], line, *lines[index + 1 :]]

    return edit


BYTE_EDITS: dict[str, tuple[Edit, int, str, str]] = {
    # name: (edit, line reported, code, words in the message)
    "space after a colon": (
        _replace(2, b'"kind":"scale"', b'"kind": "scale"'),
        3,
        "V009",
        "column",
    ),
    "space before the newline": (_replace(2, b"}\n", b"} \n"), 3, "V009", "column"),
    "indented line": (_replace(2, b"{", b"  {"), 3, "V009", "column 1"),
    "crlf": (_replace(2, b"\n", b"\r\n"), 3, "V009", "CRLF"),
    "bom on the first line": (_replace(0, b"{", b"\xef\xbb\xbf{"), 1, "V009", "byte-order mark"),
    "bom on a middle line": (_replace(4, b"{", b"\xef\xbb\xbf{"), 5, "V009", "byte-order mark"),
    "reordered keys": (_reordered(2), 3, "V009", "canonical"),
    "unicode escape": (_replace(2, b'"allow"', b'"\\u0061llow"'), 3, "V009", "\\u0061"),
    "escaped slash": (_replace(2, b'"scale"', b'"sc\\/ale"'), 3, "V009", "column"),
    "number form": (_replace(2, b'"cost":10', b'"cost":1e1'), 3, "V009", "column"),
    "duplicate key, second wins": (
        _replace(2, b'"decision":"allow"', b'"decision":"deny","decision":"allow"'),
        3,
        "V010",
        "`decision` appears twice",
    ),
    "duplicate key, first wins": (
        _replace(2, b'"decision":"allow"', b'"decision":"allow","decision":"deny"'),
        3,
        "V010",
        "`decision` appears twice",
    ),
    "content edit": (_replace(2, b'"allow"', b'"deny!"'), 3, "V002", "edited"),
    "not json": (lambda lines: [*lines[:2], b"{oops\n", *lines[3:]], 3, "V001", "not JSON"),
    "invalid utf-8": (_replace(2, b'"scale"', b'"sc\xffle"'), 3, "V001", "not UTF-8"),
}


@pytest.mark.parametrize("name", list(BYTE_EDITS))
def test_an_edit_to_a_line_s_bytes_is_reported_at_its_line(copy, name):
    edit, line, code, words = BYTE_EDITS[name]
    copy.write(edit(copy.lines()))
    exit_code, problems = copy.verify()
    assert exit_code == 1
    assert problems[0] == ("d.jsonl", line, code), problems
    assert words in copy.messages[0]
    # one flaw, one report: the lines after it still chain
    assert all(found_line == line for _, found_line, _ in problems), problems


# ----------------------------------------------------- removals, moves, insertions


def _forged_insert(lines: list[bytes]) -> list[bytes]:
    before = decode(lines[1])[0]
    forged = seal(3, "forged", "decision", before.time, before.hash, body(99))
    return [*lines[:2], encode(forged), *lines[2:]]


STRUCTURE_EDITS: dict[str, tuple[Edit, tuple[str, int, str]]] = {
    "first line removed": (lambda lines: lines[1:], ("d.jsonl", 1, "V006")),
    "middle line removed": (lambda lines: [*lines[:2], *lines[3:]], ("d.jsonl", 3, "V003")),
    "two lines swapped": (
        lambda lines: [*lines[:2], lines[3], lines[2], *lines[4:]],
        ("d.jsonl", 3, "V003"),
    ),
    "line duplicated": (lambda lines: [*lines[:3], lines[2], *lines[3:]], ("d.jsonl", 4, "V004")),
    "line inserted": (_forged_insert, ("d.jsonl", 4, "V004")),
    "last line moved first": (lambda lines: [lines[-1], *lines[:-1]], ("d.jsonl", 1, "V006")),
}


@pytest.mark.parametrize("name", list(STRUCTURE_EDITS))
def test_removed_moved_and_inserted_lines_are_reported(copy, name):
    edit, expected = STRUCTURE_EDITS[name]
    copy.write(edit(copy.lines()))
    exit_code, problems = copy.verify("key")
    assert exit_code == 1
    assert problems[0] == expected, problems


def test_an_inserted_line_is_pinned_by_the_checkpoint_at_its_seq(copy):
    copy.write(_forged_insert(copy.lines()))
    _, problems = copy.verify("key")
    # the forged seq 3 is chained correctly; the original seq 3 after it is the duplicate
    assert ("d.jsonl", 4, "V004") in problems


# ---------------------------------------------------------------------- truncation


@pytest.mark.parametrize("keep", [7, 6, 3, 1])
def test_a_cut_tail_is_caught_by_the_checkpoint_file(copy, keep):
    copy.write(copy.lines()[:keep])
    exit_code, problems = copy.verify("key")
    assert exit_code == 1
    assert problems == [("d.jsonl", keep, "V013")]
    assert f"the log ends at seq {keep}" in copy.messages[0]


def test_a_cut_tail_with_its_checkpoints_cut_too_is_caught_by_the_ledger(copy):
    copy.write(copy.lines()[:5])
    copy.write_checkpoints(copy.checkpoint_lines()[:2])  # checkpoints at seq 1 and 4 remain
    assert copy.verify("key") == (0, [])  # the file's writer can hide it from the file alone
    exit_code, problems = copy.verify("key", "ledger")
    assert exit_code == 1
    assert ("d.jsonl", 5, "V013") in problems
    assert ("d.jsonl.checkpoints", 2, "V016") in problems


def test_an_emptied_log_is_caught(copy):
    copy.write([])
    exit_code, problems = copy.verify("key")
    assert exit_code == 1 and problems == [("d.jsonl", 0, "V013")]


# --------------------------------------------------------------- a recomputed chain


def test_a_recomputed_chain_verifies_as_a_chain(copy):
    copy.write(rechain(copy.lines(), 2, to_deny))
    copy.checkpoints.unlink()
    assert copy.verify() == (0, [])  # what the chain alone can show: nothing


@pytest.mark.parametrize("options", [(), ("key",), ("ledger",), ("key", "ledger")])
def test_a_recomputed_chain_does_not_match_the_checkpoints(copy, options):
    copy.write(rechain(copy.lines(), 2, to_deny))
    exit_code, problems = copy.verify(*options)
    assert exit_code == 1
    assert problems[0] == ("d.jsonl", 4, "V014"), problems
    assert "after seq 1 up to seq 4 were rewritten" in copy.messages[0]
    assert {line for _, line, code in problems if code == "V014"} == {4, 7, 8}


def test_a_recomputed_chain_with_its_checkpoints_deleted_needs_the_key(copy):
    copy.write(rechain(copy.lines(), 2, to_deny))
    copy.checkpoints.unlink()
    exit_code, problems = copy.verify("key")
    assert exit_code == 1 and problems == [("d.jsonl", 8, "V015")]
    exit_code, problems = copy.verify("ledger")
    assert exit_code == 1 and ("d.jsonl", 4, "V014") in problems


def test_a_recomputed_chain_re_signed_with_another_key_fails_the_real_key(copy):
    copy.write(rechain(copy.lines(), 2, to_deny))
    resign(copy, "other.key")
    assert copy.verify() == (0, [])  # without the key a forger's checkpoints look fine
    exit_code, problems = copy.verify("key")
    assert exit_code == 1
    assert [(line, code) for _, line, code in problems] == [
        (1, "V012"),
        (2, "V012"),
        (3, "V012"),
        (4, "V012"),
        (8, "V015"),
    ]
    assert "signed by another key" in copy.messages[0]


def test_a_log_rewritten_from_its_first_entry_names_another_log(copy):
    copy.write(rechain(copy.lines(), 0, to_deny))
    exit_code, problems = copy.verify("key")
    assert exit_code == 1
    assert {(name, code) for name, _, code in problems} == {
        ("d.jsonl.checkpoints", "V014"),
        ("d.jsonl", "V015"),
    }
    assert "names log" in copy.messages[0]


def test_a_rewritten_log_is_caught_by_the_ledger_without_the_key(copy):
    copy.write(rechain(copy.lines(), 0, to_deny))
    copy.checkpoints.unlink()
    exit_code, problems = copy.verify("ledger")
    assert exit_code == 1 and problems == [("d.jsonl", 8, "V015")]
    assert "the ledger holds no checkpoint" in copy.messages[0]


# ------------------------------------------------------------ the checkpoint file


def _edit_checkpoint(index: int, field: str, value: object) -> Callable[[list[bytes]], list[bytes]]:
    def edit(lines: list[bytes]) -> list[bytes]:
        data = json.loads(lines[index])
        data[field] = value
        line = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        return [*lines[:index], line, *lines[index + 1 :]]

    return edit


CHECKPOINT_EDITS: dict[str, tuple[Callable[[list[bytes]], list[bytes]], tuple[str, int, str]]] = {
    "entries lowered": (_edit_checkpoint(3, "entries", 5), ("d.jsonl.checkpoints", 4, "V012")),
    "entries raised": (_edit_checkpoint(1, "entries", 5), ("d.jsonl.checkpoints", 2, "V012")),
    "head replaced": (
        _edit_checkpoint(2, "head", "sha256:" + "1" * 64),
        ("d.jsonl.checkpoints", 3, "V012"),
    ),
    "time moved": (
        _edit_checkpoint(2, "time", "2020-01-01T00:00:00.000000Z"),
        ("d.jsonl.checkpoints", 3, "V012"),
    ),
    "signature swapped": (
        lambda lines: [
            lines[0],
            lines[1].replace(
                json.loads(lines[1])["sig"].encode(), json.loads(lines[2])["sig"].encode()
            ),
            *lines[2:],
        ],
        ("d.jsonl.checkpoints", 2, "V012"),
    ),
    "not a checkpoint": (
        lambda lines: [*lines[:1], b"{}\n", *lines[2:]],
        ("d.jsonl.checkpoints", 2, "V011"),
    ),
    "crlf": (
        lambda lines: [*lines[:1], lines[1].replace(b"\n", b"\r\n"), *lines[2:]],
        ("d.jsonl.checkpoints", 2, "V011"),
    ),
    "duplicate key": (
        lambda lines: [*lines[:1], lines[1].replace(b'"v":1', b'"v":1,"v":1'), *lines[2:]],
        ("d.jsonl.checkpoints", 2, "V011"),
    ),
}


@pytest.mark.parametrize("name", list(CHECKPOINT_EDITS))
def test_an_edited_checkpoint_is_reported_at_its_line(copy, name):
    edit, expected = CHECKPOINT_EDITS[name]
    copy.write_checkpoints(edit(copy.checkpoint_lines()))
    exit_code, problems = copy.verify("key")
    assert exit_code == 1
    assert problems[0] == expected, problems


def test_an_edited_checkpoint_without_the_key_still_disagrees_with_the_log(copy):
    copy.write_checkpoints(
        _edit_checkpoint(2, "head", "sha256:" + "1" * 64)(copy.checkpoint_lines())
    )
    exit_code, problems = copy.verify()
    assert exit_code == 1 and problems == [("d.jsonl", 7, "V014")]


def test_a_removed_checkpoint_file_is_caught_by_the_key_or_the_ledger(copy):
    copy.checkpoints.unlink()
    assert copy.verify() == (0, [])
    assert copy.verify("key") == (1, [("d.jsonl", 8, "V015")])
    assert copy.verify("ledger") == (1, [("d.jsonl.checkpoints", 0, "V016")])


def test_another_log_s_checkpoint_is_refused(copy, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    with DecisionLog(other / "o.jsonl", fsync="none", signing_key=copy.root / "signing.key") as log:
        log.append("decision", body(50))
    foreign = (other / "o.jsonl.checkpoints").read_bytes()
    copy.write_checkpoints([*copy.checkpoint_lines(), foreign])
    exit_code, problems = copy.verify("key")
    assert exit_code == 1 and problems == [("d.jsonl.checkpoints", 5, "V014")]


# ------------------------------------------------------------------ any single byte


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), operation=st.sampled_from(["replace", "insert", "delete"]))
def test_any_single_byte_changed_is_reported_at_its_line(pristine, data, operation):
    lines = (pristine / "d.jsonl").read_bytes().splitlines(keepends=True)
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    line = lines[index]
    at = data.draw(st.integers(0, len(line) - 1), label="offset")
    if operation == "delete":
        changed = line[:at] + line[at + 1 :]
    else:
        byte = data.draw(st.integers(0, 255), label="byte")
        keep = at + 1 if operation == "replace" else at
        changed = line[:at] + bytes([byte]) + line[keep:]
    assume(changed != line)
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        for name in ("d.jsonl.checkpoints", "signing.pub"):
            shutil.copy(pristine / name, root / name)
        (root / "d.jsonl").write_bytes(b"".join([*lines[:index], changed, *lines[index + 1 :]]))
        report = verify_log(root / "d.jsonl", key=root / "signing.pub")
    assert not report.ok
    assert report.problems[0].line == index + 1, (operation, at, report.problems)
