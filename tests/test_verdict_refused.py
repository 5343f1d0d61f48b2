"""A verdict on an input refused for not being JSON data: published at once, on every engine.

A caller's structure may share one list at every level (a YAML alias does): within the
evaluation bounds it is refused in microseconds, and its verdict must be published as fast.
Writing the structure out to digest it would take forever, so the input digest of such a
verdict is taken as ``Pack`` takes it (``refused_input_digest``), whatever the engine.
"""

from __future__ import annotations

import datetime
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from aigre_policy import load_pack

pytest.importorskip("regopy")

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "policy_packs" / "aigre-baseline"
CONTEXT = {"now": "2026-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aigre_policy.rego.bundle import build_pack_bundle

    built = build_pack_bundle(BASELINE)
    assert built.archive is not None
    path = tmp_path_factory.mktemp("bundle") / "baseline.tar.gz"
    path.write_bytes(built.archive)
    return path


def shared_at_every_level(levels: int) -> list[Any]:
    value: list[Any] = ["x"]
    for _ in range(levels):
        value = [value, value]
    return value


def _publish(path: str, queue: Any) -> None:
    pack = load_pack(path)
    action = {"kind": "scale", "labels": shared_at_every_level(40)}
    verdict = pack.evaluate(action, CONTEXT, {})
    queue.put((verdict.fail_closed, verdict.to_dict()["input_digest"]))


def test_a_bundles_verdict_on_a_shared_structure_is_published_at_once(bundle: Path) -> None:
    """2 ** 40 leaves: writing them out to digest them never ended."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_publish, args=(str(bundle), queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the verdict's document was not published within 60 s")
    fail_closed, digest = queue.get(timeout=5)
    assert fail_closed and digest.startswith("sha256:")


@pytest.mark.parametrize(
    "odd",
    [
        datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        {1, 2},
        shared_at_every_level(20),
    ],
    ids=["datetime", "set", "shared"],
)
def test_a_refused_input_has_one_digest_on_every_engine(bundle: Path, odd: Any) -> None:
    action = {"kind": "scale", "labels": odd}
    digests = set()
    for pack in (load_pack(BASELINE), load_pack(BASELINE, engine="interpreter"), load_pack(bundle)):
        verdict = pack.evaluate(action, CONTEXT, {})
        assert verdict.fail_closed
        digests.add(verdict.to_dict()["input_digest"])
    assert len(digests) == 1
