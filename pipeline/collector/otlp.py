"""OTLP/HTTP traces (``POST /v1/traces``): server spans become request events, exception span events error events.

The body is an ``ExportTraceServiceRequest`` as protobuf
(``application/x-protobuf``) or as OTLP's JSON encoding (``application/json``:
ids in hex, enums as numbers), optionally gzip. The mapping (README, "Speaking
the standards"):

* a span of kind ``SERVER`` is one ``request``: operation
  ``"<http.request.method> <http.route>"`` (or ``http.route`` alone, or the
  span name), latency from start to end, ``status_code`` from
  ``http.response.status_code`` (older ``http.status_code``), ``error`` set when
  the span status is ``ERROR``;
* each span event named ``exception`` (on any span) is one ``error``: kind
  ``exception.type``, handled unless the span's status is ``ERROR`` or
  ``exception.escaped`` is true;
* product from ``service.name`` (through the mapping file's ``products``),
  version ``service.version``, environment ``deployment.environment.name``
  (older ``deployment.environment``), user ``enduser.id`` / ``user.id``, session
  ``session.id`` - span attributes first, then the resource's;
* ``event_id`` is uuid5 of trace id and span id (and the exception's place), so
  an exporter that retries a batch is counted once by the worker's dedup.

Spans of other kinds without an exception event carry nothing we store; they
are counted and reported in OTLP's ``partial_success`` (``rejected_spans`` and
a message saying why), as the specification asks of a server that keeps part
of a request. Everything else follows ``POST /v1/events``: an invalid mapped
span refuses the whole request with 400 naming it.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from pipeline.collector.errors import Rejected
from pipeline.collector.intake import Intake, identifier, operation_name, text
from pipeline.collector.mapping import ANONYMOUS_USER, UNKNOWN_VERSION, Mapping

OTLP_ID_NAMESPACE = uuid.UUID("3b8f7e0c-4a55-4d59-9a3c-0f1e6f9b2c71")  # uuid5(namespace, trace id + span id)
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
NOT_STORED = "not a SERVER span and no exception event: only those map to ProductPulse events"
MESSAGE_LIMIT = 1024  # characters of an exception message kept in properties


def content_kind(content_type: str | None) -> str:
    """``PROTOBUF`` or ``JSON`` from the request's Content-Type; anything else is 400."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if mime == JSON:
        return JSON
    raise Rejected(400, f"unsupported Content-Type {mime!r}: send {PROTOBUF} or {JSON}", "bad_content_type")


def parse_request(body: bytes, kind: str) -> ExportTraceServiceRequest:
    """The decoded ``ExportTraceServiceRequest``; 400 for a body that is not one."""
    message = ExportTraceServiceRequest()
    if kind == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise Rejected(400, f"body is not an OTLP ExportTraceServiceRequest: {exc}", "bad_protobuf") from None
        return message
    try:
        doc = json.loads(body)
        json_format.ParseDict(_ids_as_base64(doc), message, ignore_unknown_fields=True)
    except (ValueError, RecursionError, json_format.ParseError, AttributeError, TypeError) as exc:
        raise Rejected(400, f"body is not OTLP JSON: {str(exc)[:300]}", "bad_json") from None
    return message


def _ids_as_base64(doc: Any) -> Any:
    """OTLP JSON spells trace and span ids in hex; protobuf's JSON mapping wants base64 for bytes."""
    if not isinstance(doc, dict):
        raise ValueError("an ExportTraceServiceRequest is a JSON object")
    for rs in _objects(doc.get("resourceSpans")):
        for ss in _objects(rs.get("scopeSpans")):
            for span in _objects(ss.get("spans")):
                for holder in [span, *_objects(span.get("links"))]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        value = holder.get(key)
                        if isinstance(value, str) and value and len(value) in (16, 32):
                            try:
                                holder[key] = base64.b64encode(bytes.fromhex(value)).decode()
                            except ValueError:
                                raise ValueError(f"{key} {value[:40]!r} is not hex") from None
    return doc


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = _value(kv.value)
    return out


def _ts(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, UTC).isoformat()


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None and v != "":
            return v
    return None


def _int(value: Any) -> Any:
    """An integer attribute as int (a string of digits too); anything else as it is, for the model to refuse."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def map_request(message: ExportTraceServiceRequest, mapping: Mapping) -> Intake:
    """The events of an ``ExportTraceServiceRequest`` (see the module docstring for the mapping)."""
    intake = Intake("otlp")
    for r, rs in enumerate(message.resource_spans):
        resource = _attributes(rs.resource.attributes)
        service = text(resource.get("service.name"), 200)
        envelope_base = {
            "product": mapping.product_of_service(service) if service else "",
            "version": identifier(resource.get("service.version")) or UNKNOWN_VERSION,
            "environment": identifier(_first(resource.get("deployment.environment.name"),
                                       resource.get("deployment.environment"))) or "production",
            "platform": text(resource.get("telemetry.sdk.language")),
        }  # fmt: skip
        for s, ss in enumerate(rs.scope_spans):
            for i, span in enumerate(ss.spans):
                label = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                attrs = _attributes(span.attributes)
                trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
                envelope = {
                    **envelope_base,
                    "user_id": text(_first(attrs.get("enduser.id"), attrs.get("user.id"),
                                           resource.get("enduser.id"), resource.get("user.id")), 128)
                    or ANONYMOUS_USER,
                    "session_id": text(_first(attrs.get("session.id"), resource.get("session.id"))),
                }  # fmt: skip
                ids = {"trace_id": trace_id, "span_id": span_id, "span_name": span.name[:200]}
                mapped = False
                if span.kind == Span.SPAN_KIND_SERVER:
                    intake.add(_request(span, attrs, envelope, ids), label)
                    mapped = True
                for j, ev in enumerate(span.events):
                    if ev.name == "exception":
                        intake.add(_error(span, ev, j, envelope, ids), f"{label}.events[{j}]")
                        mapped = True
                if not mapped:
                    intake.set_aside(f"span_kind_{Span.SpanKind.Name(span.kind).removeprefix('SPAN_KIND_').lower()}",
                                     NOT_STORED)  # fmt: skip
    return intake


def _request(span: Span, attrs: dict[str, Any], envelope: dict[str, Any], ids: dict[str, Any]) -> dict[str, Any]:
    route = text(attrs.get("http.route"), 128)
    method = text(_first(attrs.get("http.request.method"), attrs.get("http.method")), 16)
    operation = operation_name(f"{method} {route}" if method and route else route or span.name)
    failed = span.status.code == Status.STATUS_CODE_ERROR
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid5(OTLP_ID_NAMESPACE, ids["trace_id"] + ids["span_id"])),
        "type": "request",
        "ts": _ts(span.start_time_unix_nano),
        **envelope,
        "operation": operation,
        "latency_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "status_code": _int(_first(attrs.get("http.response.status_code"), attrs.get("http.status_code"), 0)),
        "error": (text(span.status.message) or "span status ERROR") if failed else "",
        "properties": ids,
    }
    return event


def _error(span: Span, ev: Span.Event, j: int, envelope: dict[str, Any], ids: dict[str, Any]) -> dict[str, Any]:
    attrs = _attributes(ev.attributes)
    escaped = attrs.get("exception.escaped")
    if isinstance(escaped, str):
        escaped = escaped.strip().lower() == "true"
    # Unhandled when it escaped the span: the SDKs mark that by the span's ERROR status (several never set
    # exception.escaped true, e.g. Python's for an exception leaving a `with` span), or by exception.escaped.
    handled = escaped is not True and span.status.code != Status.STATUS_CODE_ERROR
    message = attrs.get("exception.message")
    return {
        "event_id": str(uuid.uuid5(OTLP_ID_NAMESPACE, f"{ids['trace_id']}{ids['span_id']}/exception/{j}")),
        "type": "error",
        "ts": _ts(ev.time_unix_nano or span.start_time_unix_nano),
        **envelope,
        "kind": text(attrs.get("exception.type"), 128) or "exception",
        "handled": handled,
        "properties": {**ids, **({"message": str(message)[:MESSAGE_LIMIT]} if message else {})},
    }


def response_body(intake: Intake, kind: str) -> tuple[bytes, str]:
    """The ``ExportTraceServiceResponse`` for an accepted request, in the request's encoding.

    ``partial_success`` is set only when spans were refused, with how many and
    why; an empty one means everything was kept, as the specification says.
    """
    response = ExportTraceServiceResponse()
    if intake.refused:
        response.partial_success.rejected_spans = intake.refused
        response.partial_success.error_message = "; ".join(
            f"{n} span(s) not stored: {why}" for why, n in intake.refused_why.items()
        )
    if kind == PROTOBUF:
        return response.SerializeToString(), PROTOBUF
    doc = json_format.MessageToDict(response)
    return json.dumps(doc).encode(), JSON
