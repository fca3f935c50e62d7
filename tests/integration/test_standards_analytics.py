"""Segment's /v1/batch (and single calls) and PostHog's /batch/, /capture/, /e/ driven by the official SDKs."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import posthog
import pytest
from aiohttp.test_utils import TestClient
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from segment.analytics.client import Client as SegmentClient
from segment.analytics.request import APIError as SegmentAPIError
from support.collector import CHECKOUT_KEY, SEARCH_KEY, base_url, serve, stored, with_keys
from support.net import free_port
from support.sdk_traffic import APP, posthog_calls, segment_calls
from support.spans import make_spans

from pipeline import telemetry

pytestmark = pytest.mark.integration


def unmapped(source: str, kind: str) -> float:
    return telemetry.REGISTRY.get_sample_value("pulse_collector_unmapped_total", {"source": source, "kind": kind}) or 0


def test_segment_sdk_batches_map_to_events_and_a_retry_counts_once(settings, tmp_path: Path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("feedback:\n  NPS Submitted: {score: score, kind: nps}\n")
    s = with_keys(settings, collector_mapping_file=mapping)
    when = datetime.now(UTC) - timedelta(minutes=5)
    identify_before = unmapped("segment", "identify")

    message_ids = [str(uuid.uuid4()) for _ in range(6)]

    def run_sdk(url: str) -> list[str]:
        client = SegmentClient(CHECKOUT_KEY, host=url, upload_size=100, gzip=True)  # the default, threaded mode
        ids = segment_calls(client, when, message_ids)
        client.flush()
        client.join()
        return ids

    def retry(url: str) -> list[str]:  # the same messages again (an SDK's retry after a lost answer)
        client = SegmentClient(CHECKOUT_KEY, host=url, sync_mode=True)  # each call its own request
        return segment_calls(client, when, message_ids)

    async def scenario(client: TestClient) -> tuple[list[str], list[str]]:
        url = base_url(client)
        return await asyncio.to_thread(run_sdk, url), await asyncio.to_thread(retry, url)

    first, again = serve(s, scenario)
    assert first == again
    got = stored(s)
    assert len(got) == 2 * 5  # the identify is counted, not stored; the rest twice with the same ids
    assert sorted(e["event_id"] for e in got) == sorted(first * 2)
    assert unmapped("segment", "identify") == identify_before + 2
    one = {e["event_id"]: e for e in got}
    search, order, nps, page, screen = (one[i] for i in first)
    for e in (search, order, nps, page, screen):
        assert (e["product"], e["version"], e["session_id"], e["platform"]) == ("checkout", "3.2.0", "s-9", "ios")
        assert datetime.fromisoformat(e["ts"]) == when.replace(microsecond=when.microsecond // 1000 * 1000)
    assert (search["type"], search["feature"], search["duration_ms"], search["user_id"]) == (
        "feature_used",
        "Search_Used",
        120.5,
        "u-1",
    )  # fmt: skip  (an identifier; the name as sent is kept)
    assert search["properties"] == {"duration_ms": 120.5, "query": "shoes", "event_name": "Search Used"}
    assert (order["type"], order["goal"], order["value"], order["currency"]) == (
        "conversion", "Order_Completed", 59.9, "EUR")  # fmt: skip
    assert (nps["type"], nps["kind"], nps["score"], nps["user_id"]) == ("feedback", "nps", 9, "u-2")
    assert (page["type"], page["feature"], page["properties"]["name"]) == ("feature_used", "page_view", "Cart")
    assert (screen["type"], screen["feature"], screen["user_id"]) == ("feature_used", "screen_view", "anon-5")


def test_posthog_sdk_batches_map_to_events_and_a_retry_counts_once(settings):
    s = with_keys(settings)
    when = datetime.now(UTC) - timedelta(minutes=3)
    uuids = [str(uuid.uuid4()) for _ in range(5)]

    def run_sdk(url: str, **options: Any) -> list[str]:
        client = posthog.Client(CHECKOUT_KEY, host=url, **options)
        ids = posthog_calls(client, when, uuids)
        client.flush()
        client.shutdown()
        return ids

    async def scenario(client: TestClient) -> tuple[list[str], list[str]]:
        url = base_url(client)
        batched = await asyncio.to_thread(run_sdk, url, gzip=True, flush_at=100)
        # The same captures again, one request each: an SDK's retry after an answer it did not get.
        return batched, await asyncio.to_thread(run_sdk, url, sync_mode=True)

    first, again = serve(s, scenario)
    assert first == again == uuids
    got = stored(s)
    assert len(got) == 2 * 5  # the $identify counted, not stored
    assert sorted(e["event_id"] for e in got) == sorted(uuids * 2)  # the worker's event_id dedup keeps one each
    one = {e["event_id"]: e for e in got}
    report, view, survey, order, exc = (one[i] for i in first)
    for e in (report, view, survey, order, exc):
        assert (e["product"], e["version"], e["session_id"]) == ("checkout", "4.0.1", "ph-s1")
        assert "token" not in e["properties"]
    assert (report["type"], report["feature"], report["user_id"]) == ("feature_used", "report_exported", "d-1")
    assert (view["type"], view["feature"]) == ("feature_used", "page_view")
    assert (survey["type"], survey["kind"], survey["score"]) == ("feedback", "nps", 3)
    assert (order["type"], order["goal"], order["value"]) == ("conversion", "Order_Completed", 12)
    assert (exc["type"], exc["kind"], exc["handled"]) == ("error", "ValueError", True)


def test_posthog_js_bodies_gzip_js_and_form_encoded(settings):
    """posthog-js's wire forms: ``/e/?compression=gzip-js`` (gzip without Content-Encoding) and ``data=`` base64."""
    s = with_keys(settings)
    event = {"event": "clicked buy", "properties": {"distinct_id": "js-1", "token": CHECKOUT_KEY, "$session_id": "w1"},
             "timestamp": datetime.now(UTC).isoformat(), "uuid": str(uuid.uuid4())}  # fmt: skip
    form_event = {**event, "uuid": str(uuid.uuid4())}

    async def scenario(client: TestClient) -> list[int]:
        zipped = gzip.compress(json.dumps([event]).encode())
        r1 = await client.post("/e/?compression=gzip-js", data=zipped, headers={"Content-Type": "text/plain"})
        data = base64.b64encode(json.dumps(form_event).encode()).decode()
        r2 = await client.post("/capture/", data={"data": data})
        return [r1.status, r2.status]

    assert serve(s, scenario) == [200, 200]
    got = {e["event_id"]: e for e in stored(s)}
    assert set(got) == {event["uuid"], form_event["uuid"]}
    assert got[event["uuid"]]["feature"] == "clicked_buy" and got[event["uuid"]]["user_id"] == "js-1"
    assert got[event["uuid"]]["properties"]["event_name"] == "clicked buy"


# --- one ingest contract: every route, every answer ------------------------------------------------------


def test_every_route_answers_like_post_v1_events(settings):
    """Unknown key 401, a bad item 400 naming it with nothing produced, a key of another product 403, for the
    SDKs; then size 413 for every route."""
    s = with_keys(settings, collector_max_body_bytes=4096)
    when = datetime.now(UTC)

    def segment_sync(url: str, key: str, **track: Any) -> tuple[int, str]:
        client = SegmentClient(key, host=url, sync_mode=True)
        try:
            client.track("u-1", track.pop("event", "Search Used"), track.pop("properties", {}), APP, when, **track)
        except SegmentAPIError as exc:
            return exc.status, exc.message
        return 200, ""

    def posthog_sync(url: str, key: str, event: str, props: dict[str, Any]) -> list[Any]:
        """The statuses of the errors posthog-python reports: in sync mode it logs them (with the exception)."""
        errors: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = errors.append  # type: ignore[method-assign]
        logger = logging.getLogger("posthog")
        logger.addHandler(handler)
        try:
            client = posthog.Client(key, host=url, sync_mode=True)
            client.capture(event, distinct_id="d-1", properties=props, timestamp=when)
        finally:
            logger.removeHandler(handler)
        return [getattr(r.exc_info[1], "status", None) for r in errors if r.exc_info]

    async def scenario(client: TestClient) -> dict[str, Any]:
        url = base_url(client)
        out: dict[str, Any] = {}
        out["segment_401"] = await asyncio.to_thread(segment_sync, url, "nope")
        out["segment_400"] = await asyncio.to_thread(
            segment_sync, url, CHECKOUT_KEY, event="Order Completed", properties={"revenue": -5}
        )
        out["posthog_401"] = await asyncio.to_thread(posthog_sync, url, "nope", "x", {})
        out["posthog_400"] = await asyncio.to_thread(posthog_sync, url, CHECKOUT_KEY, "survey sent",
                                                     {"$survey_response": "eleven"})  # fmt: skip
        bad_batch = {"batch": [{"type": "track", "event": "ok", "userId": "u", "messageId": "m1"},
                               {"type": "track", "event": "Order Completed", "userId": "u",
                                "properties": {"revenue": -1}}]}  # fmt: skip
        basic = "Basic " + base64.b64encode(f"{CHECKOUT_KEY}:".encode()).decode()
        resp = await client.post("/v1/batch", json=bad_batch, headers={"Authorization": basic})
        out["segment_400_body"] = resp.status, await resp.json()
        resp = await client.post("/v1/track", json={"event": "x", "userId": "u"}, headers={
            "Authorization": "Basic " + base64.b64encode(f"{SEARCH_KEY}:".encode()).decode()})  # fmt: skip
        out["segment_single_ok"] = resp.status  # a search key, product from the key
        big = b"x" * 5000
        for route in ("/v1/events", "/v1/traces", "/v1/batch", "/batch/", "/e/", "/api/1/envelope/"):
            resp = await client.post(route, data=big, headers={"Authorization": f"Bearer {CHECKOUT_KEY}",
                                                               "Content-Type": "application/json"})  # fmt: skip
            out[f"413 {route}"] = resp.status
        return out

    out = serve(s, scenario)
    assert out["segment_401"][0] == 401
    status, message = out["segment_400"]
    assert status == 400 and message == "invalid events"
    assert out["posthog_401"] == [401] and out["posthog_400"] == [400]
    status, body = out["segment_400_body"]
    assert status == 400
    assert [(d["item"], d["field"]) for d in body["details"]] == [("batch[1]", "conversion.value")]
    assert out["segment_single_ok"] == 200
    for route in ("/v1/events", "/v1/traces", "/v1/batch", "/batch/", "/e/", "/api/1/envelope/"):
        assert out[f"413 {route}"] == 413, route
    got = stored(s)
    assert [(e["product"], e["feature"]) for e in got] == [("search", "x")]  # nothing of the refused requests


def one_body_per_route() -> dict[str, tuple[bytes | str, str]]:
    """A small valid body for every route (the OTLP one the SDK's encoding of five events' spans)."""
    return {
        "/v1/events": (json.dumps([{"type": "feature_used", "product": "checkout", "version": "1", "user_id": "u",
                                    "ts": datetime.now(UTC).isoformat(), "feature": "f"}]), "application/json"),
        "/v1/traces": (encode_spans(make_spans(service="checkout")).SerializeToString(), "application/x-protobuf"),
        "/v1/batch": (json.dumps({"batch": [{"type": "track", "event": "x", "userId": "u"}]}), "application/json"),
        "/batch/": (json.dumps({"api_key": CHECKOUT_KEY, "batch": [{"event": "x", "distinct_id": "u"}]}),
                    "application/json"),
        f"/api/1/envelope/?sentry_key={CHECKOUT_KEY}": (
            b'{}\n{"type":"event"}\n' + json.dumps({"exception": {"values": [{"type": "E"}]}}).encode(),
            "application/x-sentry-envelope"),
    }  # fmt: skip


BEARER = {"Authorization": f"Bearer {CHECKOUT_KEY}"}


def test_every_route_answers_503_while_kafka_is_down(settings):
    s = with_keys(settings, kafka_bootstrap=f"127.0.0.1:{free_port()}", collector_ack_timeout_s=1.0)
    bodies = one_body_per_route()

    async def scenario(client: TestClient) -> dict[str, tuple[int, str | None]]:
        out = {}
        for route, (body, content_type) in bodies.items():
            resp = await client.post(route, data=body, headers={**BEARER, "Content-Type": content_type})
            out[route] = resp.status, resp.headers.get("Retry-After")
        return out

    for route, (status, retry_after) in serve(s, scenario).items():
        assert status == 503 and retry_after, route


def test_every_route_shares_the_products_rate_limit_and_answers_429(settings):
    """One bucket per product whatever the route: once /v1/traces spent it, every route is 429 with Retry-After
    and nothing of those requests is produced."""
    s = with_keys(settings, collector_rate_limit_eps=0.01, collector_max_events=10)  # a bucket of 10 events
    bodies = one_body_per_route()

    async def scenario(client: TestClient) -> dict[str, tuple[int, str | None]]:
        traces, content_type = bodies["/v1/traces"]
        out = {}
        for n in range(2):  # 5 + 5 events: the whole bucket
            resp = await client.post("/v1/traces", data=traces, headers={**BEARER, "Content-Type": content_type})
            out[f"spend {n}"] = resp.status, None
        for route, (body, content_type) in bodies.items():
            resp = await client.post(route, data=body, headers={**BEARER, "Content-Type": content_type})
            out[route] = resp.status, resp.headers.get("Retry-After")
        return out

    out = serve(s, scenario)
    assert out.pop("spend 0") == out.pop("spend 1") == (200, None)
    for route, (status, retry_after) in out.items():
        assert status == 429 and retry_after and int(retry_after) >= 1, route
    assert len(stored(s)) == 10
