"""POST /v1/traces driven by the OpenTelemetry SDK's own OTLP/HTTP exporters (protobuf and JSON) on the real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as encode_json_spans
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from support.collector import CHECKOUT_KEY, SEARCH_KEY, base_url, serve, stored, with_keys
from support.spans import make_spans

from pipeline.collector.otlp import OTLP_ID_NAMESPACE

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {CHECKOUT_KEY}"}
PROTO = {**AUTH, "Content-Type": "application/x-protobuf"}


def export(exporter: Any, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def event_id(span: ReadableSpan, suffix: str = "") -> str:
    ctx = span.get_span_context()
    return str(uuid.uuid5(OTLP_ID_NAMESPACE, f"{ctx.trace_id:032x}{ctx.span_id:016x}{suffix}"))


def test_sdk_spans_become_requests_and_errors_once_however_often_they_are_sent(settings, tmp_path: Path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("products:\n  checkout-api: checkout\n")
    s = with_keys(settings, collector_mapping_file=mapping)
    spans = make_spans()

    async def scenario(client: TestClient) -> list[SpanExportResult]:
        url = base_url(client) + "/v1/traces"
        proto = OTLPSpanExporter(endpoint=url, headers=AUTH, compression=Compression.Gzip)
        retry = OTLPSpanExporter(endpoint=url, headers=AUTH)
        as_json = JsonSpanExporter(endpoint=url, headers=AUTH)
        return [await asyncio.to_thread(export, e, spans) for e in (proto, retry, as_json)]

    assert serve(s, scenario) == [SpanExportResult.SUCCESS] * 3
    got = stored(s)
    by_name = {span.name: span for span in spans}
    expected_ids = {event_id(by_name[n]) for n in ("GET /orders/{id}", "POST /pay", "checkout")}
    expected_ids |= {event_id(by_name["checkout"], "/exception/0"), event_id(by_name["call stock"], "/exception/0")}
    assert len(got) == 3 * 5  # gzip protobuf, its retry and JSON: the same five events each time
    assert {e["event_id"] for e in got} == expected_ids  # so the worker's event_id dedup counts them once
    one = {e["event_id"]: e for e in got}
    for e in one.values():
        assert (e["product"], e["version"], e["environment"]) == ("checkout", "2.1.0", "staging")
        assert (e["user_id"], e["session_id"]) == ("u-42", "s-7")
    ok = one[event_id(by_name["GET /orders/{id}"])]
    assert (ok["type"], ok["operation"], ok["status_code"], ok["error"]) == ("request", "GET /orders/{id}", 200, "")
    span = by_name["GET /orders/{id}"]
    assert ok["latency_ms"] == pytest.approx((span.end_time - span.start_time) / 1e6)
    assert ok["latency_ms"] >= 20
    pay = one[event_id(by_name["POST /pay"])]
    assert (pay["operation"], pay["status_code"]) == ("POST /pay", 503)
    raised = one[event_id(by_name["checkout"])]
    assert raised["type"] == "request" and raised["error"]  # span status ERROR
    crash = one[event_id(by_name["checkout"], "/exception/0")]
    assert (crash["type"], crash["kind"], crash["handled"]) == ("error", "KeyError", False)
    slow = one[event_id(by_name["call stock"], "/exception/0")]
    assert (slow["type"], slow["kind"], slow["handled"]) == ("error", "TimeoutError", True)
    assert "stock service slow" in slow["properties"]["message"]


def test_refused_spans_are_reported_in_the_partial_success(settings):
    """The internal span maps to nothing: stored nothing of it, and the OTLP response says so and why - in
    protobuf for a protobuf request, in OTLP JSON for a JSON one."""
    s = with_keys(settings)
    spans = make_spans(service="checkout")
    proto = encode_spans(spans).SerializeToString()  # the SDKs' own encodings
    as_json = encode_json_spans(spans).to_json().encode()

    async def scenario(client: TestClient) -> list[tuple[int, bytes, str]]:
        out = []
        for body, content_type in ((proto, "application/x-protobuf"), (as_json, "application/json")):
            resp = await client.post("/v1/traces", data=body, headers={**AUTH, "Content-Type": content_type})
            out.append((resp.status, await resp.read(), resp.headers["Content-Type"]))
        return out

    (status, raw, content_type), (json_status, json_raw, json_type) = serve(s, scenario)
    assert status == 200 and content_type.startswith("application/x-protobuf")
    response = ExportTraceServiceResponse.FromString(raw)
    assert response.partial_success.rejected_spans == 1
    assert "not a SERVER span" in response.partial_success.error_message
    assert json_status == 200 and json_type.startswith("application/json")
    partial = json.loads(json_raw)["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1 and "not a SERVER span" in partial["errorMessage"]
    got = stored(s)
    assert len(got) == 10 and len({e["event_id"] for e in got}) == 5  # the same spans twice: the same ids


def test_the_sdk_gets_the_ingest_contract(settings):
    """Unknown key 401, a span the models refuse 400 naming it (nothing produced), a key of another product 403."""
    s = with_keys(settings)
    good = make_spans(service="checkout")
    bad = make_spans(service="checkout", bad_status=True)
    body_bad = encode_spans(bad).SerializeToString()

    async def scenario(client: TestClient) -> dict[str, Any]:
        url = base_url(client) + "/v1/traces"
        out: dict[str, Any] = {}
        wrong = OTLPSpanExporter(endpoint=url, headers={"Authorization": "Bearer nope"})
        out["unknown_key"] = await asyncio.to_thread(export, wrong, good)
        other = OTLPSpanExporter(endpoint=url, headers={"Authorization": f"Bearer {SEARCH_KEY}"})
        out["other_product"] = await asyncio.to_thread(export, other, good)
        sdk = OTLPSpanExporter(endpoint=url, headers=AUTH)
        out["bad_via_sdk"] = await asyncio.to_thread(export, sdk, bad)
        resp = await client.post(
            "/v1/traces", data=body_bad, headers={**AUTH, "Content-Type": "application/x-protobuf"}
        )
        out["bad"] = resp.status, await resp.json()
        resp = await client.post(
            "/v1/traces", data=body_bad[:-7], headers={**AUTH, "Content-Type": "application/x-protobuf"}
        )
        out["truncated"] = resp.status, await resp.json()
        resp = await client.post("/v1/traces", data=body_bad, headers={**AUTH, "Content-Type": "text/plain"})
        out["content_type"] = resp.status, await resp.json()
        return out

    out = serve(s, scenario)
    assert out["unknown_key"] == out["other_product"] == out["bad_via_sdk"] == SpanExportResult.FAILURE
    status, body = out["bad"]
    assert status == 400
    [detail] = body["details"]
    assert detail["item"] == "resourceSpans[0].scopeSpans[0].spans[0]" and detail["field"] == "request.status_code"
    assert out["truncated"][0] == 400 and "OTLP" in out["truncated"][1]["error"]
    assert out["content_type"][0] == 400 and "Content-Type" in out["content_type"][1]["error"]
    assert stored(s) == []
