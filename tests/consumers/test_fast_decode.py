"""The worker's fast decode path accepts and rejects exactly what the pydantic models do.

:func:`pipeline.events.decode_fast` (msgspec, with pydantic deciding whatever it
cannot vouch for) must give, for every input, what :func:`decode_event` gives:
the same :class:`DecodeError` for a rejection, and for an acceptance an event
whose canonical JSON (:func:`encode_event`) is byte for byte the model's, at
the same instant. Checked on the hostile corpus (every file, alone and line by
line), on hand-picked edge cases of every field, and - in
``tests/pipeline/test_decode_properties.py`` - on hypothesis-made events and bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from consumers.records import Message, unpack
from pipeline.events import (
    EVENT_ADAPTER,
    DecodeError,
    decode_event,
    decode_fast,
    decode_many,
    encode_event,
    properties_json,
    utc_datetime,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
MANIFEST: dict[str, Any] = yaml.safe_load((CORPUS / "manifest.yaml").read_text())
MAX_BYTES = MANIFEST["settings"]["max_event_bytes"]


def assert_same(raw: bytes | None, max_bytes: int = 64 * 1024, got: object = None) -> object:
    """decode_fast(raw) (or ``got``) decides exactly what decode_event(raw) decides; returns the decision."""
    want = decode_event(raw, max_bytes)
    if got is None:
        got = decode_fast(raw, max_bytes)
    if isinstance(want, DecodeError):
        assert got == want, (raw, got, want)
        return want
    assert not isinstance(got, DecodeError), (raw, got, want)
    ev, ts, us = got
    assert ev.type == want.type
    assert ts == want.ts.timestamp() and utc_datetime(us) == want.ts, (raw, ts, us, want.ts)
    assert (ev.event_id is msgspec.UNSET) == ("event_id" not in want.model_fields_set)
    fields = msgspec.structs.asdict(ev)
    fields.update(type=ev.type, ts=utc_datetime(us), event_id=ev.event_id or want.event_id)  # UNSET is falsy
    assert encode_event(EVENT_ADAPTER.validate_python(fields)) == encode_event(want), raw
    for name in ev.__struct_fields__:  # floats to the bit (-0.0 stays -0.0), properties as stored
        if name not in ("ts", "event_id", "properties"):
            mine, theirs = getattr(ev, name), getattr(want, name)
            assert type(mine) is type(theirs) and repr(mine) == repr(theirs), (name, mine, theirs)
    assert json.loads(properties_json(ev.properties)) == json.loads(encode_event(want))["properties"]
    return want


# --- the hostile corpus --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MANIFEST["files"]))
def test_corpus_file_decodes_the_same(name: str):
    raw = (CORPUS / name).read_bytes()
    assert_same(raw, MAX_BYTES)
    for line in unpack(Message(0, 0, None, raw, [("pulse.format", b"ndjson")])):
        assert_same(line, MAX_BYTES)


# --- edge cases, field by field --------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "event_id": "6f1d3a52-58a4-4c8e-9b1e-2d1f3c7a9e40",
    "type": "request",
    "product": "checkout",
    "version": "2.3.0",
    "ts": "2026-11-25T10:00:00.123456Z",
    "user_id": "u-1",
    "operation": "POST /pay",
    "latency_ms": 84.5,
}


def body(**changes: Any) -> bytes:
    b = {**BASE, **changes}
    return json.dumps({k: v for k, v in b.items() if v is not ...}, allow_nan=True).encode()


TIMESTAMPS = [
    "2026-11-25T10:00:00Z", "2026-11-25T10:00:00+00:00", "2026-11-25T10:00:00-00:00", "2026-11-25T10:00:00+13:59",
    "2026-11-25T10:00:00+23:59", "2026-11-25T10:00:00-23:59", "2026-11-25T10:00:00+24:00", "2026-11-25T10:00:00+12:60",
    "2026-11-25T10:00:00.1Z", "2026-11-25T10:00:00.12Z", "2026-11-25T10:00:00.123Z", "2026-11-25T10:00:00.1234Z",
    "2026-11-25T10:00:00.12345Z", "2026-11-25T10:00:00.123456Z", "2026-11-25T10:00:00.1234567Z",
    "2026-11-25T10:00:00.999999Z", "2026-11-25T10:00:00.Z", "2026-11-25t10:00:00z", "2026-11-25 10:00:00Z",
    "2026-11-25T10:00Z", "2026-11-25T10:00:60Z", "2026-11-25T23:59:59Z", "2026-11-25T24:00:00Z",
    "2026-11-25T10:60:00Z", "2024-02-29T10:00:00Z", "2026-02-29T10:00:00Z", "2026-02-30T10:00:00Z",
    "2026-13-01T10:00:00Z", "2026-00-01T10:00:00Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:59:59-01:00", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-01:00", "9999-12-31T22:59:59-01:00", "1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z",
    "2026-11-25T10:00:00", "2026-11-25", "2026-11-25T10:00:00+0100", "2026-11-25T10:00:00+01",
    "2026-11-25T10:00:00 Z", " 2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z ", "２０２６-11-25T10:00:00Z",
    "2026-11-25T10:00:00.１Z", "2026-W48-3T10:00:00Z", "20261125T100000Z", "",
    1764064800, 1764064800.5, 1764064800123, -1, 0, 2**63, True, None, [],
]  # fmt: skip
EVENT_IDS = [
    "6f1d3a52-58a4-4c8e-9b1e-2d1f3c7a9e40", "6F1D3A52-58A4-4C8E-9B1E-2D1F3C7A9E40", "6f1d3a5258a44c8e9b1e2d1f3c7a9e40",
    "urn:uuid:6f1d3a52-58a4-4c8e-9b1e-2d1f3c7a9e40", "{6f1d3a52-58a4-4c8e-9b1e-2d1f3c7a9e40}",
    "00000000-0000-0000-0000-000000000000", "6f1d3a52-58a4-4c8e-9b1e-2d1f3c7a9e4",
    "6f1d3a52-58a4-4c8e-9b1e-2d1f3c7a9e4g", " 6f1d3a52-58a4-4c8e-9b1e-2d1f3c7a9e40",
    "6f1d3a52_58a4_4c8e_9b1e_2d1f3c7a9e40", "6f1d-3a52-58a4-4c8e-9b1e2d1f3c7a9e40",
    "", 5, None, ...,
]  # fmt: skip


@pytest.mark.parametrize("ts", TIMESTAMPS)
def test_timestamps(ts: object):
    assert_same(body(ts=ts))


@pytest.mark.parametrize("event_id", EVENT_IDS)
def test_event_ids(event_id: object):
    assert_same(body(event_id=event_id))


@pytest.mark.parametrize(
    "changes",
    [
        {"latency_ms": 0}, {"latency_ms": -0.0}, {"latency_ms": 86_400_000}, {"latency_ms": 86_400_000.000001},
        {"latency_ms": 1e400}, {"latency_ms": "5"}, {"latency_ms": True}, {"latency_ms": None}, {"latency_ms": 5e-324},
        {"status_code": 599}, {"status_code": 600}, {"status_code": 200.0}, {"status_code": "200"},
        {"status_code": -1}, {"status_code": 10**30}, {"status_code": False}, {"error": "x" * 64}, {"error": "x" * 65},
        {"product": ""}, {"product": "p" * 64}, {"product": "p" * 65}, {"product": "\U0001f600" * 64},
        {"product": "\U0001f600" * 65}, {"product": 5}, {"product": None}, {"user_id": "u" * 128},
        {"user_id": "u" * 129}, {"session_id": "\u00e9" * 64}, {"session_id": "\u00e9" * 65}, {"platform": "\x00\x1b"},
        {"environment": ...}, {"properties": {}}, {"properties": None}, {"properties": []}, {"properties": "x"},
        {"properties": {"a": [1, {"b": None}], "c": 1.5, "d": "\u2028"}}, {"properties": {"big": 10**30}},
        {"properties": {"huge": 10**400}}, {"properties": {"x": float("nan")}}, {"properties": {"x": float("inf")}},
        {"properties": {"x": 1e308}}, {"extra": 1}, {"type": "Request"}, {"type": ...}, {"type": 5}, {"type": None},
        {"type": "release"}, {"type": "session_started", "operation": ..., "latency_ms": ...},
    ],
)  # fmt: skip
def test_request_fields(changes: dict[str, Any]):
    assert_same(body(**changes))


OTHER_TYPES: list[dict[str, Any]] = [
    {"type": "session_ended", "status": "ok", "errors": 0, "duration_ms": 0},
    {"type": "session_ended", "status": "crashed", "errors": 2**32 - 1, "duration_ms": 30 * 86_400_000},
    {"type": "session_ended", "status": "crashed", "errors": 2**32, "duration_ms": 1},
    {"type": "session_ended", "status": "Crashed"},
    {"type": "session_ended", "status": "ok", "errors": 1.0},
    {"type": "session_ended", "status": "ok", "duration_ms": 30 * 86_400_000 + 1},
    {"type": "feature_used", "feature": "search", "success": False, "duration_ms": 12},
    {"type": "feature_used", "feature": "search", "success": 1},
    {"type": "feature_used", "feature": "search", "success": "true"},
    {"type": "feature_used", "feature": ""},
    {"type": "error", "kind": "TypeError", "handled": True},
    {"type": "error", "kind": "TypeError", "handled": "no"},
    {"type": "conversion", "goal": "signup", "value": 9.99, "currency": "EUR"},
    {"type": "conversion", "goal": "signup", "currency": "USD\n"},
    {"type": "conversion", "goal": "signup", "currency": "usd"},
    {"type": "conversion", "goal": "signup", "currency": "\u00dcSD"},
    {"type": "conversion", "goal": "signup", "currency": "USDX"},
    {"type": "conversion", "goal": "signup", "value": 1e12},
    {"type": "conversion", "goal": "signup", "value": 1.0000001e12},
    {"type": "feedback", "kind": "nps", "score": 0},
    {"type": "feedback", "kind": "nps", "score": 10},
    {"type": "feedback", "kind": "nps", "score": 11},
    {"type": "feedback", "kind": "csat", "score": 0},
    {"type": "feedback", "kind": "csat", "score": 5},
    {"type": "feedback", "kind": "csat", "score": 6},
    {"type": "feedback", "kind": "csat", "score": 3.0},
    {"type": "support_ticket", "ticket_id": "T1", "action": "opened"},
    {"type": "support_ticket", "ticket_id": "T1", "action": "resolved", "severity": "critical"},
    {"type": "support_ticket", "ticket_id": "T1", "action": "closed"},
    {"type": "session_started"},
]


@pytest.mark.parametrize("fields", OTHER_TYPES)
def test_every_event_type(fields: dict[str, Any]):
    raw = {k: v for k, v in BASE.items() if k not in ("type", "operation", "latency_ms")}
    assert_same(json.dumps({**raw, **fields}).encode())


@pytest.mark.parametrize("depth", [1, 63, 64, 65, 100, 198, 199, 200, 300])
def test_nested_properties(depth: int):
    assert_same(body(properties={"a": json.loads("[" * depth + "]" * depth)}), 10**6)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"request","type":"request","product":"p","version":"1","ts":"2026-11-25T10:00:00Z","user_id":"u",'
        b'"operation":"o","latency_ms":1}',
        b'{"type":"session_started","type":"request","product":"p","version":"1","ts":"2026-11-25T10:00:00Z",'
        b'"user_id":"u","operation":"o","latency_ms":1}',
        b'{"type":"request","product":"p","product":"q","version":"1","ts":"2026-11-25T10:00:00Z","user_id":"u",'
        b'"operation":"o","latency_ms":1,"latency_ms":2}',
        b"\xef\xbb\xbf" + body(),
        body() + b" ",
        b" \t\r\n" + body() + b"\r",
        body() + b"x",
        body() + body(),
        body().replace(b'"u-1"', b'"u-\\ud800"'),
        body().replace(b'"u-1"', b'"u-\\ud83d\\ude00"'),
        body().replace(b'"u-1"', b'"u-\xff"'),
        body().replace(b'"u-1"', b'"u-\x01"'),
        body().replace(b"84.5", b"NaN"),
        body().replace(b"84.5", b"Infinity"),
        body().replace(b"84.5", b"8.45e1"),
        body().replace(b"84.5", b"84.50000000000000000001"),
        body().replace(b"84.5", b"0084.5"),
        b"",
        b"null",
        b"[]",
        b"{}",
        None,
    ],
)
def test_raw_json_quirks(raw: bytes | None):
    assert_same(raw)


def test_size_limit_is_the_same():
    raw = body(properties={"pad": "x" * 1000})
    assert_same(raw, len(raw))
    assert_same(raw, len(raw) - 1)


def test_the_fast_path_takes_canonical_events_itself():
    """Not a correctness property: the canonical form the SDK sends must not fall back to pydantic."""
    raw = encode_event(EVENT_ADAPTER.validate_json(body()))
    decoded = decode_fast(raw)
    assert not isinstance(decoded, DecodeError)
    assert isinstance(decoded[0].ts, str) and decoded[0].ts == json.loads(raw)["ts"]  # not re-formatted by pydantic
    assert math.isclose(decoded[1], EVENT_ADAPTER.validate_json(raw).ts.timestamp())


def test_a_batch_decides_like_one_by_one():
    """decode_many (timestamps parsed for the whole batch at once) on every input above, mixed in one batch."""
    raws: list[bytes | None] = [body(ts=ts) for ts in TIMESTAMPS] + [body(event_id=i) for i in EVENT_IDS]
    raws += [json.dumps({**BASE, **fields}).encode() for fields in OTHER_TYPES]
    for name in sorted(MANIFEST["files"]):
        raws += unpack(Message(0, 0, None, (CORPUS / name).read_bytes(), [("pulse.format", b"ndjson")]))
    raws += [body()] * 3 + [None, b""]
    for order in (raws, raws[::-1]):
        for raw, got in zip(order, decode_many(order, MAX_BYTES), strict=True):
            assert_same(raw, MAX_BYTES, got)
    assert decode_many([]) == []


@pytest.mark.parametrize("ts", ["2026-02-30T10:00:00Z", "0001-01-01T00:00:00+01:00", "2026-11-25T10:00:00+12:60"])
def test_one_impossible_timestamp_does_not_spoil_its_batch(ts: str):
    raws = [body(), body(ts=ts), body(ts="2026-11-25T10:00:00.5-05:00")]
    for raw, got in zip(raws, decode_many(raws), strict=True):
        assert_same(raw, got=got)
