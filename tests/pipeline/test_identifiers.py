"""Identifiers are restricted at ingest (issue 17, item 3): product, version, environment, feature, goal, operation.

One character set (:data:`pipeline.schema.IDENTIFIER_PATTERN`, operations a little wider) is enforced by
every decoder: the pydantic models (the collector, the SDK, the release agent), the worker's msgspec structs
(:func:`pipeline.events.decode_fast`) and so the worker's batch step, which dead-letters the event as
``invalid`` with a detail naming the field. Real release and route names pass; quotes, backslashes, control
and bidi characters, whitespace and sentinels such as ``$__all`` do not.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.batch_views import aggregate_batch, json_rows

from consumers.dedup import SeenIds, Watermarks
from consumers.records import Message
from pipeline import fastdecode, schema
from pipeline.collector.body import parse_events
from pipeline.events import RELEASE_ADAPTER, DecodeError, decode_event, decode_fast, decode_many

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# Values a real product sends: semantic versions with pre-release and build, calendar versions, tags, paths.
GOOD = {
    "product": ["checkout", "web-shop", "app.ios", "acme/checkout@eu", "p1"],
    "version": ["1.2.3-rc.1+build.5", "2024.11.02", "v3", "release/2024-11", "git:9f1c2ab", "1.0.0_hotfix"],
    "environment": ["production", "staging-eu", "dev:alice"],
    "feature": ["add_to_cart", "checkout.pay", "search/autocomplete"],
    "goal": ["purchase", "plan:pro", "signup"],
    "operation": ["GET /items/{id}", "POST /posts/{id}/like", "db.query", "GET /static/*"],
}
# What an attacker or a broken producer sends (issue 17 findings 2, 5 and 6).
HOSTILE = [
    "\\') AND 0 UNION ALL SELECT currentUser(), version() --",
    "'; DROP TABLE x; --",
    "1' OR '1'='1",
    '1"2',
    "a\\b",
    "$__all",
    "__overflow__",
    "_x",
    "-1",
    "=HYPERLINK(x)",
    "pay\u202elapyap",  # RIGHT-TO-LEFT OVERRIDE: displays as "paypaypal"
    "a\u200bb",  # zero-width space
    "1.0\n2026-11-25 12:00:00 ERROR forged line",
    "1.0\n",  # a trailing newline (Python's `$` would let it through)
    "a\x00b",
    "\x1b[2J",
    "a\tb",
    "caf\u00e9",
    "",
    " v1",
]
TYPE_OF = {"feature": "feature_used", "goal": "conversion", "operation": "request"}


def event(field: str = "", value: Any = None, **over: Any) -> dict[str, Any]:
    event_type = TYPE_OF.get(field, "request")
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "type": event_type, "product": "checkout", "version": "1.0.0",
        "ts": (NOW - timedelta(minutes=1)).isoformat(), "user_id": "u1",
    }  # fmt: skip
    body |= {
        "request": {"operation": "GET /x", "latency_ms": 12.5},
        "feature_used": {"feature": "pay"},
        "conversion": {"goal": "purchase"},
    }[event_type]
    if field:
        body[field] = value
    return body | over


def cases(values: dict[str, list[str]] | list[str]) -> list[tuple[str, str]]:
    if isinstance(values, dict):
        return [(f, v) for f, vs in values.items() for v in vs]
    return [(f, v) for f in GOOD for v in values if not (f == "operation" and v == "a b")]


def hostile_cases() -> list[Any]:
    out = []
    for field, value in cases(HOSTILE):
        if field == "environment" and value == "":
            continue  # covered below: an empty environment is refused too, but by its length
        out.append(pytest.param(field, value, id=f"{field}={value!r}"))
    return out


@pytest.mark.parametrize(("field", "value"), cases(GOOD), ids=[f"{f}={v}" for f, v in cases(GOOD)])
def test_real_identifiers_are_accepted_by_every_decoder(field: str, value: str) -> None:
    raw = json.dumps(event(field, value)).encode()
    model = decode_event(raw)
    assert not isinstance(model, DecodeError), model
    assert getattr(model, field) == value
    fast = decode_fast(raw)
    assert not isinstance(fast, DecodeError), fast
    assert getattr(fast[0], field) == value


@pytest.mark.parametrize(("field", "value"), hostile_cases())
def test_hostile_identifiers_are_invalid_naming_the_field(field: str, value: str) -> None:
    raw = json.dumps(event(field, value)).encode()
    for decoded in (decode_event(raw), decode_fast(raw)):
        assert isinstance(decoded, DecodeError), decoded
        assert decoded.reason == "invalid"
        assert f".{field}:" in decoded.detail, decoded.detail


def test_an_empty_environment_is_invalid() -> None:
    decoded = decode_fast(json.dumps(event("environment", "")).encode())
    assert isinstance(decoded, DecodeError) and "environment" in decoded.detail


@pytest.mark.parametrize("field", ["product", "version", "environment"])
def test_identifiers_are_at_most_64_characters(field: str) -> None:
    assert not isinstance(decode_fast(json.dumps(event(field, "a" * 64)).encode()), DecodeError)
    decoded = decode_fast(json.dumps(event(field, "a" * 65)).encode())
    assert isinstance(decoded, DecodeError) and field in decoded.detail


@pytest.mark.parametrize("field", ["feature", "goal", "operation"])
def test_names_are_at_most_128_characters(field: str) -> None:
    assert not isinstance(decode_fast(json.dumps(event(field, "a" * 128)).encode()), DecodeError)
    assert isinstance(decode_fast(json.dumps(event(field, "a" * 129)).encode()), DecodeError)


def test_free_text_stays_free_in_properties_and_labels() -> None:
    text = "\\') AND 0 --\n\u202e\x00 $__all"
    raw = json.dumps(event(properties={"note": text}, error=text[:60], platform="caf\u00e9 \u202e")).encode()
    decoded = decode_fast(raw)
    assert not isinstance(decoded, DecodeError), decoded
    assert decoded[0].properties == {"note": text}


@pytest.mark.parametrize("value", ["1.0\nERROR forged", "\\') AND 0 --", "$__all", "pay\u202elapyap"])
def test_the_collector_answers_400_naming_the_field(value: str) -> None:
    body = json.dumps([event(), event("version", value)]).encode()
    parsed = parse_events(body, max_events=10, max_event_bytes=64 * 1024, max_future_skew_s=3600, now=NOW)
    assert parsed.events == []
    (error,) = parsed.errors
    assert (error.index, error.field) == (1, "request.version")
    assert "characters an identifier may not" in error.message  # in our words, not pydantic's


@pytest.mark.parametrize("field", ["product", "version"])
def test_a_release_with_a_hostile_identifier_is_refused(field: str) -> None:
    good = {"product": "checkout", "version": "1.2.3-rc.1+build.5", "released_at": NOW.isoformat()}
    RELEASE_ADAPTER.validate_json(json.dumps(good))
    bad = good | {field: "\\') AND 0 UNION ALL SELECT currentUser(), version() --"}
    with pytest.raises(ValueError, match=field):
        RELEASE_ADAPTER.validate_json(json.dumps(bad))


def test_the_worker_dead_letters_a_hostile_identifier_as_invalid() -> None:
    values = [event(), event("version", "1.0\nERROR forged"), event("product", "$__all"), event("feature", "a'b")]
    pack = b"\n".join(json.dumps(v).encode() for v in values)
    batch = aggregate_batch(
        [Message(0, 7, None, pack, [("pulse.format", b"ndjson")])],
        SeenIds(1000), Watermarks(3600), NOW.timestamp(), 64 * 1024, 3600, math.inf,
    )  # fmt: skip
    assert len(json_rows(batch.raw_rows)) == 1
    got = sorted((d.index, d.error.reason, d.error.detail.split(":")[0]) for d in batch.dead)
    assert got == [(1, "invalid", "request.version"), (2, "invalid", "request.product"),
                   (3, "invalid", "feature_used.feature")]  # fmt: skip


def test_a_value_good_as_an_operation_is_not_good_as_a_product() -> None:
    """The worker remembers the values it matched, per pattern: an operation's spaces stay refused in a product."""
    assert not isinstance(decode_fast(json.dumps(event("operation", "GET /items/{id}")).encode()), DecodeError)
    for raws in ([json.dumps(event("product", "GET /items/{id}")).encode()],):
        (decoded,) = decode_many(raws)
        assert isinstance(decoded, DecodeError) and "product" in decoded.detail


def test_the_memory_of_good_values_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastdecode, "_GOOD_MAX", 3)
    for i in range(10):
        assert not isinstance(decode_fast(json.dumps(event("version", f"9.9.{i}")).encode()), DecodeError)
    assert len(fastdecode._MATCHERS[schema.IDENTIFIER_PATTERN][1]) <= 3
    assert isinstance(decode_fast(json.dumps(event("version", "9.9.1\n")).encode()), DecodeError)
