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


class _Receiver:
    """An OTLP/HTTP receiver on 127.0.0.1: keeps each export request's path and body."""

    def __init__(self) -> None:
        import http.server
        import threading

        received: list[tuple[str, bytes]] = []
        arrived = threading.Condition()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with arrived:
                    received.append((self.path, body))
                    arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.received, self.arrived = received, arrived
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self, seconds: float) -> list[object]:
        """The spans exported so far, waiting up to ``seconds`` for a first one."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        def exported() -> list[object]:
            found = []
            for path, body in list(self.received):
                if path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    found += [
                        span
                        for resource in request.resource_spans
                        for scope in resource.scope_spans
                        for span in scope.spans
                    ]
            return found

        with self.arrived:
            self.arrived.wait_for(lambda: bool(exported()), seconds)
        return exported()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_serve_exports_spans_over_otlp_http_to_the_configured_endpoint(tmp_path, monkeypatch):
    """The `serve` extra carries the OTLP exporter (no skip: without it this fails, as a
    user's server would): a configured endpoint gets the spans."""
    from serving import serve_process

    receiver = _Receiver()
    config = tmp_path / "server.yaml"
    config.write_text(f"telemetry:\n  otlp_endpoint: {receiver.url}\n  logs: false\n")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within 0.1 s, not 5 s
    action = yaml.safe_load((ROOT / "fixtures/actions/llm-rollback.yaml").read_text())["action"]
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    try:
        with serve_process(str(BASELINE), "--ledger", ledger, "--config", str(config)) as url:
            verdict = httpx.post(f"{url}/v1/check", json=action, timeout=60).json()
            spans = receiver.spans(seconds=20)
    finally:
        receiver.close()
    assert [s.name for s in spans] == ["aigre.check"]
    attributes = {a.key: a.value for a in spans[0].attributes}
    assert attributes["aigre.decision_id"].string_value == verdict["decision_id"]
    assert attributes["aigre.decision"].string_value == verdict["decision"]


def test_the_serve_extra_installs_the_otlp_exporter_the_config_names():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    serve = project["optional-dependencies"]["serve"]
    assert any(r.startswith("opentelemetry-exporter-otlp-proto-http>=") for r in serve)
