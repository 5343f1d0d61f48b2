"""``/metrics`` in Prometheus' text format (prometheus-client), one registry per server.

Counted as the server answers: decisions by API and verdict, failed-closed decisions,
ledger faults (a decision failed closed on ``gate.ledger``), faults of the server itself
around a decision, and the gate's time per decision (a histogram of ``elapsed_us``).
Read from the decision log on each scrape (at most every ``LOG_STATS_SECONDS``), with the
code of ``aigre-policy log stats``: decisions by verdict, the automated resolution rate,
approvals waiting and their waits, spend per action kind. The log is the record of truth
and is shared by every replica writing it, so these figures are the fleet's, not this
process's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aigre_policy.gate.stats import LogStats, log_stats
from aigre_policy.server.http import caller_of, runtime_of

LOG_STATS_SECONDS = 15.0
# the gate's time per decision: tens of microseconds (evaluation) to a slow disk's commit
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class Metrics:
    """What the server counts; ``runtime.metrics`` points here."""

    def __init__(self, log_path: Any = None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "aigre_decisions",
            "Decisions answered, by API and verdict",
            ["api", "decision"],
            registry=self.registry,
        )
        self.fail_closed = Counter(
            "aigre_fail_closed", "Decisions that failed closed", ["api"], registry=self.registry
        )
        self.ledger_errors = Counter(
            "aigre_ledger_errors",
            "Decisions failed closed because the ledger could not be read or written",
            registry=self.registry,
        )
        self.server_faults = Counter(
            "aigre_server_faults",
            "Faults of the server around a decision (answered with the fail-closed verdict)",
            registry=self.registry,
        )
        self.latency = Histogram(
            "aigre_decision_seconds",
            "The gate's time per decision (the verdict's elapsed_us)",
            ["api"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        if log_path is not None:
            self.registry.register(LogStatsCollector(log_path))

    def decided(self, verdict: Any, api: str = "check") -> None:
        self.decisions.labels(api, verdict.decision).inc()
        self.latency.labels(api).observe(verdict.elapsed_us / 1e6)
        if verdict.fail_closed:
            self.fail_closed.labels(api).inc()
            if any(e.get("path") == "gate.ledger" for e in verdict.errors):
                self.ledger_errors.inc()

    def evaluated(self, document: dict[str, Any]) -> None:
        """A Data API decision (pure evaluation)."""
        self.decisions.labels("data", document["decision"]).inc()
        if document["fail_closed"]:
            self.fail_closed.labels("data").inc()

    def server_fault(self, api: str = "check") -> None:
        self.server_faults.inc()
        self.fail_closed.labels(api).inc()

    def exposition(self) -> bytes:
        return bytes(_generate_latest(self.registry))


class LogStatsCollector(Collector):
    """``log stats`` of the decision log as gauges, read again at most every 15 s."""

    def __init__(self, path: Any):
        self.path = path
        self._lock = threading.Lock()
        self._read_at = 0.0
        self._stats: LogStats | None = None
        self._error: str | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # registering must not read the log (it may not exist yet)

    def _current(self) -> LogStats | None:
        with self._lock:
            stale = time.monotonic() - self._read_at >= LOG_STATS_SECONDS
            if stale or self._stats is None:
                try:
                    self._stats, self._error = log_stats(self.path), None
                except Exception as exc:  # no log yet, or unreadable: the gauges say so
                    self._stats, self._error = None, f"{type(exc).__name__}: {exc}"
                self._read_at = time.monotonic()
            return self._stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._current()
        readable = GaugeMetricFamily(
            "aigre_log_readable", "1 when the decision log could be summarised"
        )
        readable.add_metric([], 0 if stats is None else 1)
        yield readable
        if stats is None:
            return
        by_verdict = GaugeMetricFamily(
            "aigre_log_decisions", "Decisions in the log, by verdict", labels=["decision"]
        )
        for decision, count in sorted(stats.by_verdict.items()):
            by_verdict.add_metric([decision], count)
        yield by_verdict
        yield GaugeMetricFamily(
            "aigre_log_fail_closed", "Failed-closed decisions in the log", value=stats.fail_closed
        )
        if stats.automated_rate is not None:
            yield GaugeMetricFamily(
                "aigre_log_automated_resolution_rate",
                "Share of decisions settled without a person",
                value=stats.automated_rate,
            )
        yield GaugeMetricFamily(
            "aigre_log_approvals_waiting", "Approvals still waiting", value=stats.approvals_waiting
        )
        waited = GaugeMetricFamily(
            "aigre_log_approval_wait_seconds",
            "Time from an approval's request to its resolution",
            labels=["quantile"],
        )
        for name, value in (("0.5", stats.waited.median), ("0.95", stats.waited.p95)):
            if value is not None:
                waited.add_metric([name], value)
        yield waited
        spend = GaugeMetricFamily(
            "aigre_log_spend_usd",
            "Estimated spend of allowed actions, by action kind",
            labels=["kind"],
        )
        for kind, figures in sorted(stats.spend.items()):
            spend.add_metric([kind], figures.estimated_usd)
        yield spend


async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    caller_of(request, "read")
    body = runtime.metrics.exposition() if runtime.metrics is not None else b""
    return Response(body, media_type=CONTENT_TYPE_LATEST)


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
