"""What a caller gets from a verdict is its own: editing it changes no verdict, later or this one.

A record's bindings and comparisons hold the values a rule read, among them an envelope's
list, which the evaluator reads on every later decision; the pack reference is shared by
every verdict of the pack. Whatever a caller does to what it was handed (a log redacting a
document in place, a UI appending to a list) must leave every verdict as the rules made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aigre_policy import load_pack
from tests.test_semantics import CONTEXT, action, make_pack

ENGINES = pytest.mark.parametrize("engine", ["native", "interpreter"])

REMIT = """
envelope remit { kinds: ["rollback", "restart"] }
rule outside {
  deny when action.kind not in remit.kinds or action.target == "zz"
  because "{action.kind} is not one of {remit.kinds}"
}
rule services {
  warn when action.blast_radius.services ?? [] == ["checkout"]
}
"""


def edit_every_container(value: Any) -> None:
    """Append to every list and add a key to every dict inside ``value``."""
    if isinstance(value, list):
        for item in value:
            edit_every_container(item)
        value.append("scale")
    elif isinstance(value, dict):
        for item in list(value.values()):
            edit_every_container(item)
        value["edited"] = True


def test_editing_a_records_envelope_list_does_not_change_later_decisions(tmp_path: Path) -> None:
    pack = load_pack(make_pack(tmp_path, REMIT))
    first = pack.evaluate(action(kind="scale"), CONTEXT)
    assert first.decision == "deny"
    assert first.fired[0]["bindings"]["remit.kinds"] == ["rollback", "restart"]
    edit_every_container(first.fired)
    edit_every_container(first.warnings)
    later = pack.evaluate(action(kind="scale"), CONTEXT)
    assert later.decision == "deny"
    assert later.fired[0]["bindings"]["remit.kinds"] == ["rollback", "restart"]
    assert later.fired[0]["comparisons"][0]["right"] == ["rollback", "restart"]
    assert pack.envelopes["remit"]["kinds"] == ["rollback", "restart"]


@ENGINES
def test_editing_a_published_document_changes_neither_its_verdict_nor_another(
    tmp_path: Path, engine: str
) -> None:
    pack = load_pack(make_pack(tmp_path, REMIT), engine=engine)
    verdict = pack.evaluate(action(kind="scale"), CONTEXT)
    before = verdict.to_json()
    document = verdict.to_dict()
    edit_every_container(document)
    assert verdict.to_json() == before
    assert verdict.fired == pack.evaluate(action(kind="scale"), CONTEXT).fired
    assert verdict.pack == {"name": "t", "version": "1.0.0", "digest": pack.digest}
    other = pack.evaluate(action(kind="scale"), CONTEXT)
    assert other.pack == verdict.pack and other.to_dict()["pack"] == verdict.pack
    assert other.decision == "deny"


def test_editing_the_pack_reference_of_one_verdict_leaves_the_others(tmp_path: Path) -> None:
    pack = load_pack(make_pack(tmp_path, REMIT))
    one = pack.evaluate(action(kind="scale"), CONTEXT)
    one.pack["digest"] = "sha256:forged"
    assert pack.evaluate(action(), CONTEXT).to_dict()["pack"]["digest"] == pack.digest
    assert one.pack["digest"] == pack.digest


def test_a_fail_closed_documents_errors_are_its_own(tmp_path: Path) -> None:
    pack = load_pack(make_pack(tmp_path, REMIT))
    verdict = pack.evaluate({"kind": "scale"}, CONTEXT)
    assert verdict.fail_closed and verdict.errors
    before = verdict.to_json()
    edit_every_container(verdict.to_dict())
    assert verdict.to_json() == before


def gate_on(tmp_path: Path) -> Any:
    from aigre_policy.gate import Gate

    pack_dir = make_pack(tmp_path / "pack", REMIT)
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    return Gate.from_pack(pack_dir, ledger=ledger, log=tmp_path / "d.jsonl")


def test_editing_a_gate_verdicts_pack_reference_does_not_forge_later_log_entries(
    tmp_path: Path,
) -> None:
    """The gate's reference to its pack was one dict for all its verdicts: an edit of one
    verdict's ``pack`` named another pack digest in every later decision's log entry."""
    from aigre_policy.gate.log import read_log

    with gate_on(tmp_path) as gate:
        first = gate.check(action(kind="rollback"))
        reference = {**first.pack}
        first.pack["digest"] = "sha256:forged"
        later = gate.check(action(kind="rollback"))
    assert later.pack == reference and later.to_dict()["pack"] == reference
    logged = [e.body["verdict"]["pack"] for e in read_log(tmp_path / "d.jsonl") if e.body]
    assert logged[-1] == reference


def test_editing_a_gate_verdicts_document_changes_neither_it_nor_a_later_decision(
    tmp_path: Path,
) -> None:
    with gate_on(tmp_path) as gate:
        first = gate.check(action(kind="scale"))
        before = first.to_json()
        edit_every_container(first.to_dict())
        assert first.to_json() == before
        later = gate.check(action(kind="scale"))
        assert later.decision == "deny"
        assert later.to_dict()["fired"] == first.to_dict()["fired"]
