"""Optional OpenTelemetry export: a span per check and a log record per decision.

The hash-chained decision log stays the record of truth; this is a copy for the
tracing and logging systems a platform already runs. ``Telemetry`` takes SDK providers
(tests give it in-memory exporters); ``from_config`` builds OTLP/HTTP exporters from the
server config's ``telemetry`` section (the ``opentelemetry-exporter-otlp-proto-http``
package). Each span is ``aigre.check`` with the decision, the decision id, the pack, the
action's kind and digest and the fired rules; each log record carries the verdict
document as its body, with the same attributes.

Deferred imports: optional libraries (the `serve` extra's exporters, httpx) load only
when a configuration uses them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry._logs import SeverityNumber

SCOPE = "aigre_policy.server"


class Telemetry:
    def __init__(self, tracer_provider: Any = None, logger_provider: Any = None):
        self.tracer = tracer_provider.get_tracer(SCOPE) if tracer_provider is not None else None
        self.logger = logger_provider.get_logger(SCOPE) if logger_provider is not None else None
        self._providers = [p for p in (tracer_provider, logger_provider) if p is not None]

    @contextlib.contextmanager
    def span(self, api: str) -> Iterator[Any]:
        if self.tracer is None:
            yield None
            return
        with self.tracer.start_as_current_span(
            "aigre.check", attributes={"aigre.api": api}
        ) as span:
            yield span

    def decided(self, span: Any, verdict: Any, api: str) -> None:
        action = verdict.action if isinstance(verdict.action, dict) else {}
        attributes = {
            "aigre.api": api,
            "aigre.decision": verdict.decision,
            "aigre.decision_id": verdict.decision_id,
            "aigre.fail_closed": bool(verdict.fail_closed),
            "aigre.pack.name": str(verdict.pack.get("name", "")),
            "aigre.pack.version": str(verdict.pack.get("version", "")),
            "aigre.action.kind": str(action.get("kind", "")),
            "aigre.action.digest": str(verdict.action_digest),
            "aigre.rules": [str(r.get("id")) for r in verdict.fired],
        }
        if span is not None:
            span.set_attributes(attributes)
        if self.logger is not None:
            severity = SeverityNumber.WARN if verdict.fail_closed else SeverityNumber.INFO
            self.logger.emit(
                severity_number=severity,
                severity_text=severity.name,
                body=verdict.to_dict(),
                attributes=attributes,
                event_name="aigre.decision",
            )

    def shutdown(self) -> None:
        for provider in self._providers:
            with contextlib.suppress(Exception):
                provider.shutdown()


def from_config(config: Any) -> Telemetry | None:
    """OTLP/HTTP exporters for the config's ``telemetry`` section, or ``None`` without one."""
    if config is None:
        return None
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": config.service_name})
    endpoint = config.otlp_endpoint.rstrip("/")
    tracer_provider = logger_provider = None
    if config.traces:
        tracer_provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    if config.logs:
        logger_provider = LoggerProvider(resource=resource)
        log_exporter = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    return Telemetry(tracer_provider, logger_provider)
