"""OpenTelemetry from ``aigre-policy serve``: a span per check and a log record per decision,
caught with the SDK's in-memory exporters."""

from __future__ import annotations

import httpx
import pytest
import yaml
from serving import ROOT, app_server

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aigre_policy.server.app import create_app
from aigre_policy.server.config import ServerConfig
from aigre_policy.server.runtime import Runtime
from aigre_policy.server.telemetry import Telemetry

BASELINE = ROOT / "policy_packs" / "aigre-baseline"


def test_each_check_gives_a_span_and_a_log_record(tmp_path):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    records = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    runtime = Runtime(BASELINE, ServerConfig(ledger=f"sqlite:///{tmp_path / 'l.db'}"))
    runtime.telemetry = Telemetry(tracer_provider, logger_provider)
    action = yaml.safe_load((ROOT / "fixtures/actions/llm-rollback.yaml").read_text())["action"]
    with app_server(create_app(runtime)) as url:
        verdict = httpx.post(f"{url}/v1/check", json=action).json()
    [span] = spans.get_finished_spans()
    assert span.name == "aigre.check"
    assert span.attributes["aigre.decision"] == verdict["decision"]
    assert span.attributes["aigre.decision_id"] == verdict["decision_id"]
    assert span.attributes["aigre.action.kind"] == "rollback"
    assert list(span.attributes["aigre.rules"]) == [r["id"] for r in verdict["fired"]]
    [record] = records.get_finished_logs()
    assert record.log_record.body["decision_id"] == verdict["decision_id"]
    assert record.log_record.attributes["aigre.pack.name"] == "aigre-baseline"
    assert record.log_record.trace_id == span.context.trace_id
