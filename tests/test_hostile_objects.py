"""Hostile Python objects in an input: the fail-closed verdict, never an exception.

A caller's object may raise anything when it is read (``items``, ``__iter__``,
``__repr__``, ``model_dump``), or lie about its class. ``Pack.evaluate`` and
``Gate.check`` then give the pack's fail-closed verdict, and that verdict still has
its JSON form (its input digest is taken of whatever can be read, or of the type).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import fixture_input
from pydantic import BaseModel

from aigre_policy.gate import FakeClock, Gate
from aigre_policy.gate.log import read_log
from aigre_policy.gate.verify import verify_log
from aigre_policy.pack import Pack, load_pack

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
BUCKET = ROOT / "fixtures" / "actions" / "bucket-made-public.yaml"


class Boom(Exception):
    """What a hostile object raises: no handler may expect it by name."""


class RaisingMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise Boom("getitem")

    def __iter__(self) -> Iterator[str]:
        raise Boom("iter")

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        raise Boom("repr")


class RaisingDict(dict):
    def items(self) -> Any:
        raise Boom("items")

    def keys(self) -> Any:
        raise Boom("keys")

    def __iter__(self) -> Iterator[Any]:
        raise Boom("iter")

    def __repr__(self) -> str:
        raise Boom("repr")


class PosingAsStr:
    """``isinstance(x, str)`` is true: it reads ``__class__``, which lies."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str

    def __repr__(self) -> str:
        raise Boom("repr")


class HugeInt(int):
    pass


class UnwritableModel(BaseModel):
    def model_dump(self, **options: Any) -> Any:  # type: ignore[override]
        raise Boom("model_dump")


HOSTILE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "mapping raising everywhere, as the action": lambda a: RaisingMapping(),
    "mapping raising everywhere, inside": lambda a: {**a, "data": RaisingMapping()},
    "dict subclass raising on items": lambda a: RaisingDict(a),
    "dict subclass raising on items, inside": lambda a: {**a, "data": RaisingDict(a["data"])},
    "object posing as str": lambda a: {**a, "kind": PosingAsStr()},
    "object posing as str, as the action": lambda a: PosingAsStr(),
    "int subclass of 5000 digits": lambda a: {**a, "cost": {"estimated_usd": HugeInt(10**5000)}},
    "model that cannot dump itself, as the action": lambda a: UnwritableModel(),
    "a datetime": lambda a: {**a, "requested_at": datetime(2025, 3, 13, 14)},
    "a set": lambda a: {**a, "data": {**a["data"], "subject_regions": {"eu", "us"}}},
}


def shared_at_every_level(depth: int = 9, width: int = 10) -> list[Any]:
    """One list ``width`` times at every level: ``width ** depth`` leaves to write out,
    as a YAML alias makes them; only ``depth`` lists in memory."""
    node: list[Any] = ["leaf"] * width
    for _ in range(depth - 1):
        node = [node] * width
    return node


HOSTILE["lists shared at every level"] = lambda a: {**a, "data": shared_at_every_level()}


@cache
def pack() -> Pack:
    return load_pack(BASELINE)


def _bucket() -> dict[str, Any]:
    return copy.deepcopy(fixture_input(BUCKET))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_pack_fails_closed_with_a_json_form(name: str) -> None:
    document = _bucket()
    action = HOSTILE[name](document["action"])
    verdict = pack().evaluate(action, document["context"], document["usage"])
    assert verdict.fail_closed
    assert verdict.decision == pack().fail_closed
    assert verdict.to_json().startswith("{")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_gate_fails_closed_with_a_json_form(name: str, tmp_path: Path) -> None:
    document = _bucket()
    gate = Gate(
        pack(),
        ledger=tmp_path / "ledger.db",
        log=tmp_path / "decisions.jsonl",
        clock=FakeClock("2025-03-13T14:00:10Z"),
        identity=document["context"]["actor"],
    )
    with gate:
        verdict = gate.check(HOSTILE[name](document["action"]))
    assert verdict.fail_closed
    assert verdict.decision == pack().fail_closed
    assert verdict.to_json().startswith("{")
    # the log keeps the refusal the caller got, in one entry, and still verifies
    (entry,) = [e for e in read_log(tmp_path / "decisions.jsonl") if e.kind == "decision"]
    logged = entry.body["verdict"]
    assert (logged["decision"], logged["fail_closed"]) == (verdict.decision, True)
    assert logged["decision_id"] == verdict.decision_id
    assert verify_log(tmp_path / "decisions.jsonl").problems == ()


def test_shared_lists_are_refused_at_once_with_a_json_form(tmp_path: Path) -> None:
    document = _bucket()
    started = time.monotonic()
    verdict = pack().evaluate(
        {**document["action"], "data": shared_at_every_level()},
        document["context"],
        document["usage"],
    )
    assert verdict.fail_closed and "evaluation bound" in verdict.errors[0]["message"]
    assert verdict.to_json().startswith("{")
    assert time.monotonic() - started < 10  # 10 ** 9 leaves: writing them out takes minutes


ALIASES = "\n".join(
    ["l1: &l1 [a, a, a, a, a, a, a, a, a, a]"]
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(2, 9)]
)


def test_a_yaml_alias_bomb_fails_closed_at_once(tmp_path: Path, capsys) -> None:
    from aigre_policy.cli.main import main

    fixture = BUCKET.read_text(encoding="utf-8")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIASES + "\n" + fixture.replace("  data:\n", "  bomb: *l8\n  data:\n"))
    started = time.monotonic()
    code = main(["eval", str(BASELINE), "--action", str(bomb), "--format", "json"])
    assert code == 6  # failed closed
    assert "evaluation bound" in capsys.readouterr().out
    assert time.monotonic() - started < 10
