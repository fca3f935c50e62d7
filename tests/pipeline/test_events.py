"""Unit tests of the event wire contract: models, decode_event, pack helpers."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pipeline.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    MAX_PACK_EVENTS,
    RELEASE_ADAPTER,
    DecodeError,
    Release,
    decode_event,
    describe_errors,
    encode_event,
    encode_pack,
    is_pack,
    new_event_id,
    partition_key,
    split_pack,
)

ENVELOPE = {
    "event_id": "6f1c2f8e-3b7a-4c55-9d1e-2a4b6c8d0e1f",
    "product": "shop",
    "version": "2.4.1",
    "ts": "2024-05-01T12:00:00.250000Z",
    "user_id": "u-42",
}

# One valid event per type, with non-default values wherever a field allows it.
VALID: dict[str, dict] = {
    "session_started": {"session_id": "s-1", "platform": "ios", "properties": {"locale": "de", "ab": [1, 2]}},
    "session_ended": {"status": "abnormal", "errors": 3, "duration_ms": 1234.5, "environment": "staging"},
    "feature_used": {"feature": "search", "success": False, "duration_ms": 87.25},
    "request": {"operation": "GET /cart", "latency_ms": 12.5, "status_code": 503, "error": "upstream"},
    "error": {"kind": "TypeError", "handled": True},
    "conversion": {"goal": "checkout", "value": 19.99, "currency": "EUR"},
    "feedback": {"kind": "nps", "score": 9},
    "support_ticket": {"ticket_id": "T-1001", "action": "resolved", "severity": "critical"},
}


def body(type_: str, **changes: object) -> dict:
    """A valid JSON object of ``type_`` with ``changes`` applied (a value of ``...`` removes the key)."""
    obj = {"type": type_, **ENVELOPE, **VALID[type_]}
    for key, value in changes.items():
        if value is ...:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_every_event_type_has_a_valid_example():
    assert set(VALID) == set(EVENT_TYPES)


# --- valid events round-trip ------------------------------------------------------


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_valid_event_round_trips(type_):
    event = decode_event(raw(body(type_)))
    assert not isinstance(event, DecodeError), event
    assert event.type == type_
    encoded = encode_event(event)
    again = decode_event(encoded)
    assert again == event
    assert encode_event(again) == encoded
    # every field survives, including non-default values ("...250000Z" is re-encoded as "...250Z")
    fields = json.loads(encoded)
    assert {k: v for k, v in fields.items() if k != "ts"} == {
        **{k: v for k, v in fields.items() if k not in body(type_)},
        **{k: v for k, v in body(type_).items() if k != "ts"},
    }
    assert event.ts == datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def test_defaults_are_filled_in():
    event = decode_event(raw({"type": "request", **ENVELOPE, "operation": "x", "latency_ms": 1}))
    assert not isinstance(event, DecodeError)
    assert (event.status_code, event.error, event.environment, event.session_id, event.properties) == (
        0,
        "",
        "production",
        "",
        {},
    )


def test_missing_event_id_gets_a_fresh_v4_id():
    a = decode_event(raw(body("error", event_id=...)))
    b = decode_event(raw(body("error", event_id=...)))
    assert not isinstance(a, DecodeError) and not isinstance(b, DecodeError)
    assert a.event_id.version == 4
    assert a.event_id != b.event_id


def test_timestamp_in_other_timezone_is_converted_to_utc():
    event = decode_event(raw(body("session_started", ts="2024-05-01T23:30:00-05:00")))
    assert not isinstance(event, DecodeError)
    assert event.ts == datetime(2024, 5, 2, 4, 30, tzinfo=UTC)
    assert event.ts.utcoffset() == timedelta(0)
    assert json.loads(encode_event(event))["ts"] == "2024-05-02T04:30:00Z"


def test_unix_timestamp_is_accepted_as_utc():
    event = decode_event(raw(body("session_started", ts=1714564800)))
    assert not isinstance(event, DecodeError)
    assert event.ts == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_request_failed_property():
    def failed(**changes):
        event = decode_event(raw(body("request", **changes)))
        assert not isinstance(event, DecodeError)
        return event.failed

    assert failed(status_code=500, error="") is True
    assert failed(status_code=599, error="") is True
    assert failed(status_code=499, error="") is False
    assert failed(status_code=200, error="timeout") is True
    assert failed(status_code=0, error="") is False


@pytest.mark.parametrize("score", [1, 5])
def test_csat_bounds_are_valid(score):
    assert not isinstance(decode_event(raw(body("feedback", kind="csat", score=score))), DecodeError)


@pytest.mark.parametrize("score", [0, 10])
def test_nps_bounds_are_valid(score):
    assert not isinstance(decode_event(raw(body("feedback", kind="nps", score=score))), DecodeError)


# --- invalid events ----------------------------------------------------------------

# (type, changes, text the detail must contain)
INVALID_BY_TYPE = [
    ("session_started", {"session_id": "s" * 65}, "session_started.session_id"),
    ("session_started", {"user_id": 123}, "session_started.user_id"),
    ("session_started", {"properties": [1, 2]}, "session_started.properties"),
    ("session_ended", {"status": ...}, "session_ended.status"),
    ("session_ended", {"status": "killed"}, "session_ended.status"),
    ("session_ended", {"errors": -1}, "session_ended.errors"),
    ("session_ended", {"errors": "many"}, "session_ended.errors"),
    ("session_ended", {"duration_ms": -0.5}, "session_ended.duration_ms"),
    ("feature_used", {"feature": ...}, "feature_used.feature"),
    ("feature_used", {"feature": ""}, "feature_used.feature"),
    ("feature_used", {"success": "maybe"}, "feature_used.success"),
    ("feature_used", {"duration_ms": -1}, "feature_used.duration_ms"),
    ("request", {"latency_ms": ...}, "request.latency_ms"),
    ("request", {"latency_ms": -1}, "request.latency_ms"),
    ("request", {"latency_ms": "fast"}, "request.latency_ms"),
    ("request", {"latency_ms": 86_400_001}, "request.latency_ms"),
    ("request", {"status_code": 600}, "request.status_code"),
    ("request", {"status_code": -1}, "request.status_code"),
    ("request", {"operation": ...}, "request.operation"),
    ("request", {"error": "e" * 65}, "request.error"),
    ("error", {"kind": ...}, "error.kind"),
    ("error", {"kind": "K" * 129}, "error.kind"),
    ("error", {"handled": "sometimes"}, "error.handled"),
    ("conversion", {"goal": ...}, "conversion.goal"),
    ("conversion", {"currency": "usd"}, "conversion.currency"),
    ("conversion", {"currency": "EURO"}, "conversion.currency"),
    ("conversion", {"value": -0.01}, "conversion.value"),
    ("conversion", {"value": "free"}, "conversion.value"),
    ("feedback", {"kind": "csat", "score": 7}, "score"),
    ("feedback", {"kind": "csat", "score": 0}, "score"),
    ("feedback", {"kind": "nps", "score": 11}, "feedback.score"),
    ("feedback", {"kind": "nps", "score": -1}, "feedback.score"),
    ("feedback", {"score": 4.5}, "feedback.score"),
    ("feedback", {"score": ...}, "feedback.score"),
    ("feedback", {"kind": "ces"}, "feedback.kind"),
    ("support_ticket", {"ticket_id": ...}, "support_ticket.ticket_id"),
    ("support_ticket", {"action": "closed"}, "support_ticket.action"),
    ("support_ticket", {"severity": "urgent"}, "support_ticket.severity"),
]


@pytest.mark.parametrize(("type_", "changes", "names"), INVALID_BY_TYPE)
def test_invalid_field_is_reported(type_, changes, names):
    err = decode_event(raw(body(type_, **changes)))
    assert isinstance(err, DecodeError)
    assert err.reason == "invalid"
    assert names in err.detail


# Envelope problems, checked for every event type: (changes, field the detail must name)
INVALID_ENVELOPE = [
    ({"product": ...}, "product"),
    ({"product": ""}, "product"),
    ({"product": "p" * 65}, "product"),
    ({"version": ...}, "version"),
    ({"user_id": ...}, "user_id"),
    ({"user_id": ""}, "user_id"),
    ({"ts": ...}, "ts"),
    ({"ts": "2024-05-01T12:00:00"}, "ts"),
    ({"ts": "yesterday"}, "ts"),
    ({"event_id": "not-a-uuid"}, "event_id"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize("type_", EVENT_TYPES)
@pytest.mark.parametrize(("changes", "field"), INVALID_ENVELOPE, ids=[f for _, f in INVALID_ENVELOPE])
def test_invalid_envelope_is_reported(type_, changes, field):
    err = decode_event(raw(body(type_, **changes)))
    assert isinstance(err, DecodeError)
    assert err.reason == "invalid"
    assert f"{type_}.{field}" in err.detail


def test_detail_names_every_bad_field():
    err = decode_event(raw(body("request", latency_ms=-1, status_code=1000)))
    assert isinstance(err, DecodeError)
    assert "request.latency_ms" in err.detail
    assert "request.status_code" in err.detail


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"conversion","product":"a","version":"1","ts":"2024-05-01T12:00:00Z","user_id":"u",'
        b'"goal":"g","value":Infinity}',
        b'{"type":"session_ended","product":"a","version":"1","ts":"2024-05-01T12:00:00Z","user_id":"u",'
        b'"status":"ok","duration_ms":Infinity}',
        b'{"type":"feature_used","product":"a","version":"1","ts":"2024-05-01T12:00:00Z","user_id":"u",'
        b'"feature":"f","duration_ms":Infinity}',
    ],
    ids=["conversion.value", "session_ended.duration_ms", "feature_used.duration_ms"],
)
def test_non_finite_numbers_are_invalid(payload):
    # An accepted Infinity poisons the minute sums and is re-encoded as null, so the
    # event no longer round-trips (encode_event -> decode_event fails on its raw row).
    err = decode_event(payload)
    assert isinstance(err, DecodeError), f"accepted {err!r}"
    assert err.reason == "invalid"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":"request","product":"a","version":"1","ts":"2024-05-01T12:00:00Z","user_id":"u",'
        b'"operation":"o","latency_ms":NaN}',
        b'{"type":"session_ended","product":"a","version":"1","ts":"2024-05-01T12:00:00Z","user_id":"u",'
        b'"status":"ok","duration_ms":NaN}',
    ],
)
def test_nan_is_invalid(payload):
    err = decode_event(payload)
    assert isinstance(err, DecodeError)
    assert err.reason == "invalid"


# --- undecodable messages -----------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"", b"\xff\xfe\x00", b'{"type": "request",', b"[1, 2]", b'"request"', b"42", b"null", b"[]"],
)
def test_not_a_json_object_is_bad_json(payload):
    err = decode_event(payload)
    assert isinstance(err, DecodeError)
    assert err.reason == "bad_json"


def test_none_is_bad_json():
    assert decode_event(None) == DecodeError("bad_json", "empty message")


@pytest.mark.parametrize("type_", ["page_view", "release", "", "REQUEST"])
def test_unknown_type(type_):
    err = decode_event(raw({**ENVELOPE, "type": type_}))
    assert isinstance(err, DecodeError)
    assert err.reason == "unknown_type"
    assert repr(type_) in err.detail


def test_non_string_type_is_unknown_type():
    err = decode_event(raw({**ENVELOPE, "type": 5}))
    assert isinstance(err, DecodeError)
    assert err.reason == "unknown_type"


def test_missing_type_is_unknown_type():
    err = decode_event(raw(ENVELOPE))
    assert isinstance(err, DecodeError)
    assert err.reason == "unknown_type"
    assert "type" in err.detail


def test_oversized_message():
    err = decode_event(b" " * (64 * 1024 + 1))
    assert isinstance(err, DecodeError)
    assert err.reason == "oversized"
    assert str(64 * 1024 + 1) in err.detail


def test_size_limit_is_inclusive():
    payload = raw(body("error"))
    assert not isinstance(decode_event(payload, max_bytes=len(payload)), DecodeError)
    err = decode_event(payload, max_bytes=len(payload) - 1)
    assert isinstance(err, DecodeError)
    assert err.reason == "oversized"


def test_oversized_wins_over_bad_json():
    err = decode_event(b"{" * 100, max_bytes=99)
    assert isinstance(err, DecodeError)
    assert err.reason == "oversized"


# --- Release -----------------------------------------------------------------------

RELEASE = {
    "type": "release",
    "product": "shop",
    "version": "2.5.0",
    "released_at": "2024-05-01T09:00:00Z",
    "channel": "beta",
    "rollout_pct": 12.5,
    "commit": "abc123",
}


def test_release_round_trips():
    release = RELEASE_ADAPTER.validate_json(raw(RELEASE))
    assert isinstance(release, Release)
    encoded = encode_event(release)
    assert RELEASE_ADAPTER.validate_json(encoded) == release
    assert json.loads(encoded) == RELEASE


def test_release_defaults_and_utc():
    release = RELEASE_ADAPTER.validate_json(
        raw({"product": "shop", "version": "1.0", "released_at": "2024-05-01T14:30:00+05:30"})
    )
    assert (release.type, release.channel, release.rollout_pct, release.commit) == ("release", "stable", 100.0, "")
    assert release.released_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert release.released_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": ...}, "version"),
        ({"product": ""}, "product"),
        ({"released_at": "2024-05-01T09:00:00"}, "released_at"),
        ({"released_at": ...}, "released_at"),
        ({"rollout_pct": 101}, "rollout_pct"),
        ({"rollout_pct": -1}, "rollout_pct"),
        ({"rollout_pct": "all"}, "rollout_pct"),
        ({"channel": "c" * 65}, "channel"),
        ({"type": "deploy"}, "type"),
        ({"notes": "hi"}, "notes"),
    ],
)
def test_invalid_release(changes, field):
    obj = dict(RELEASE)
    for key, value in changes.items():
        if value is ...:
            obj.pop(key)
        else:
            obj[key] = value
    with pytest.raises(ValidationError) as info:
        RELEASE_ADAPTER.validate_json(raw(obj))
    assert field in describe_errors(info.value)


def test_release_is_not_an_event():
    err = decode_event(raw(RELEASE))
    assert isinstance(err, DecodeError)
    assert err.reason == "unknown_type"


# --- ids, keys -----------------------------------------------------------------------


def test_new_event_id_is_unique_version_4():
    ids = [new_event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, uuid.UUID) for i in ids)
    assert {i.version for i in ids} == {4}
    assert {i.variant for i in ids} == {uuid.RFC_4122}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_children_get_different_ids():
    ids = set()
    for _ in range(2):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_fd)
            os.write(write_fd, new_event_id().bytes)
            os._exit(0)
        os.close(write_fd)
        child_id = os.read(read_fd, 16)
        os.close(read_fd)
        os.waitpid(pid, 0)
        ids.add(child_id)
    ids.add(new_event_id().bytes)
    assert len(ids) == 3


def test_partition_key_is_product_and_user():
    event = EVENT_ADAPTER.validate_python(body("feature_used"))
    assert partition_key(event) == b"shop:u-42"


# --- packs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("pulse.format", b"ndjson")], True),
        ([("trace", b"1"), ("pulse.format", b"ndjson")], True),
        ((("pulse.format", b"ndjson"),), True),
        ({"pulse.format": b"ndjson"}, True),
        ({"trace": b"1", "pulse.format": b"ndjson"}, True),
        ([("pulse.format", b"json")], False),
        ([("trace", b"ndjson")], False),
        ({"pulse.format": b"csv"}, False),
        ([], False),
        ({}, False),
        (None, False),
    ],
)
def test_is_pack(headers, expected):
    assert is_pack(headers) is expected


def test_split_pack_skips_blank_lines_and_keeps_bytes():
    value = b'{"a": 1}\n\n  \n\r\n {"b": 2} \n{"c":3}\n'
    assert split_pack(value) == [b'{"a": 1}', b' {"b": 2} ', b'{"c":3}']


def test_split_pack_of_empty_value():
    assert split_pack(b"") == []
    assert split_pack(b"\n\n") == []


def test_pack_round_trip():
    events = [EVENT_ADAPTER.validate_python(body(t)) for t in EVENT_TYPES]
    encoded = [encode_event(e) for e in events]
    packed = encode_pack(encoded)
    assert packed.count(b"\n") == len(events) - 1
    lines = split_pack(packed)
    assert lines == encoded
    assert [decode_event(line) for line in lines] == events


def test_encode_pack_limits_size():
    with pytest.raises(ValueError):
        encode_pack([b"{}"] * MAX_PACK_EVENTS)
    assert split_pack(encode_pack([b"{}"] * 3)) == [b"{}"] * 3
