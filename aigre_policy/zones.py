"""Time zones the language names: a zone's UTC offset at an instant, from zoneinfo.

``offset`` is the reference every engine agrees with: the standard library's zoneinfo
(the system's tz database, or the ``tzdata`` package where the system has none). The
Rego target and the solver cannot call zoneinfo, so ``table`` turns a zone into data
they carry: the offset before the zone's first transition, every transition up to one
period past the last one the database lists, and the rule that later instants fold
back by whole periods. The Gregorian calendar repeats exactly every 400 years, weekdays
included, and a zone's standing rule ("first Sunday in October at 2:00") is stated on
that calendar, so past its listed transitions a zone repeats every 400 years too: the
table is exact for every instant, not an approximation over a range of years.
"""

from __future__ import annotations

import importlib.util
import os
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

# the functions whose second argument names a zone (aigre_policy/functions.py)
ZONE_FUNCTIONS = ("hour_in", "minute_in", "weekday_in", "date_in")
# a zone's table costs about a quarter of a second to build: a pack names a few zones,
# and one naming hundreds must not make compiling for Rego or the solver take minutes
MAX_ZONES = 16
PERIOD = 146097 * 86400  # 400 Gregorian years, in seconds: a whole number of weeks
BUCKET = 2**25  # about 388 days: the Rego lookup reads one bucket of transitions
_DAY = 86400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST, _LAST = -62135596800, 253402300799  # 0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z
_KEY = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """The zone names zoneinfo can load on this machine."""
    return frozenset(zoneinfo.available_timezones())


def is_zone(key: Any) -> bool:
    """Whether ``key`` is in ``known_zones()``, found without listing every zone: listing
    walks the whole database (about 15 ms), on the first decision that reads a clock."""
    return type(key) is str and _KEY.fullmatch(key) is not None and _in_database(key)


@lru_cache(maxsize=256)
def _in_database(key: str) -> bool:
    """``key in zoneinfo.available_timezones()`` for one key (made of ``_KEY``'s parts, so
    no ``.`` or ``..``), looked up where that function looks and judged by its rules: the
    ``tzdata`` package's list; else a file under a ``TZPATH`` root reached through real
    directories (it does not follow links to directories, nor enter ``right`` or
    ``posix``) that starts with ``TZif``; never ``posixrules``."""
    if key == "posixrules":
        return False
    *folders, _ = parts = key.split("/")
    if folders and folders[0] in ("right", "posix"):
        return key in _tzdata_zones()
    for root in zoneinfo.TZPATH:
        if not os.path.exists(root):
            continue
        path = root
        for folder in folders:
            path = os.path.join(path, folder)
            if not os.path.isdir(path) or os.path.islink(path):
                break
        else:
            path = os.path.join(root, *parts)
            if os.path.lexists(path) and not os.path.isdir(path) and _starts_tzif(path):
                return True
    return key in _tzdata_zones()  # read last: reading it costs more than a few stats


def _starts_tzif(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"TZif"
    except Exception:  # as zoneinfo judges a file it cannot read: not a zone
        return False


@lru_cache(maxsize=1)
def _tzdata_zones() -> frozenset[str]:
    """The zones the ``tzdata`` package lists, if it is installed (zoneinfo reads it first)."""
    if importlib.util.find_spec("tzdata") is None:
        return frozenset()
    from importlib import resources  # 4 ms to import: only for a zone the system lacks

    try:
        with resources.files("tzdata").joinpath("zones").open("r") as handle:
            return frozenset(line.strip() for line in handle if line.strip())
    except (ImportError, FileNotFoundError):
        return frozenset()


@lru_cache(maxsize=64)
def _zone(key: str) -> zoneinfo.ZoneInfo:
    if not is_zone(key):
        raise ValueError(f"unknown time zone {key!r}")
    return zoneinfo.ZoneInfo(key)


def offset(key: str, seconds: float) -> int:
    """The zone's UTC offset, in whole seconds, at ``seconds`` since the epoch."""
    # within two days of the ends of year 1 and 9999 the local time leaves datetime's
    # range: read the same offset 400 years away (the zone's data starts long after year
    # 401 and its standing rule repeats every 400 years, see above)
    if seconds < _FIRST + 2 * _DAY:
        seconds += PERIOD
    elif seconds > _LAST - 2 * _DAY:
        seconds -= PERIOD
    moment = datetime.fromtimestamp(seconds, _zone(key))
    shift = moment.utcoffset()
    assert shift is not None  # a ZoneInfo always has an offset
    return int(shift.total_seconds())


@dataclass(frozen=True)
class ZoneTable:
    """A zone as data: an instant at or past ``fold`` reads as the one whole periods
    earlier; then ``before`` holds until ``origin``, and from ``origin`` a bucket of
    ``BUCKET`` seconds lists ``(start, offset)`` pairs, the first at the bucket's start."""

    key: str
    before: int
    origin: int
    fold: int
    buckets: tuple[tuple[tuple[int, int], ...], ...]

    def offset(self, seconds: float) -> int:
        """The same lookup the Rego library makes (``lib.local``)."""
        if seconds >= self.fold:
            seconds = self.fold + (seconds - self.fold) % PERIOD
        if seconds < self.origin:
            return self.before
        row = self.buckets[int((seconds - self.origin) // BUCKET)]
        return [o for start, o in row if start <= seconds][-1]

    def as_json(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "origin": self.origin,
            "fold": self.fold,
            "period": PERIOD,
            "bucket": BUCKET,
            "buckets": [[list(pair) for pair in row] for row in self.buckets],
        }


def _listed(key: str) -> list[int]:
    """The transitions the zone's database file lists (zoneinfo's own reader: zoneinfo
    publishes no list of transitions; every offset is read back through ``offset``)."""
    from zoneinfo import _common  # the reader ZoneInfo itself uses

    for root in zoneinfo.TZPATH:
        path = Path(root) / key
        if path.is_file():
            with path.open("rb") as handle:
                return list(_common.load_data(handle)[1])
    with _common.load_tzdata(key) as handle:
        return list(_common.load_data(handle)[1])


def _changes(key: str, start: int, end: int) -> Iterator[int]:
    """Each instant in [start, end) where the offset changes, day by day then bisected
    (a standing rule never changes the offset twice in one day)."""
    at, now = start, offset(key, start)
    while at < end:
        step = min(_DAY, end - at)
        later = offset(key, at + step)
        if later != now:
            low, high = at, at + step  # offset(low) == now != offset(high)
            while high - low > 1:
                middle = (low + high) // 2
                if offset(key, middle) == now:
                    low = middle
                else:
                    high = middle
            yield high
        at, now = at + step, later


@lru_cache(maxsize=MAX_ZONES)
def table(key: str) -> ZoneTable:
    """The zone as data, exact for every instant (see the module's docstring)."""
    _zone(key)
    listed = _listed(key)
    last = max([0, *listed])  # the standing rule holds after the last listed transition
    year = datetime.fromtimestamp(last, UTC).year + 1
    fold = int((datetime(year, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
    starts = sorted({s for s in listed if offset(key, s - 1) != offset(key, s)})
    starts += [s for s in _changes(key, last + 1, fold + PERIOD) if s > last]
    if not starts:  # one offset for ever
        only = offset(key, 0)
        return ZoneTable(key, only, fold + PERIOD, fold, ())
    origin = starts[0]
    before = offset(key, origin - 1)
    count = (fold + PERIOD - origin + BUCKET - 1) // BUCKET
    rows: list[list[tuple[int, int]]] = [
        [(origin + k * BUCKET, offset(key, origin + k * BUCKET))] for k in range(count)
    ]
    for s in starts:
        k = (s - origin) // BUCKET
        if s != origin + k * BUCKET:
            rows[k].append((s, offset(key, s)))
    return ZoneTable(key, before, origin, fold, tuple(tuple(r) for r in rows))
