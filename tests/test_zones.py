"""Time zones: the table every non-Python engine carries against zoneinfo, the Rego
library's lookup on both engines against the runtime, and the solver on zone clocks.

The corpus (fixtures/cases/time.yaml) holds the daylight-saving edges on every engine;
these tests cover what a fixed list of instants cannot: every transition of a zone,
instants drawn over the whole calendar, and proofs.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import regopy
from hypothesis import given, settings
from hypothesis import strategies as st
from regopy.rego_shared import LogLevel

from aigre_policy import load_pack, runtime, zones
from aigre_policy.rego.engine import as_term
from aigre_policy.rego.lib import LIB

# daylight saving both ways, half-hour shifts, quarter-hour offsets, a zone that moved
# across the date line, one whose summer time follows the lunar calendar, and none
ZONES = (
    "Australia/Sydney",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "Africa/Casablanca",
    "UTC",
)
FIRST, LAST = -62135596800, 253402300799  # 0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z
HELPERS = ("hour_in", "minute_in", "weekday_in", "date_in")


@pytest.mark.parametrize("key", ZONES)
def test_the_table_gives_zoneinfos_offset_at_every_transition(key):
    table = zones.table(key)
    starts = [start for row in table.buckets for start, _ in row]
    for start in starts:
        for at in (start - 1, start, start + 1):
            assert table.offset(at) == zones.offset(key, at), (key, at)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.integers(FIRST + 86400, LAST - 86400))
def test_the_table_gives_zoneinfos_offset_at_any_instant(key, seconds):
    assert zones.table(key).offset(seconds) == zones.offset(key, seconds)


def test_an_unknown_zone_is_refused_not_guessed():
    for key in ("Europe/Berln", "../etc/passwd", "/usr/share/zoneinfo/UTC", "", "utc "):
        assert not zones.is_zone(key)
        with pytest.raises(ValueError, match="unknown time zone"):
            zones.offset(key, 0)


def _instants() -> st.SearchStrategy[str]:
    """RFC 3339 instants over the calendar, most near today's daylight-saving changes."""
    seconds = st.one_of(
        st.integers(FIRST, LAST),
        st.integers(1735689600, 1798761600),  # 2025 to 2026
        st.sampled_from([1743868799, 1743868800, 1759593599, 1759593600, 1743296400]),
    )
    return seconds.map(lambda s: datetime.fromtimestamp(s, UTC).isoformat())


def _module(helper: str) -> str:
    """The helper on every input instant, with the zone's table as data (as bundles hold it)."""
    return f"package m\nimport data.lib\nx := [lib.{helper}(s, data.zone) | some s in input]\n"


def _rego_cpp(key: str, values: list[str], helper: str) -> list:
    rego = regopy.Interpreter()
    rego.log_level = LogLevel.NONE
    rego.add_module("lib.rego", f"package lib\n{LIB}")
    rego.add_module("m.rego", _module(helper))
    rego.add_data_json(json.dumps({"zone": zones.table(key).as_json()}))
    rego.set_input_term(as_term(values))
    return json.loads(str(rego.query("data.m.x")))["expressions"][0]


def _regorus(key: str, values: list[str], helper: str) -> list:
    import regorus

    engine = regorus.Engine()
    engine.add_policy("lib.rego", f"package lib\n{LIB}")
    engine.add_policy("m.rego", _module(helper))
    engine.add_data_json(json.dumps({"zone": zones.table(key).as_json()}))
    engine.set_input_json(json.dumps(values))
    return json.loads(engine.eval_rule_as_json("data.m.x"))


@pytest.mark.parametrize("engine", [_rego_cpp, _regorus], ids=["rego-cpp", "regorus"])
@settings(max_examples=4, deadline=None)
@given(key=st.sampled_from(ZONES), values=st.lists(_instants(), min_size=30, max_size=30))
def test_the_rego_zone_helpers_read_as_the_runtime(engine, key, values):
    for helper in HELPERS:
        want = [getattr(runtime, helper)(v, key) for v in values]
        assert engine(key, values, helper) == want, (key, helper)


PACK = """\
name: zoned
version: 0.1.0
input_schema: builtin:proposed-action/v1
default: allow
fail_closed: deny
"""


def _pack(tmp_path: Path, policy: str) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "pack.yaml").write_text(PACK)
    (tmp_path / "policies" / "main.aigre").write_text(policy)
    return tmp_path


def test_the_solver_proves_and_refutes_on_a_zones_clock(tmp_path):
    pytest.importorskip("z3")
    from aigre_policy.solver.prove import prove_pack

    # Tokyo is never less than an hour from UTC (UTC+9:18:59 until 1888, then UTC+9, and
    # UTC+10 in the summers of 1948 to 1951), so its hour never equals UTC's; Berlin kept
    # UTC+0:53:28 until 1893, so before then its hour often does.
    root = _pack(
        tmp_path,
        'rule tokyo { require_approval by ["x"] when hour_in(context.now, "Asia/Tokyo") == '
        "hour(context.now) }\n"
        'rule berlin { escalate when hour_in(context.now, "Europe/Berlin") == hour(context.now) }\n'
        'invariant "tokyo never reads UTC\'s hour" { expect not require_approval }\n'
        'invariant "berlin never reads UTC\'s hour" { expect not escalate }\n',
    )
    pack = load_pack(root)
    report = prove_pack(pack.checked, pack, timeout_s=60)
    status = {r.invariant.name: r for r in report.results}
    assert status["tokyo never reads UTC's hour"].status == "proved"
    refuted = status["berlin never reads UTC's hour"]
    assert refuted.status == "refuted"
    now = refuted.counterexample["context"]["now"]
    assert runtime.hour_in(now, "Europe/Berlin") == runtime.hour(now)
    assert runtime.to_time(now) < runtime.to_time("1893-04-01T00:00:00Z")


def test_a_machine_without_a_zone_database_is_told_how_to_get_one(tmp_path, monkeypatch):
    import zoneinfo

    from aigre_policy.compiler import compile_pack

    empty = tmp_path / "no-zoneinfo"
    empty.mkdir()
    before = zoneinfo.TZPATH
    monkeypatch.setattr(zones, "known_zones", lambda: frozenset())
    monkeypatch.setattr("aigre_policy.zone_check.known_zones", lambda: frozenset())
    monkeypatch.setattr(zones, "_tzdata_zones", lambda: frozenset())  # no tzdata package
    try:
        zoneinfo.reset_tzpath([str(empty)])
        _clear_zone_caches()
        root = _pack(tmp_path, 'rule r { deny when hour_in(context.now, "UTC") > 17 }\n')
        report = compile_pack(root)
    finally:
        zoneinfo.reset_tzpath(before)
        _clear_zone_caches()
    (found,) = [d for d in report.diagnostics if d.code == "E210"]
    assert found.hint is not None and "pip install tzdata" in found.hint


def test_the_default_pack_on_a_sydney_clock_proves_every_invariant():
    """A wall clock past 9999-12-31 (Sydney, 31 December 9999 after 13:00 UTC) is read,
    not failed on: failing there closed broke eight invariants of the default pack."""
    pytest.importorskip("z3")
    from aigre_policy.solver.prove import prove_pack

    root = Path(__file__).resolve().parent.parent / "policy_packs" / "aigre-baseline"
    pack = load_pack(root, envelopes={"change_window": {"time_zone": "Australia/Sydney"}})
    report = prove_pack(pack.checked, pack, timeout_s=60)
    assert [r.status for r in report.results] == ["proved"] * len(pack.program.invariants)


def test_a_wall_clock_past_the_calendar_is_read_on_every_engine():
    pack_root = Path(__file__).resolve().parent.parent / "policy_packs" / "aigre-baseline"
    for engine in ("native", "interpreter", "rego", "regorus"):
        pack = load_pack(
            pack_root,
            engine=engine,
            envelopes={"change_window": {"time_zone": "Australia/Sydney"}},
        )
        verdict = pack.evaluate(*_late_deploy())
        assert not verdict.fail_closed, (engine, verdict.errors)
        assert verdict.decision == "require_approval", engine  # Saturday in Sydney


def _late_deploy() -> tuple[dict, dict, dict]:
    import yaml

    root = Path(__file__).resolve().parent.parent
    case = yaml.safe_load((root / "fixtures/actions/sydney-monday-morning-deploy.yaml").read_text())
    context = {**case["context"], "now": "9999-12-31T23:00:00Z"}
    action = {**case["action"], "requested_at": "9999-12-31T22:59:00Z"}
    return action, context, case.get("usage", {})


def test_a_pack_names_a_bounded_number_of_zones(tmp_path):
    from aigre_policy.compiler import compile_pack

    names = sorted(zones.known_zones())[: zones.MAX_ZONES + 2]
    calls = " or ".join(f'hour_in(context.now, "{name}") == 3' for name in names)
    root = _pack(tmp_path, f"rule r {{ deny when {calls} }}\n")
    report = compile_pack(root, engine=None)
    found = [d for d in report.diagnostics if d.code == "E210"]
    assert len(found) == 2 and all("at most 16 time zones" in d.message for d in found)


# --- which names are zones: one key looked up, as listing every zone would judge it ----------

NEAR_MISSES = (
    "posixrules",
    "right/UTC",
    "posix/UTC",
    "Europe",
    "America/Argentina",
    "Europe/Nowhere",
    "Etc/GMT+15",
    "Factory",
    "localtime",
    "zone",
    "tzdata",
    "leapseconds",
    "iso3166",
    "UTC/UTC",
)


def _clear_zone_caches() -> None:
    for cached in (zones._in_database, zones._tzdata_zones, zones.known_zones, zones._zone):
        if hasattr(cached, "cache_clear"):  # not while a test stands in for it
            cached.cache_clear()


def test_a_zone_is_what_zoneinfo_lists_on_this_machine() -> None:
    import zoneinfo

    listed = zoneinfo.available_timezones()
    assert len(listed) > 300
    assert all(zones.is_zone(key) for key in listed)
    assert [key for key in NEAR_MISSES if zones.is_zone(key) != (key in listed)] == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Europe", "America", "Etc", "UTC", "Berlin", "right", "posix", "GMT+5"])
        | st.from_regex(r"[A-Za-z0-9_+\-]{1,8}", fullmatch=True),
        min_size=1,
        max_size=3,
    )
)
def test_any_key_is_a_zone_exactly_when_zoneinfo_lists_it(parts: list[str]) -> None:
    key = "/".join(parts)
    assert zones.is_zone(key) == (key in _listed_once())


@functools.cache
def _listed_once() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def test_a_decision_on_a_zone_clock_does_not_list_every_zone(tmp_path: Path) -> None:
    """Listing walks the whole database (about 15 ms): the first decision reading a zone's
    clock, as a command-line ``eval`` makes, looks up its one zone instead."""
    import yaml

    root = Path(__file__).resolve().parent.parent
    case = yaml.safe_load((root / "fixtures/actions/sydney-monday-morning-deploy.yaml").read_text())
    pack = load_pack(root / "policy_packs" / "aigre-baseline")
    _clear_zone_caches()
    verdict = pack.evaluate(case["action"], case.get("context"), case.get("usage"))
    assert not verdict.fail_closed and verdict.fired
    assert zones._in_database.cache_info().currsize >= 1  # a zone was judged
    assert zones.known_zones.cache_info().currsize == 0


def test_a_zone_is_judged_as_zoneinfo_lists_a_database_with_links_and_strays(
    tmp_path: Path,
) -> None:
    """A database as found in the wild: links to files and to directories, a broken link,
    files that are not zones, the ``right`` and ``posix`` trees and ``posixrules``."""
    import os
    import zoneinfo

    tzif = next(
        (Path(root) / "Europe" / "Berlin").read_bytes()
        for root in zoneinfo.TZPATH
        if (Path(root) / "Europe" / "Berlin").is_file()
    )
    db = tmp_path / "zoneinfo"
    for key in ("Mars/Olympus", "Deep/Er/Still", "posixrules", "right/Mars", "posix/Mars", "Top"):
        (db / key).parent.mkdir(parents=True, exist_ok=True)
        (db / key).write_bytes(tzif)
    (db / "Mars" / "notes").write_text("not a zone\n")
    (db / "Mars" / "Alias").symlink_to(db / "Mars" / "Olympus")
    (db / "Linked").symlink_to(db / "Mars", target_is_directory=True)
    (db / "Mars" / "Gone").symlink_to(db / "Mars" / "nothing")
    (db / "Empty").mkdir()
    keys = (
        "Mars/Olympus", "Deep/Er/Still", "Deep/Er", "posixrules", "right/Mars", "posix/Mars",
        "Top", "Mars/notes", "Mars/Alias", "Linked/Olympus", "Linked", "Mars/Gone", "Empty",
        "Mars", "Europe/Berlin",
    )  # fmt: skip
    before = zoneinfo.TZPATH
    try:
        zoneinfo.reset_tzpath([os.fspath(db)])
        _clear_zone_caches()
        listed = zoneinfo.available_timezones()
        assert {"Mars/Olympus", "Mars/Alias", "Top"} <= listed and "Linked/Olympus" not in listed
        assert {key: zones.is_zone(key) for key in keys} == {key: key in listed for key in keys}
    finally:
        zoneinfo.reset_tzpath(before)
        _clear_zone_caches()
