"""Context from HTTP sources: open incidents (a PagerDuty-shaped API) and a number such as
the error budget left (a Prometheus instant query), each with a timeout and a cache.

``Sources(...)`` is the gate's ``context`` provider: it asks each source and merges what
they say, with the notes of how each answered (``verdict.gate["context_sources"]``).

**When a source cannot answer** (down, slow past ``timeout``, an answer of the wrong
shape) its field is *unknown*: the last good value is used while it is younger than
``max_age`` (the note says ``stale`` and its age), and past that the field is left out, so
a pack's guard (``context.error_budget_remaining ?? 0``) decides, as for any absent
field. ``when_unknown`` says otherwise: ``"fail"`` fails the check closed (the gate's
``gate.context`` fault), or a value stands in (``0.0``: no budget left). Data older than
``max_age`` is never used.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aigre_policy.gate.world import StaticContext

UNKNOWN_POLICIES = ("omit", "fail")
MAX_INCIDENTS = 32  # the context schema's bound: the most severe are kept
# PagerDuty priorities and urgencies to the context schema's severities
PRIORITY_SEVERITY = {"P1": "sev1", "P2": "sev2", "P3": "sev3", "P4": "sev4", "P5": "sev4"}
URGENCY_SEVERITY = {"high": "sev2", "low": "sev4"}
# a target put into a PromQL string: anything else leaves the value unknown
SAFE_TARGET = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")


class SourceUnavailable(Exception):
    """A source could not be read, and ``when_unknown="fail"`` says the check fails closed."""


@dataclass(frozen=True)
class Provided:
    """What a provider gives the gate: the context fields and notes for the evidence."""

    context: Mapping[str, Any]
    notes: tuple[Mapping[str, Any], ...] = ()


@dataclass
class _Cached:
    value: Any
    at: float


class HttpSource:
    """One HTTP source of one context field: fetched with a timeout, cached for ``ttl``
    seconds, a failed fetch answered by the last value while younger than ``max_age``."""

    name = "http"
    field_name = ""

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        ttl: float = 30.0,
        max_age: float = 300.0,
        when_unknown: Any = "omit",
        headers: Mapping[str, str] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ):
        if timeout <= 0 or ttl < 0 or max_age < ttl:
            raise ValueError("timeout > 0 and 0 <= ttl <= max_age")
        self.timeout, self.ttl, self.max_age = timeout, ttl, max_age
        self.when_unknown = when_unknown
        self.headers = dict(headers or {})
        self.timer = timer
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._http: Any = None

    def fetch(self, url: str, params: Mapping[str, Any]) -> Any:
        """The JSON answer of ``GET url``; raises on a network error or a non-2xx."""
        import requests  # a core dependency; loaded only when a source is read

        if self._http is None:
            self._http = requests.Session()
        answer = self._http.get(
            url,
            params=params,
            headers=self.headers,
            timeout=(self.timeout, self.timeout),
            allow_redirects=False,
        )
        answer.raise_for_status()
        return answer.json()

    def read(self, key: str, load: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
        """``(value, note)``: fresh from the cache, else loaded, else the last value while
        younger than ``max_age``, else ``_UNKNOWN``."""
        now = self.timer()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and now - cached.at <= self.ttl:
                return cached.value, self._note("cached", age=now - cached.at)
            try:
                value = load()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
                if cached is not None and now - cached.at <= self.max_age:
                    return cached.value, self._note("stale", age=now - cached.at, error=error)
                return _UNKNOWN, self._note("unavailable", error=error)
            self._cache[key] = _Cached(value, now)
            return value, self._note("fresh")

    def _note(self, status: str, **more: Any) -> dict[str, Any]:
        note: dict[str, Any] = {"source": self.name, "field": self.field_name, "status": status}
        for key, value in more.items():
            note[key] = round(value, 3) if isinstance(value, float) else value
        return note

    def unknown(self, note: dict[str, Any]) -> dict[str, Any]:
        """The context for an unknown value, by ``when_unknown``."""
        if self.when_unknown == "fail":
            raise SourceUnavailable(f"{self.name}: {note.get('error', 'no value')}")
        if self.when_unknown == "omit":
            note["used"] = "absent"
            return {}
        note["used"] = self.when_unknown
        return {self.field_name: self.when_unknown}


class _Unknown:
    pass


_UNKNOWN = _Unknown()


class PagerDutyIncidents(HttpSource):
    """``context.incidents_open`` from a PagerDuty-shaped incidents API:
    ``GET {url}?statuses[]=triggered&statuses[]=acknowledged`` answering
    ``{"incidents": [{"id", "priority": {"name": "P1"}, "urgency", "service": {"summary"}}]}``.
    Severity from the priority (``P1`` → ``sev1`` ...), else the urgency (``high`` → ``sev2``);
    ``services`` maps a PagerDuty service's name to the names actions use."""

    name = "pagerduty"
    field_name = "incidents_open"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        services: Mapping[str, list[str]] | None = None,
        max_pages: int = 4,
        **options: Any,
    ):
        headers = {"Accept": "application/vnd.pagerduty+json;version=2"}
        if token:
            headers["Authorization"] = f"Token token={token}"
        super().__init__(headers={**headers, **options.pop("headers", {})}, **options)
        self.url = url
        self.services = dict(services or {})
        self.max_pages = max_pages

    def __call__(self, action: Mapping[str, Any], now: datetime) -> Provided:
        value, note = self.read("incidents", self._load)
        if value is _UNKNOWN:
            return Provided(self.unknown(note), (note,))
        return Provided({self.field_name: value}, (note,))

    def _load(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset = 0
        for _ in range(self.max_pages):
            params = {"statuses[]": ["triggered", "acknowledged"], "limit": 100, "offset": offset}
            page = self.fetch(self.url, params)
            incidents = page.get("incidents") if isinstance(page, dict) else None
            if not isinstance(incidents, list):
                raise ValueError("the answer holds no `incidents` list")
            found += [self._incident(i) for i in incidents]
            if not page.get("more"):
                break
            offset += len(incidents)
        else:
            raise ValueError(f"more than {self.max_pages} pages of open incidents")
        found.sort(key=lambda i: (i["severity"], i["id"]))
        return found[:MAX_INCIDENTS]

    def _incident(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise ValueError("an incident without an `id`")
        priority = (raw.get("priority") or {}).get("name") or ""
        severity = PRIORITY_SEVERITY.get(priority) or URGENCY_SEVERITY.get(str(raw.get("urgency")))
        # an incident of unknown severity counts as a major one: stricter, never looser
        incident: dict[str, Any] = {"id": raw["id"], "severity": severity or "sev1"}
        service = (raw.get("service") or {}).get("summary")
        if isinstance(service, str):
            incident["services"] = list(self.services.get(service, [service]))
        return incident


class PrometheusValue(HttpSource):
    """A number from a Prometheus instant query (``GET {url}/api/v1/query?query=...``),
    into ``field`` (``error_budget_remaining`` by default, clamped to 0..1). ``{target}``
    in the query is the action's target, allowed only when it is plain
    (``[A-Za-z0-9_.:/-]``): a proposer's text never reaches PromQL otherwise."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        query: str,
        *,
        field: str = "error_budget_remaining",
        clamp: tuple[float, float] | None = (0.0, 1.0),
        **options: Any,
    ):
        super().__init__(**options)
        self.url = url.rstrip("/") + "/api/v1/query"
        self.query = query
        self.field_name = field
        self.clamp = clamp

    def __call__(self, action: Mapping[str, Any], now: datetime) -> Provided:
        query = self.query
        if "{target}" in query:
            target = action.get("target") if isinstance(action, Mapping) else None
            if not isinstance(target, str) or not SAFE_TARGET.match(target):
                note = self._note("unavailable", error="the action's target cannot be queried")
                return Provided(self.unknown(note), (note,))
            query = query.replace("{target}", target)
        value, note = self.read(query, lambda: self._load(query))
        if value is _UNKNOWN:
            return Provided(self.unknown(note), (note,))
        return Provided({self.field_name: value}, (note,))

    def _load(self, query: str) -> float:
        answer = self.fetch(self.url, {"query": query})
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or answer.get("status") != "success" or not data:
            raise ValueError(f"the query failed: {str(answer)[:200]}")
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            sample = result
        elif kind == "vector" and isinstance(result, list) and len(result) == 1:
            sample = result[0].get("value")
        else:
            raise ValueError(f"expected one sample, got a {kind} of {len(result or [])}")
        number = float(sample[1])
        if math.isnan(number):
            raise ValueError("the query answered NaN")
        if self.clamp is not None:
            number = min(max(number, self.clamp[0]), self.clamp[1])
        return number


@dataclass(frozen=True)
class Sources:
    """A context provider over several sources: each one's fields, and all their notes.
    ``static`` gives fields no source reads (change freezes); a source's field wins."""

    sources: tuple[Callable[[Mapping[str, Any], datetime], Any], ...]
    static: StaticContext = field(default_factory=StaticContext)

    def __call__(self, action: Mapping[str, Any], now: datetime) -> Provided:
        context = dict(self.static(action, now))
        notes: list[Mapping[str, Any]] = []
        for source in self.sources:
            claimed = getattr(source, "field_name", "")
            if claimed:  # the source's say, even "unknown", replaces a static value
                context.pop(claimed, None)
            given = source(action, now)
            if isinstance(given, Provided):
                context.update(given.context)
                notes += given.notes
            else:
                context.update(given)
        return Provided(context, tuple(notes))
