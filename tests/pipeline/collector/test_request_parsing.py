"""Unit tests of the collector's pure parts: write keys, body decoding, parsing and validation."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.collector.app import rejection_response
from pipeline.collector.auth import authorize, parse_write_keys
from pipeline.collector.body import decode_body, parse_events
from pipeline.collector.errors import Rejected
from pipeline.collector.link import chunks
from pipeline.events import split_pack

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(**over: Any) -> dict[str, Any]:
    body = {
        "event_id": str(uuid.uuid4()),
        "type": "request",
        "product": "checkout",
        "version": "1.0.0",
        "ts": (NOW - timedelta(minutes=1)).isoformat(),
        "user_id": "u1",
        "operation": "GET /x",
        "latency_ms": 12.5,
        "status_code": 200,
    }
    return body | over


def parse(body: Any, max_events: int = 1000, max_event_bytes: int = 64 * 1024) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_events(raw, max_events=max_events, max_event_bytes=max_event_bytes, max_future_skew_s=3600, now=NOW)


def rejected(fn: Any, *args: Any, **kw: Any) -> Rejected:
    with pytest.raises(Rejected) as info:
        fn(*args, **kw)
    return info.value


# --- write keys ------------------------------------------------------------------


def test_write_keys_parse_product_equals_key_pairs():
    assert parse_write_keys(" checkout=k1 , search=ab== ,") == {"checkout": "k1", "search": "ab=="}


@pytest.mark.parametrize("raw", ["", "checkout", "=k1", "checkout=", "a=k1,a=k2", "my product=k"])
def test_bad_write_keys_are_refused_without_quoting_a_key(raw):
    with pytest.raises(ValueError) as info:
        parse_write_keys(raw)
    assert "k1" not in str(info.value) and "k2" not in str(info.value)


def test_authorize_returns_the_products_of_a_key():
    keys = {"checkout": "k1", "search": "k2", "billing": "k1"}
    assert authorize("Bearer k1", keys) == {"checkout", "billing"}
    assert authorize("bearer   k2 ", keys) == {"search"}


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic k1", "k1", "Bearer k3", "Bearer k1x"])
def test_missing_or_unknown_key_is_401(header):
    err = rejected(authorize, header, {"checkout": "k1"})
    assert err.status == 401
    assert "WWW-Authenticate" in err.headers


# --- body decoding -----------------------------------------------------------------


def test_identity_and_gzip_bodies_decode():
    body = json.dumps([event()]).encode()
    assert decode_body(body, None, 1 << 20) == body
    assert decode_body(body, "identity", 1 << 20) == body
    assert decode_body(gzip.compress(body), "gzip", 1 << 20) == body
    assert decode_body(gzip.compress(body[:10]) + gzip.compress(body[10:]), "GZIP", 1 << 20) == body


def test_gzip_inflating_past_the_cap_is_413():
    bomb = gzip.compress(b" " * (10 << 20))
    assert rejected(decode_body, bomb, "gzip", 8 << 20).status == 413
    assert decode_body(gzip.compress(b" " * 1000), "gzip", 1000) == b" " * 1000
    assert rejected(decode_body, gzip.compress(b" " * 1001), "gzip", 1000).status == 413


def test_broken_gzip_is_400_and_unknown_encoding_415():
    assert rejected(decode_body, b"not gzip", "gzip", 1 << 20).status == 400
    assert rejected(decode_body, gzip.compress(b"[1, 2, 3]" * 100)[:-20], "gzip", 1 << 20).status == 400
    assert rejected(decode_body, b"[]", "zstd", 1 << 20).status == 415


def test_brotli_as_sentry_sdk_sends_it_under_the_same_cap():
    import brotli

    assert decode_body(brotli.compress(b" " * 1000), "br", 1000) == b" " * 1000
    assert rejected(decode_body, brotli.compress(b" " * 1001), "br", 1000).status == 413
    bomb = brotli.compress(b" " * (64 << 20))  # a few hundred bytes
    assert len(bomb) < 1000 and rejected(decode_body, bomb, "br", 8 << 20).status == 413
    assert rejected(decode_body, brotli.compress(b"[1, 2, 3]" * 1000)[:-5], "br", 1 << 20).status == 400
    assert rejected(decode_body, b"not brotli at all", "br", 1 << 20).status == 400


# --- parsing and validation ------------------------------------------------------------


def test_single_event_array_and_wrapper_are_accepted():
    e1, e2 = event(), event(user_id="u2")
    for body, n in [(e1, 1), ([e1, e2], 2), ({"events": [e1, e2]}, 2)]:
        parsed = parse(body)
        assert parsed.errors == []
        assert parsed.total == len(parsed.events) == len(parsed.encoded) == n
    parsed = parse([e1, e2])
    assert [str(e.event_id) for e in parsed.events] == [e1["event_id"], e2["event_id"]]
    assert parsed.encoded[1][0] == b"checkout:u2"
    assert json.loads(parsed.encoded[1][1])["event_id"] == e2["event_id"]


def test_missing_event_id_gets_one():
    body = event()
    del body["event_id"]
    parsed = parse([body])
    assert parsed.errors == [] and parsed.events[0].event_id.version == 4


def test_invalid_events_are_listed_by_index_and_field_and_nothing_is_returned():
    batch = [event() for _ in range(6)]
    batch[3]["latency_ms"] = -1
    batch[4] = {"type": "teleport"}
    batch[5].pop("user_id")
    parsed = parse(batch)
    assert parsed.events == [] and parsed.encoded == [] and parsed.total == 6
    by_index = {(e.index, e.field) for e in parsed.errors}
    assert (3, "request.latency_ms") in by_index
    assert (4, "type") in by_index
    assert (5, "request.user_id") in by_index
    assert {e.index for e in parsed.errors} == {3, 4, 5}
    assert all(e.message for e in parsed.errors)


def test_events_the_worker_would_dead_letter_are_refused_here():
    big = event(properties={"pad": "x" * 2000})
    future = event(ts=(NOW + timedelta(hours=2)).isoformat())
    parsed = parse([event(), big, future], max_event_bytes=1024)
    assert [(e.index, e.field) for e in parsed.errors] == [(1, None), (2, "ts")]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"{nope", 400),
        (b'[{"latency_ms": NaN}]', 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b"42", 400),
        (b"[]", 400),
        (b'{"events": []}', 400),
        (b'{"events": {}}', 400),
        (b'{"events": [], "extra": 1}', 400),
    ],
)
def test_bad_bodies_are_refused_as_a_whole(body, status):
    assert rejected(parse, body).status == status


def test_too_many_events_is_413():
    err = rejected(parse, [event() for _ in range(11)], max_events=10)
    assert err.status == 413
    assert parse([event() for _ in range(10)], max_events=10).errors == []


def test_rejection_body_lists_details():
    parsed = parse([event(latency_ms="slow")])
    resp = rejection_response(Rejected(400, "invalid events", "invalid_events", details=parsed.errors))
    body = json.loads(resp.body)  # type: ignore[arg-type]
    assert body["error"] == "invalid events"
    assert body["details"][0]["index"] == 0
    assert body["details"][0]["field"] == "request.latency_ms"


# --- sending ---------------------------------------------------------------------------


def test_chunks_keep_order_and_bound_bytes():
    pairs = [(b"k", b"x" * 300) for _ in range(10)] + [(b"k", b"y" * 2000)]
    out = list(chunks(pairs, max_bytes=1000))
    assert [p for c in out for p in c] == pairs
    assert all(sum(len(v) + 1 for _, v in c) <= 1000 for c in out[:-1])
    assert out[-1] == [(b"k", b"y" * 2000)]  # one oversized event travels alone
    assert split_pack(b"\n".join(v for _, v in out[0])) == [v for _, v in out[0]]
