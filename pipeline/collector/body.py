"""Request bodies: inflating gzip under a cap, parsing JSON and validating every event (pure, no I/O)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from pipeline import schema
from pipeline.collector.errors import EventError, Rejected
from pipeline.events import EVENT_ADAPTER, RELEASE_ADAPTER, Event, Release, encode_event, partition_key

DECOMPRESSED_FACTOR = 8  # a gzip body may inflate to this many times collector_max_body_bytes
ERRORS_PER_EVENT = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A parsed request of ``total`` events: all of them valid (``errors`` empty), or the errors and no events."""

    total: int
    events: list[Event]
    encoded: list[tuple[bytes, bytes]]  # (Kafka key, canonical JSON) per event, for Emitter.send_now
    errors: list[EventError]


def decode_body(raw: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body after ``Content-Encoding``; inflating stops (413) past ``max_bytes``, so a gzip bomb costs nothing."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding == "br":
        return _inflate_brotli(raw, max_bytes)
    if encoding not in ("gzip", "x-gzip"):
        raise Rejected(415, f"unsupported Content-Encoding {encoding!r}: send gzip, br or none", "bad_encoding")
    out = bytearray()
    data = raw
    try:
        while data:  # gzip allows several members back to back
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += inflater.decompress(data, max_bytes - len(out) + 1)
            if len(out) > max_bytes:
                raise Rejected(413, f"body inflates to more than {max_bytes} bytes", "too_large_inflated")
            if not inflater.eof:
                raise Rejected(400, "gzip body is truncated", "bad_gzip")
            data = inflater.unused_data
    except zlib.error as exc:
        raise Rejected(400, f"body is not valid gzip: {exc}", "bad_gzip") from None
    return bytes(out)


def _inflate_brotli(raw: bytes, max_bytes: int) -> bytes:
    """A brotli body (sentry-sdk's choice whenever the ``brotli`` module is installed), under the same cap as gzip."""
    try:
        import brotli  # the collector extra; without it br is refused like any unknown encoding
    except ImportError:
        raise Rejected(
            415, "Content-Encoding br needs the brotli module on the collector: send gzip", "bad_encoding"
        ) from None
    inflater = brotli.Decompressor()
    out = bytearray()
    try:
        out += inflater.process(raw, output_buffer_limit=max_bytes + 1)
        # At the limit the decompressor holds more output: drain it, still under the cap, before it takes input.
        while len(out) <= max_bytes and not inflater.is_finished() and not inflater.can_accept_more_data():
            out += inflater.process(b"", output_buffer_limit=max_bytes - len(out) + 1)
    except brotli.error as exc:
        raise Rejected(400, f"body is not valid brotli: {exc}", "bad_brotli") from None
    if len(out) > max_bytes:
        raise Rejected(413, f"body inflates to more than {max_bytes} bytes", "too_large_inflated")
    if not inflater.is_finished():
        raise Rejected(400, "brotli body is truncated", "bad_brotli")
    return bytes(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_events(
    body: bytes,
    *,
    max_events: int,
    max_event_bytes: int,
    max_future_skew_s: float,
    now: datetime,
    max_age_s: float = float("inf"),
) -> ParsedBody:
    """Parse and validate a decoded body: one event object, an array of them, or ``{"events": [...]}``.

    Problems with the body as a whole raise :class:`Rejected` (400 not JSON or
    no events, 413 too many events); problems with single events are returned
    as :class:`EventError`\\ s, and then no event is returned at all.
    """
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}", "bad_json") from None
    if isinstance(doc, dict) and "events" in doc:
        if set(doc) != {"events"} or not isinstance(doc["events"], list):
            raise Rejected(400, 'a batch object must be exactly {"events": [...]}', "bad_shape")
        items: list[Any] = doc["events"]
    elif isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict):
        items = [doc]
    else:
        raise Rejected(400, "body must be an event object, an array of events or {'events': [...]}", "bad_shape")
    if not items:
        raise Rejected(400, "body holds no events", "empty")
    return validate_items(
        items,
        max_events=max_events,
        max_event_bytes=max_event_bytes,
        max_future_skew_s=max_future_skew_s,
        now=now,
        max_age_s=max_age_s,
    )


def validate_items(
    items: Sequence[Any],
    *,
    max_events: int,
    max_event_bytes: int,
    max_future_skew_s: float,
    now: datetime,
    max_age_s: float = float("inf"),
    labels: Sequence[str] | None = None,
) -> ParsedBody:
    """Validate candidate events (dicts) with the same models and bounds whatever route they came in by.

    ``POST /v1/events`` passes what the client sent; the standards' routes pass
    what their mapping made of a span, a message or an envelope item, with
    ``labels`` naming that source item in the errors. All or nothing: one bad
    item and no event is returned.
    """
    if len(items) > max_events:
        raise Rejected(413, f"{len(items)} events in one request; the limit is {max_events}", "too_many_events")
    future_limit = now + timedelta(seconds=max_future_skew_s)
    past_limit = max(EPOCH, now - timedelta(seconds=min(max_age_s, (now - EPOCH).total_seconds())))
    events: list[Event] = []
    encoded: list[tuple[bytes, bytes]] = []
    errors: list[EventError] = []
    for index, item in enumerate(items):
        label = labels[index] if labels is not None else None
        try:
            event: Event = EVENT_ADAPTER.validate_python(item)
        except ValidationError as exc:
            errors.extend(_event_errors(index, exc, label))
            continue
        value = encode_event(event)
        if len(value) > max_event_bytes:
            message = f"event is {len(value)} bytes encoded; the limit is {max_event_bytes}"
            errors.append(EventError(index, None, message, label))
        elif event.ts > future_limit:
            message = f"ts is more than {max_future_skew_s:.0f}s ahead of the collector's clock"
            errors.append(EventError(index, "ts", message, label))
        elif event.ts < past_limit:
            message = f"ts is before {past_limit.isoformat()}, the oldest event time kept"
            errors.append(EventError(index, "ts", message, label))
        elif not errors:  # after the first error only the errors matter
            events.append(event)
            encoded.append((partition_key(event), value))
    if errors:
        return ParsedBody(len(items), [], [], errors)
    return ParsedBody(len(items), events, encoded, [])


def _event_errors(index: int, exc: ValidationError, label: str | None = None) -> Iterator[EventError]:
    for err in exc.errors(include_url=False)[:ERRORS_PER_EVENT]:
        loc = ".".join(str(p) for p in err["loc"])
        if not loc and err["type"].startswith("union_tag"):
            loc = "type"
        yield EventError(index, loc or None, in_our_words(err), label)


EVENT_TYPES = ", ".join(schema.EVENT_TYPES)


def in_our_words(err: Mapping[str, Any]) -> str:
    """A validation error said as the contract says it (README "Emitting events"), not in pydantic's wording."""
    kind, ctx = err["type"], err.get("ctx") or {}
    given = err.get("input")
    shown = repr(given)[:60] if isinstance(given, str | int | float) else None
    words = {
        "union_tag_not_found": f'every event needs a "type": one of {EVENT_TYPES}',
        "union_tag_invalid": f"{str(ctx.get('tag'))[:60]!r} is not an event type: one of {EVENT_TYPES}",
        "missing": "is required",
        "extra_forbidden": "is not a field of this event type (free text goes in properties)",
        "string_pattern_mismatch": f"{shown} has characters an identifier may not: ASCII letters, digits and "
        ". _ : / @ + -, starting with a letter or digit (docs/events.schema.json)",
        "string_too_long": f"is longer than {ctx.get('max_length')} characters",
        "string_too_short": f"must hold at least {ctx.get('min_length')} character(s)",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "literal_error": f"{shown} is not one of {ctx.get('expected')}",
        "timezone_aware": "must be a time with a timezone, e.g. 2026-11-25T10:00:00Z",
        "datetime_from_date_parsing": "must be an ISO 8601 time with a timezone, e.g. 2026-11-25T10:00:00Z",
        "datetime_parsing": "must be an ISO 8601 time with a timezone, e.g. 2026-11-25T10:00:00Z",
        "datetime_type": "must be an ISO 8601 time with a timezone, e.g. 2026-11-25T10:00:00Z",
        "uuid_parsing": "must be a UUID, e.g. 0b8f6a3e-5d1c-4f2a-9e7b-2c4d6e8f0a1b",
        "uuid_type": "must be a UUID string",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "finite_number": "must be a finite number",
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "dict_type": "must be a JSON object",
        "model_type": "must be a JSON object",
    }
    return words.get(kind, err["msg"])


def parse_releases(body: bytes, *, now: datetime | None = None) -> list[Release]:
    """A release object or an array of them (``POST /v1/releases``); ``released_at`` defaults to ``now``.

    All or nothing: any invalid release is a 400 naming its index and field, and none is returned.
    """
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}", "bad_json") from None
    items = doc if isinstance(doc, list) else [doc]
    if not items or not all(isinstance(i, dict) for i in items):
        raise Rejected(400, "body must be a release object or an array of them", "bad_shape")
    if len(items) > MAX_RELEASES:
        raise Rejected(413, f"{len(items)} releases in one request; the limit is {MAX_RELEASES}", "too_many_events")
    stamp = (now or datetime.now(UTC)).isoformat()
    releases: list[Release] = []
    errors: list[EventError] = []
    for index, item in enumerate(items):
        try:
            releases.append(RELEASE_ADAPTER.validate_python({"released_at": stamp, **item, "type": "release"}))
        except ValidationError as exc:
            errors.extend(_event_errors(index, exc))
    if errors:
        raise Rejected(400, "invalid releases", "invalid_events", details=errors)
    return releases


MAX_RELEASES = 100
