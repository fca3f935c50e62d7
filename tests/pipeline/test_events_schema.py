"""The published JSON Schema (docs/events.schema.json) is the generated one, and says what the models say."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from support.truth import make_events

from pipeline.events import EVENT_ADAPTER, RELEASE_ADAPTER, encode_event
from pipeline.events_schema import event_contract_schema, render

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "events.schema.json"
SCHEMA = event_contract_schema()
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_committed_schema_is_the_generated_one():
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "docs/events.schema.json is stale: .venv/bin/python -m pipeline.events_schema docs/events.schema.json"
    )


def test_it_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(SCHEMA)


def test_what_the_sdk_sends_validates():
    for event in make_events(400, ["checkout", "search"], seed=5):
        wire = json.loads(encode_event(EVENT_ADAPTER.validate_python(event)))
        VALIDATOR.validate(wire)
        VALIDATOR.validate({k: v for k, v in wire.items() if k != "event_id"})  # the id may be left out
    release = {"product": "checkout", "version": "2.0", "released_at": "2026-12-01T10:00:00Z"}
    wire = json.loads(encode_event(RELEASE_ADAPTER.validate_python(release)))
    Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/Release"}).validate(wire)


def _broken(change: Any) -> dict[str, Any]:
    event = copy.deepcopy(
        {"type": "request", "product": "checkout", "version": "2.0", "ts": "2026-12-01T10:00:00Z", "user_id": "u-1",
         "operation": "GET /", "latency_ms": 12.0}
    )  # fmt: skip
    change(event)
    return event


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.pop("type"),
        lambda e: e.update(type="teleport"),
        lambda e: e.update(colour="red"),
        lambda e: e.pop("product"),
        lambda e: e.update(latency_ms="fast"),
        lambda e: e.update(latency_ms=-1),
        lambda e: e.update(product=""),
        lambda e: e.update(status_code=700),
    ],
    ids=[
        "no type",
        "unknown type",
        "unknown field",
        "no product",
        "text latency",
        "negative latency",
        "empty product",
        "status code",
    ],  # fmt: skip
)
def test_what_the_models_reject_the_schema_rejects(change):
    event = _broken(change)
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python(event)
    assert not VALIDATOR.is_valid(event)
