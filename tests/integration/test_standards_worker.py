"""Acceptance: a product instrumented only through the official SDKs, through collector, Kafka and the worker.

Each SDK sends its traffic twice (its retry after an answer it did not get):
the store holds every event once, and the catalog's metrics are those of what
the test made the SDKs send - requests and error rate (OpenTelemetry),
crash-free sessions (Sentry), feature uses, conversions, revenue and NPS
(Segment and PostHog).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import posthog
import pytest
from aiohttp.test_utils import TestClient
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from segment.analytics.client import Client as SegmentClient
from support.collector import CHECKOUT_KEY, base_url, serve, stored, with_keys
from support.sdk_traffic import posthog_calls, segment_calls, sentry_app
from support.spans import make_spans

from pipeline import catalog, clickhouse

pytestmark = pytest.mark.integration

METRICS = ["requests", "error_rate", "crash_free_sessions", "feature_uses", "conversions", "revenue", "nps"]


def test_sdk_traffic_lands_once_and_feeds_the_catalog(settings, start_worker, tmp_path: Path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "products: {checkout-api: checkout}\n"
        "feedback:\n  NPS Submitted: {score: score, kind: nps}\n  survey sent: {score: $survey_response, kind: nps}\n"
    )  # a key of the file replaces its default: PostHog's survey stays feedback only when listed again
    s = with_keys(settings, collector_mapping_file=mapping)
    worker = start_worker(s)
    when = datetime.now(UTC) - timedelta(minutes=2)
    spans = make_spans()
    segment_ids = [str(uuid.uuid4()) for _ in range(6)]
    posthog_ids = [str(uuid.uuid4()) for _ in range(5)]

    def otel(url: str) -> list[SpanExportResult]:
        exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {CHECKOUT_KEY}"})
        try:
            return [exporter.export(spans), exporter.export(spans)]
        finally:
            exporter.shutdown()

    def segment(url: str) -> None:
        for options in ({"gzip": True}, {"sync_mode": True}):
            client = SegmentClient(CHECKOUT_KEY, host=url, **options)
            segment_calls(client, when, segment_ids)
            if not options.get("sync_mode"):
                client.flush()
                client.join()

    def ph(url: str) -> None:
        for options in ({"gzip": True}, {"sync_mode": True}):
            client = posthog.Client(CHECKOUT_KEY, host=url, **options)
            posthog_calls(client, when, posthog_ids)
            client.flush()
            client.shutdown()

    async def scenario(client: TestClient) -> list[SpanExportResult]:
        url = base_url(client)
        results = await asyncio.to_thread(otel, url)
        await asyncio.to_thread(segment, url)
        await asyncio.to_thread(ph, url)
        await asyncio.to_thread(sentry_app, f"http://{CHECKOUT_KEY}@127.0.0.1:{client.port}/1")
        return results

    assert serve(s, scenario) == [SpanExportResult.SUCCESS] * 2
    sent = stored(s)
    unique = {e["event_id"] for e in sent}
    # OTel 5, Segment 5, PostHog 5, Sentry 3 errors + 2 application and 3 request sessions (started and ended).
    assert len(unique) == 5 + 5 + 5 + 3 + 2 * 2 + 3 * 2
    assert len(sent) > len(unique)  # the retries did reach the topic
    worker.wait_drained(s.events_topic, timeout_s=180)
    worker.stop()

    with clickhouse.opened(s) as client:
        rows, ids = client.query("SELECT count(), uniqExact(event_id) FROM pulse.events FINAL").result_rows[0]
        cols, values = catalog.query(client, "pulse", METRICS, datetime.now(UTC) - timedelta(days=1))
    assert rows == ids == len(unique)
    [row] = values
    got = dict(zip(cols, row, strict=True))
    assert got["product"] == "checkout"
    assert got["requests"] == 3  # three server spans, each counted once though exported twice
    assert got["error_rate"] == pytest.approx(2 / 3)  # the 503 and the span that raised
    assert got["crash_free_sessions"] == pytest.approx(1 - 2 / 5)  # 2 of 5 ended sessions crashed
    features = sorted({(e["event_id"], e["feature"]) for e in sent if e["type"] == "feature_used"})
    assert got["feature_uses"] == 5, features  # Segment: a track, a page, a screen; PostHog: a capture and a $pageview
    assert got["conversions"] == 2 and got["revenue"] == pytest.approx(59.9 + 12)
    assert got["nps"] == pytest.approx(0.0) and not math.isnan(got["nps"])  # one promoter (9), one detractor (3)
