"""PostHog's capture API: ``POST /batch/``, ``/capture/`` and ``/e/``, as posthog-python and posthog-js send them.

Bodies: JSON (``{"api_key", "batch": [...]}``, one event object, or an array
of events), gzip by ``Content-Encoding`` or by ``?compression=gzip-js``, and
the form-encoded ``data=<JSON or base64 JSON>`` of older posthog-js. The key is
``api_key`` (or ``token``) in the body, else ``properties.token`` of the
events, else ``?api_key=`` / ``?token=``; one key per request. A key of one
product names the product; a key of several takes it from ``properties.product``.
The mapping (README, "Speaking the standards"):

* ``$pageview`` / ``$screen`` -> ``feature_used`` (``page_view`` / ``screen_view``);
* ``$exception`` -> ``error`` (kind ``$exception_type``, else the first entry of
  ``$exception_list``; handled from its ``mechanism.handled``);
* person and group updates (``$identify``, ``$create_alias``, ``$groupidentify``,
  ``$set``, ``$merge_dangerously``) and ``$pageleave`` carry no product event:
  counted (``pulse_collector_unmapped_total{source="posthog"}``) and acknowledged;
* every other name by :mod:`.analytics` (``survey sent`` -> ``feedback``,
  conversions, else ``feature_used``);
* user ``distinct_id`` (top level or in properties), session ``$session_id``,
  version ``$app_version``, platform ``$os`` (else ``$lib``), time
  ``timestamp``; ``event_id`` from ``uuid``, so a retried batch counts once.
  All properties are kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from pipeline.collector.analytics import PAGE_VIEW, SCREEN_VIEW, typed_fields
from pipeline.collector.body import decode_body
from pipeline.collector.errors import Rejected
from pipeline.collector.intake import Intake, dig, identifier, obj, stable_event_id, text
from pipeline.collector.mapping import UNKNOWN_VERSION, Mapping

POSTHOG_ID_NAMESPACE = uuid.UUID("9e4b6c1d-2f8a-4b3e-b5c7-1a0d9e8f7c62")
NO_PRODUCT_EVENT = frozenset({"$identify", "$create_alias", "$groupidentify", "$set", "$merge_dangerously",
                              "$pageleave"})  # fmt: skip


def parse_body(
    body: bytes, content_type: str | None, query: dict[str, str], max_bytes: int
) -> tuple[list[Any], str | None]:
    """The events of a decoded body and the api key it carries (None if it carries none)."""
    if query.get("compression", "").startswith("gzip"):  # posthog-js: gzip body, no Content-Encoding
        body = decode_body(body, "gzip", max_bytes)
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        body = _form_data(body, max_bytes)
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}", "bad_json") from None
    key: Any = None
    if isinstance(doc, dict):
        key = doc.get("api_key") or doc.get("token")
        if "batch" in doc:
            items = doc["batch"]
            if not isinstance(items, list):
                raise Rejected(400, 'a PostHog batch is {"api_key": ..., "batch": [...]}', "bad_shape")
        else:
            items = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise Rejected(400, "a PostHog body is an event, an array of events or a batch object", "bad_shape")
    if not items:
        raise Rejected(400, "body holds no events", "empty")
    keys = {key} if isinstance(key, str) and key else set()
    if not keys:
        keys = {k for item in items if isinstance(k := dig(item, "properties", "token"), str) and k}
    if not keys:
        keys = {k for k in (query.get("api_key"), query.get("token")) if k}
    if len(keys) > 1:
        raise Rejected(400, "events of one request carry different api keys: send one key per request", "mixed_keys")
    return items, next(iter(keys), None)


def _form_data(body: bytes, max_bytes: int) -> bytes:
    try:
        form = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise Rejected(400, "form body is not URL-encoded ASCII", "bad_form") from None
    data = (form.get("data") or [""])[0]
    if not data:
        raise Rejected(400, "form body has no data= field", "bad_form")
    if data.lstrip()[:1] in ("{", "["):
        return data.encode()
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise Rejected(400, "form data= is neither JSON nor base64 JSON", "bad_form") from None
    return decode_body(raw, "gzip", max_bytes) if raw[:2] == b"\x1f\x8b" else raw


def map_events(items: list[Any], product: str, mapping: Mapping, now: datetime) -> Intake:
    """The events of PostHog captures for ``product`` (``""`` when the key covers several: ``properties.product``)."""
    intake = Intake("posthog")
    for index, item in enumerate(items):
        label = f"batch[{index}]"
        if not isinstance(item, dict):
            intake.add({"type": None}, label)
            continue
        name = text(item.get("event"), 128)
        properties = obj(item.get("properties"))
        if name in NO_PRODUCT_EVENT:
            intake.set_aside(name.lstrip("$"))
            continue
        if name == "$pageview":
            fields: dict[str, Any] | None = {"type": "feature_used", "feature": PAGE_VIEW}
        elif name == "$screen":
            fields = {"type": "feature_used", "feature": SCREEN_VIEW}
        elif name == "$exception":
            fields = _exception(properties)
        else:
            fields = typed_fields(name, properties, mapping)
        if fields is None:
            intake.set_aside("ignored_event")
            continue
        kept = {k: v for k, v in properties.items() if k != "token"}  # the key is a credential, never stored
        if fields.get("feature", fields.get("goal", name)) != name:
            kept.setdefault("event_name", name)  # the name as sent, beside its identifier
        event: dict[str, Any] = {
            **fields,
            "product": product or text(properties.get("product")),
            "version": identifier(properties.get("$app_version")) or UNKNOWN_VERSION,
            "ts": item.get("timestamp") or now.isoformat(),
            "user_id": text(item.get("distinct_id") or properties.get("distinct_id"), 128),
            "session_id": text(properties.get("$session_id")),
            "platform": text(properties.get("$os") or properties.get("$lib")),
            "properties": kept,
        }
        if isinstance(environment := properties.get("environment"), str) and environment:
            event["environment"] = identifier(environment)
        event_id = stable_event_id(POSTHOG_ID_NAMESPACE, item.get("uuid"))
        if event_id is not None:
            event["event_id"] = event_id
        intake.add(event, label)
    return intake


def _exception(properties: dict[str, Any]) -> dict[str, Any]:
    first = properties.get("$exception_list")
    first = first[0] if isinstance(first, list) and first and isinstance(first[0], dict) else {}
    handled = dig(first, "mechanism", "handled")
    return {
        "type": "error",
        "kind": text(properties.get("$exception_type") or first.get("type"), 128) or "exception",
        "handled": handled if isinstance(handled, bool) else False,
    }
