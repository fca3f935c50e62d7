"""Segment's tracking API: ``POST /v1/batch`` and the single calls ``/v1/track``, ``identify``, ``page``, ``screen``.

The write key is the basic-auth user (``Authorization: Basic base64(key:)``,
as Segment's SDKs send it), or ``writeKey`` in the body. A key of one product
names the product; a key of several takes it from ``context.app.name``.
The mapping (README, "Speaking the standards"):

* ``track`` -> by event name (:mod:`.analytics`): ``conversion``,
  ``feedback`` or ``feature_used``;
* ``page`` / ``screen`` -> ``feature_used`` (``page_view`` / ``screen_view``);
* ``identify``, ``group``, ``alias`` carry traits, not product events: counted
  (``pulse_collector_unmapped_total{source="segment"}``) and acknowledged;
* user ``userId``, else ``anonymousId``; session ``context.sessionId`` (or
  ``properties.session_id``); version ``context.app.version``; platform
  ``context.device.type``, else ``context.os.name``; time ``timestamp``
  (else ``originalTimestamp``, else the collector's clock);
* ``event_id`` from ``messageId`` (itself when a UUID, else uuid5 of it), so an
  SDK's retry is counted once. The message's ``properties`` are kept, with
  ``context.page.url`` as ``url`` and the page ``name``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pipeline.collector.analytics import PAGE_VIEW, SCREEN_VIEW, typed_fields
from pipeline.collector.errors import Rejected
from pipeline.collector.intake import Intake, dig, identifier, obj, stable_event_id, text
from pipeline.collector.mapping import UNKNOWN_VERSION, Mapping

SEGMENT_ID_NAMESPACE = uuid.UUID("0c2a8f7e-9d1b-4f4e-8a6d-5b3e2c1f0a97")
CALLS = ("track", "identify", "page", "screen", "group", "alias")
TRAITS_ONLY = ("identify", "group", "alias")


def parse_body(body: bytes, call: str | None) -> tuple[list[Any], str | None]:
    """The messages of a body and its ``writeKey``; ``call`` is the single-call route's type (None for batch)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}", "bad_json") from None
    if not isinstance(doc, dict):
        raise Rejected(400, "a Segment body is a JSON object", "bad_shape")
    key = doc.get("writeKey") if isinstance(doc.get("writeKey"), str) else None
    if call is None:
        batch = doc.get("batch")
        if not isinstance(batch, list):
            raise Rejected(400, 'a Segment batch is {"batch": [...]}', "bad_shape")
        if not batch:
            raise Rejected(400, "body holds no messages", "empty")
        return batch, key
    return [{**doc, "type": doc.get("type") or call}], key


def map_messages(messages: list[Any], product: str, mapping: Mapping, now: datetime) -> Intake:
    """The events of Segment messages for ``product`` (``""`` if the key covers several: ``context.app.name``)."""
    intake = Intake("segment")
    for index, message in enumerate(messages):
        label = f"batch[{index}]"
        if not isinstance(message, dict):
            intake.add({"type": None}, label)  # the model names it: not an event object
            continue
        call = message.get("type")
        if call in TRAITS_ONLY:
            intake.set_aside(str(call))
            continue
        properties, context = obj(message.get("properties")), obj(message.get("context"))
        if call == "track":
            fields = typed_fields(text(message.get("event"), 128), properties, mapping)
            if fields is None:
                intake.set_aside("ignored_event")
                continue
        elif call in ("page", "screen"):
            fields = {"type": "feature_used", "feature": PAGE_VIEW if call == "page" else SCREEN_VIEW}
        else:
            intake.set_aside("unknown_type")
            continue
        kept = dict(properties)
        if call == "track" and fields.get("feature", fields.get("goal")) != message.get("event"):
            kept.setdefault("event_name", message.get("event"))  # the name as sent, beside its identifier
        if message.get("name"):
            kept.setdefault("name", message["name"])
        if url := dig(context, "page", "url"):
            kept.setdefault("url", url)
        user = message.get("userId") or message.get("anonymousId")
        event: dict[str, Any] = {
            **fields,
            "product": product or text(dig(context, "app", "name")),
            "version": identifier(dig(context, "app", "version")) or UNKNOWN_VERSION,
            "ts": message.get("timestamp") or message.get("originalTimestamp") or now.isoformat(),
            "user_id": text(user, 128),
            "session_id": text(context.get("sessionId") or context.get("session_id") or properties.get("session_id")),
            "platform": text(dig(context, "device", "type") or dig(context, "os", "name")),
            "properties": kept,
        }
        if isinstance(environment := context.get("environment"), str) and environment:
            event["environment"] = identifier(environment)
        event_id = stable_event_id(SEGMENT_ID_NAMESPACE, message.get("messageId"))
        if event_id is not None:
            event["event_id"] = event_id
        intake.add(event, label)
    return intake
