"""Events per second through the collector, per route, against ``POST /v1/events`` in the same run.

Each route gets requests of ``BATCH`` events encoded the way its SDK encodes
them (OTLP protobuf from the OpenTelemetry SDK's encoder, Segment messages
from analytics-python's own message builder, Sentry envelopes from
sentry-sdk's ``Envelope``; PostHog's batch in posthog-python's wire shape),
posted ``CONCURRENCY`` at a time to a collector on the real broker. Speeds are
printed, never asserted (the machine is shared and noisy); what is asserted is
that every request was acknowledged and its events reached the topic.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/benchmarks/test_collector_routes.py -q -s
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from segment.analytics.client import Client as SegmentClient
from sentry_sdk.envelope import Envelope
from support.collector import CHECKOUT_KEY, serve, stored, with_keys
from support.truth import make_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 500
REQUESTS = 20
CONCURRENCY = 4
BEARER = {"Authorization": f"Bearer {CHECKOUT_KEY}"}


def otlp_body() -> bytes:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout", "service.version": "1.0.0"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(BATCH):
        with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER) as span:
            span.set_attributes({"http.route": "/items/{id}", "http.request.method": "GET",
                                 "http.response.status_code": 200, "enduser.id": f"u{i % 50}"})  # fmt: skip
    provider.shutdown()
    return encode_spans(memory.get_finished_spans()).SerializeToString()


def segment_body() -> bytes:
    client = SegmentClient(CHECKOUT_KEY, send=False)  # builds and returns each message without sending it
    now = datetime.now(UTC)
    batch = [client.track(f"u{i % 50}", "Search Used", {"n": i}, {"app": {"version": "1.0.0"}}, now)[1]
             for i in range(BATCH)]  # fmt: skip
    return json.dumps({"batch": batch}, default=str).encode()


def posthog_body() -> bytes:
    now = datetime.now(UTC).isoformat()
    batch = [{"event": "report exported", "distinct_id": f"u{i % 50}", "timestamp": now, "uuid": str(uuid.uuid4()),
              "properties": {"$app_version": "1.0.0", "$lib": "posthog-python"}} for i in range(BATCH)]  # fmt: skip
    return json.dumps({"api_key": CHECKOUT_KEY, "batch": batch}).encode()


def sentry_body() -> bytes:
    envelope = Envelope(headers={"sent_at": datetime.now(UTC).isoformat()})
    now = time.time()
    for i in range(BATCH):
        envelope.add_event({"event_id": uuid.uuid4().hex, "timestamp": now, "release": "checkout@1.0.0",
                            "user": {"id": f"u{i % 50}"},
                            "exception": {"values": [{"type": "KeyError", "value": "sku"}]}})  # fmt: skip
    return envelope.serialize()


def routes() -> dict[str, tuple[bytes, dict[str, str]]]:
    events = make_events(BATCH, ["checkout"], seed=5)
    for e in events:
        e.pop("event_id", None)
    return {
        "/v1/events": (json.dumps(events).encode(), {**BEARER, "Content-Type": "application/json"}),
        "/v1/traces": (otlp_body(), {**BEARER, "Content-Type": "application/x-protobuf"}),
        "/v1/batch": (segment_body(), {**BEARER, "Content-Type": "application/json"}),
        "/batch/": (posthog_body(), {"Content-Type": "application/json"}),
        "/api/1/envelope/": (sentry_body(), {"X-Sentry-Auth": f"Sentry sentry_key={CHECKOUT_KEY}"}),
    }


def test_events_per_second_per_route(settings):
    s = with_keys(settings, collector_max_body_bytes=4 * 1024 * 1024)
    bodies = routes()

    async def scenario(client: TestClient) -> dict[str, float]:
        rates: dict[str, float] = {}
        for route, (body, headers) in bodies.items():
            resp = await client.post(route, data=body, headers=headers)  # warm-up (and the Kafka connection)
            assert resp.status in (200, 202), (route, await resp.text())
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(
                route: str = route, body: bytes = body, headers: dict[str, Any] = headers, gate: Any = gate
            ) -> int:
                async with gate:
                    resp = await client.post(route, data=body, headers=headers)
                    await resp.read()
                    return resp.status

            started = time.perf_counter()
            statuses = await asyncio.gather(*(one() for _ in range(REQUESTS)))
            rates[route] = REQUESTS * BATCH / (time.perf_counter() - started)
            assert set(statuses) <= {200, 202}, (route, statuses)
        return rates

    rates = serve(s, scenario)
    print(f"\ncollector events/s ({REQUESTS} requests of {BATCH} events, {CONCURRENCY} at a time):")
    for route, rate in rates.items():
        print(f"  {route:<20} {rate:>9.0f}  ({rate / rates['/v1/events']:.2f}x POST /v1/events)")
    assert len(stored(s)) == len(bodies) * (REQUESTS + 1) * BATCH
