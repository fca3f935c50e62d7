"""Each SDK's own retry after a 503 (Kafka unreachable) stores every event once, when the broker is back.

The shared broker cannot be stopped here: the collector is given the address
of a forwarder to it that is not listening yet (Kafka "down"), and the
forwarder starts once every SDK has had its 503. Sentry's SDK does not retry
a 503 (it drops the envelope and records it in a client report), so it is not
among them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import posthog
import pytest
from aiohttp.test_utils import TestClient
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from segment.analytics.client import Client as SegmentClient
from support.collector import CHECKOUT_KEY, base_url, serve, stored, with_keys
from support.net import free_port
from support.sdk_traffic import posthog_calls, segment_calls
from support.spans import make_spans

from pipeline import telemetry

pytestmark = pytest.mark.integration


def refused() -> float:
    return telemetry.REGISTRY.get_sample_value("pulse_collector_requests_total", {"status": "503"}) or 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def test_each_sdk_retries_a_503_and_its_events_land_once(settings):
    port = free_port()
    s = with_keys(settings, kafka_bootstrap=f"127.0.0.1:{port}", collector_ack_timeout_s=1.0)
    broker_host, broker_port = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    when = datetime.now(UTC) - timedelta(minutes=1)
    spans = make_spans(service="checkout")
    segment_ids = [str(uuid.uuid4()) for _ in range(6)]
    posthog_ids = [str(uuid.uuid4()) for _ in range(5)]

    async def forward(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection(broker_host, int(broker_port))
        await asyncio.gather(_pipe(client_r, broker_w), _pipe(broker_r, client_w))

    def otel(url: str) -> SpanExportResult:
        exporter = OTLPSpanExporter(
            endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {CHECKOUT_KEY}"}, timeout=60
        )
        try:
            return exporter.export(spans)  # retries 503 after its Retry-After, within its timeout
        finally:
            exporter.shutdown()

    def segment(url: str) -> None:
        client = SegmentClient(CHECKOUT_KEY, host=url)  # threaded mode: its consumer retries with backoff
        segment_calls(client, when, segment_ids)
        client.flush()
        client.join()

    def ph(url: str) -> None:
        client = posthog.Client(CHECKOUT_KEY, host=url)  # threaded mode: its consumer retries with backoff
        posthog_calls(client, when, posthog_ids)
        client.flush()
        client.shutdown()

    async def scenario(client: TestClient) -> SpanExportResult:
        url = base_url(client)
        before = refused()
        sdks = [asyncio.create_task(asyncio.to_thread(fn, url)) for fn in (otel, segment, ph)]
        deadline = time.monotonic() + 30
        while refused() < before + 3:  # every SDK was told 503 at least once
            assert time.monotonic() < deadline, "the SDKs were never answered 503"
            await asyncio.sleep(0.1)
        proxy = await asyncio.start_server(forward, "127.0.0.1", port)  # Kafka is back
        try:
            results = await asyncio.wait_for(asyncio.gather(*sdks), 120)
        finally:
            proxy.close()
        return results[0]

    assert serve(s, scenario) == SpanExportResult.SUCCESS
    got = [e["event_id"] for e in stored(settings)]
    assert len(got) == len(set(got)) == 5 + 5 + 5  # every event of every SDK, once
    assert set(posthog_ids) <= set(got)
