"""Context from HTTP sources: a PagerDuty-shaped incidents API and a Prometheus instant
query, served by fakes on 127.0.0.1; timeouts, the cache, stale data bounded by max_age,
and what an unknown value does (absent, a stand-in, or a fail-closed check)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import gate_action, write_pack

from aigre_policy.gate import FakeClock, Gate, StaticContext
from aigre_policy.gate.providers import (
    PagerDutyIncidents,
    PrometheusValue,
    Provided,
    Sources,
    SourceUnavailable,
)

NOW = datetime(2025, 3, 10, 12, tzinfo=UTC)
INCIDENTS = {
    "incidents": [
        {
            "id": "PT4KHLK",
            "status": "triggered",
            "urgency": "high",
            "priority": {"name": "P1", "summary": "P1"},
            "service": {"id": "PIJ90N7", "summary": "Checkout API", "type": "service_reference"},
        },
        {
            "id": "PQ1ABCD",
            "status": "acknowledged",
            "urgency": "low",
            "service": {"id": "PXYZ", "summary": "search"},
        },
    ],
    "limit": 100,
    "offset": 0,
    "more": False,
}


class Fake:
    """An HTTP server on 127.0.0.1 answering GETs with ``answer`` (JSON), ``status`` or,
    when ``hang``, after sleeping past any client timeout; it counts requests."""

    def __init__(self) -> None:
        self.answer: Any = {}
        self.status = 200
        self.hang = False
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                outer.requests.append((parts.path, parse_qs(parts.query), dict(self.headers)))
                if outer.hang:
                    time.sleep(1.0)
                body = json.dumps(outer.answer).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake() -> Iterator[Fake]:
    server = Fake()
    yield server
    server.server.shutdown()
    server.server.server_close()


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def prom(value: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.7e9, value]}]},
    }


def test_pagerduty_incidents_become_open_incidents(fake: Fake) -> None:
    fake.answer = INCIDENTS
    source = PagerDutyIncidents(
        f"{fake.url}/incidents", token="pd-token", services={"Checkout API": ["checkout"]}
    )
    given = source(gate_action(), NOW)
    assert given.context == {
        "incidents_open": [
            {"id": "PT4KHLK", "severity": "sev1", "services": ["checkout"]},
            {"id": "PQ1ABCD", "severity": "sev4", "services": ["search"]},
        ]
    }
    assert given.notes[0]["status"] == "fresh"
    path, query, headers = fake.requests[0]
    assert path == "/incidents"
    assert query["statuses[]"] == ["triggered", "acknowledged"]
    assert headers["Authorization"] == "Token token=pd-token"


def test_prometheus_gives_the_error_budget_clamped(fake: Fake) -> None:
    source = PrometheusValue(fake.url, 'slo:error_budget_remaining{service="{target}"}', ttl=0)
    fake.answer = prom("0.42")
    assert source(gate_action(target="checkout"), NOW).context == {"error_budget_remaining": 0.42}
    assert fake.requests[0][1]["query"] == ['slo:error_budget_remaining{service="checkout"}']
    fake.answer = prom("-0.3")  # overspent: nothing left
    assert source(gate_action(), NOW).context == {"error_budget_remaining": 0.0}


def test_a_target_that_is_not_plain_never_reaches_promql(fake: Fake) -> None:
    source = PrometheusValue(fake.url, 'budget{service="{target}"}')
    given = source(gate_action(target='x"} or vector(1) #'), NOW)
    assert given.context == {} and given.notes[0]["status"] == "unavailable"
    assert fake.requests == []


def test_the_cache_serves_within_ttl_and_stale_data_never_beyond_max_age(fake: Fake) -> None:
    ticks = Ticks()
    source = PrometheusValue(fake.url, "budget", ttl=10, max_age=60, timer=ticks)
    fake.answer = prom("0.5")
    assert source(gate_action(), NOW).context == {"error_budget_remaining": 0.5}
    ticks.now = 5
    assert source(gate_action(), NOW).notes[0]["status"] == "cached"
    assert len(fake.requests) == 1
    fake.status = 503  # the source goes down
    ticks.now = 30
    stale = source(gate_action(), NOW)
    assert stale.context == {"error_budget_remaining": 0.5}
    assert stale.notes[0]["status"] == "stale" and stale.notes[0]["age"] == 30
    ticks.now = 61
    gone = source(gate_action(), NOW)
    assert gone.context == {}
    assert gone.notes[0]["status"] == "unavailable" and gone.notes[0]["used"] == "absent"
    assert "503" in gone.notes[0]["error"]


def test_a_slow_source_times_out_and_the_value_is_unknown(fake: Fake) -> None:
    fake.hang = True
    source = PrometheusValue(fake.url, "budget", timeout=0.2, when_unknown=0.0)
    started = time.perf_counter()
    given = source(gate_action(), NOW)
    assert time.perf_counter() - started < 0.9
    assert given.context == {"error_budget_remaining": 0.0}  # the stand-in: none left
    assert "Timeout" in given.notes[0]["error"]


def test_an_answer_of_the_wrong_shape_is_unknown(fake: Fake) -> None:
    fake.answer = {"incidents": "none"}
    assert PagerDutyIncidents(f"{fake.url}/incidents")(gate_action(), NOW).context == {}
    fake.answer = {"status": "success", "data": {"resultType": "vector", "result": []}}
    assert PrometheusValue(fake.url, "budget")(gate_action(), NOW).context == {}


def test_a_source_down_leaves_its_field_absent_even_over_a_static_value(fake: Fake) -> None:
    fake.status = 500
    sources = Sources(
        (PagerDutyIncidents(f"{fake.url}/incidents"),),
        static=StaticContext(error_budget_remaining=0.9),
    )
    given = sources(gate_action(), NOW)
    assert isinstance(given, Provided)
    assert "incidents_open" not in given.context
    assert given.context["error_budget_remaining"] == 0.9


def test_when_unknown_fail_raises() -> None:
    source = PrometheusValue("http://127.0.0.1:9", "budget", timeout=0.2, when_unknown="fail")
    with pytest.raises(SourceUnavailable):
        source(gate_action(), NOW)


POLICY = """
rule budget-spent {
  deny when (context.error_budget_remaining ?? 0) < 0.1
}
rule major-incident {
  deny when any(i in context.incidents_open ?? []: i.severity == "sev1")
}
"""


def gate_with(tmp_path: Path, context: Any) -> Gate:
    pack = write_pack(tmp_path / "pack", POLICY)
    return Gate.from_pack(pack, context=context, clock=FakeClock("2025-03-10T12:00:00Z"))


def test_the_gate_reads_the_sources_and_keeps_their_notes(tmp_path: Path, fake: Fake) -> None:
    fake.answer = prom("0.8")
    gate = gate_with(tmp_path, Sources((PrometheusValue(fake.url, "budget"),)))
    verdict = gate.check(gate_action())
    assert verdict.decision == "allow"
    assert verdict.input["context"]["error_budget_remaining"] == 0.8
    assert verdict.gate["context_sources"][0]["status"] == "fresh"


def test_a_source_down_is_least_favourable_under_a_guarded_pack(tmp_path: Path) -> None:
    down = PrometheusValue("http://127.0.0.1:9", "budget", timeout=0.2)
    verdict = gate_with(tmp_path, Sources((down,))).check(gate_action())
    assert verdict.decision == "deny"  # `?? 0`: an unknown budget is a spent one
    assert "error_budget_remaining" not in verdict.input["context"]
    assert verdict.gate["context_sources"][0]["status"] == "unavailable"


def test_a_source_that_must_answer_fails_the_check_closed(tmp_path: Path) -> None:
    down = PrometheusValue("http://127.0.0.1:9", "budget", timeout=0.2, when_unknown="fail")
    verdict = gate_with(tmp_path, Sources((down,))).check(gate_action())
    assert verdict.fail_closed and verdict.decision == "deny"
    assert verdict.errors[0]["path"] == "gate.context"
