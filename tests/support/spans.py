"""Spans recorded by the real OpenTelemetry SDK, for the tests of the collector's OTLP route."""

from __future__ import annotations

import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


def make_spans(service: str = "checkout-api", bad_status: bool = False) -> list[ReadableSpan]:
    """Spans recorded by the real SDK: three server spans (ok, 503, raising), an internal one and a client
    span that records a handled exception."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "service.version": "2.1.0", "deployment.environment.name": "staging"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("shop")
    user = {"enduser.id": "u-42", "session.id": "s-7"}
    with tracer.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER) as span:
        span.set_attributes({**user, "http.request.method": "GET", "http.route": "/orders/{id}",
                             "http.response.status_code": 999 if bad_status else 200})  # fmt: skip
        time.sleep(0.02)
    with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as span:
        span.set_attributes({**user, "http.response.status_code": 503})
    try:
        with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as span:
            span.set_attributes(user)
            raise KeyError("cart")
    except KeyError:
        pass
    with tracer.start_as_current_span("render", kind=SpanKind.INTERNAL):
        pass
    with tracer.start_as_current_span("call stock", kind=SpanKind.CLIENT) as span:
        span.set_attributes(user)
        span.record_exception(TimeoutError("stock service slow"))
        span.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())
