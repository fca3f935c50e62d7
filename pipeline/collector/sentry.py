"""Sentry's ingest API: ``POST /api/<project>/envelope/`` and the older ``/api/<project>/store/``.

The write key is the DSN's public key, as Sentry's SDKs send it
(``X-Sentry-Auth: Sentry sentry_key=<key>, ...``; also ``?sentry_key=`` or the
envelope header's ``dsn``); the project id in the path is not used. An
envelope is a JSON header line, then items: a JSON item header (with
``length``, or up to the next newline) and its payload. The mapping (README,
"Speaking the standards"):

* ``session`` (one session's update): ``session_started`` (ts ``started``)
  and, once the status is ``exited``, ``crashed`` or ``abnormal``,
  ``session_ended`` with that status, ``errors`` and ``duration`` (seconds, as
  ``duration_ms``). Ids are uuid5 of ``sid`` and the phase: the SDKs send a
  session several times (with an error, at its end), and it counts once;
* ``sessions`` (request-mode aggregates: counts per minute): one
  ``session_started`` and one ``session_ended`` per counted session - ``exited``
  as exited, ``errored`` as exited with one error, ``crashed``, ``abnormal`` -
  at the bucket's minute; ids are uuid5 of the item's bytes and the session's
  place in it, so a retried envelope counts once;
* ``event`` (and the body of ``/store/``) with an ``exception``: one ``error``,
  kind the outermost exception's ``type``, handled from its ``mechanism``
  (Sentry's default: handled), ``event_id`` the event's id; an event without
  exception (a message) is counted as unmapped;
* release ``package@version`` -> product ``package`` (through the mapping
  file's ``products``) and version; a release without ``@`` is the version of
  the key's product; environment ``environment``; user ``did`` / ``user.id``;
* every other item type (transactions, attachments, client reports, ...) is
  accepted and counted by type, never an error for the SDK.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pipeline.collector.errors import Rejected
from pipeline.collector.intake import Intake, dig, identifier, obj, stable_event_id, text
from pipeline.collector.mapping import ANONYMOUS_USER, UNKNOWN_VERSION, Mapping

SENTRY_ID_NAMESPACE = uuid.UUID("5d2c9a4e-7b1f-4c38-a6e0-8f3b2d1c0e95")
ENDED = ("exited", "crashed", "abnormal")
# Item types counted under their own name; any other is `item_other`, so a client cannot grow the
# counter's label set without bound.
KNOWN_ITEMS = frozenset({"transaction", "attachment", "client_report", "profile", "profile_chunk", "replay_event",
                         "replay_recording", "replay_video", "check_in", "statsd", "metric_meta", "feedback",
                         "user_report", "span", "log", "otel_log", "trace_metric", "security", "nel"})  # fmt: skip


def auth_key(header: str | None, query: dict[str, str]) -> str | None:
    """The ``sentry_key`` of ``X-Sentry-Auth`` (or ``Authorization: Sentry ...``), else of the query string."""
    if header:
        _, _, params = header.strip().partition(" ")
        for part in params.split(","):
            name, _, value = part.strip().partition("=")
            if name.strip() == "sentry_key" and value.strip():
                return value.strip()
    return query.get("sentry_key") or None


def split_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """The envelope's header and its (item header, payload) pairs; 400 naming what is malformed."""
    line, sep, rest = body.partition(b"\n")
    header = _json_line(line, "the envelope header")
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        line, sep, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        item = _json_line(line, f"item {len(items)}'s header")
        length = item.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0 or length > len(rest):
                raise Rejected(400, f"item {len(items)}'s length {length!r} does not fit the envelope", "bad_envelope")
            payload, rest = rest[:length], rest[length:]
            rest = rest[1:] if rest[:1] == b"\n" else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item, payload))
    return header, items


def _json_line(line: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, f"{what} is not JSON: {exc}", "bad_envelope") from None
    if not isinstance(doc, dict):
        raise Rejected(400, f"{what} is not a JSON object", "bad_envelope")
    return doc


def dsn_key(header: dict[str, Any]) -> str | None:
    """The public key of the envelope header's ``dsn``."""
    dsn = header.get("dsn")
    return (urlsplit(dsn).username or None) if isinstance(dsn, str) else None


def _payload(item: int, payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, f"item {item}'s payload is not JSON: {exc}", "bad_envelope") from None
    if not isinstance(doc, dict):
        raise Rejected(400, f"item {item}'s payload is not a JSON object", "bad_envelope")
    return doc


def _release(release: Any, product: str, mapping: Mapping) -> tuple[str, str]:
    """(product, version) of a Sentry release; ``package@version`` names the product."""
    if not isinstance(release, str) or not release:
        return product, UNKNOWN_VERSION
    package, at, version = release.partition("@")
    if at and package and version:
        return mapping.product_of_service(package), identifier(version) or UNKNOWN_VERSION
    return product, identifier(release) or UNKNOWN_VERSION


def _ts(value: Any, fallback: datetime) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat()
    return value if isinstance(value, str) and value else fallback.isoformat()


def map_envelope(
    header: dict[str, Any],
    items: list[tuple[dict[str, Any], bytes]],
    product: str,
    mapping: Mapping,
    now: datetime,
    max_events: int,
) -> Intake:
    """The events of an envelope's items for the key's ``product`` (``""`` when the key covers several).

    ``max_events`` bounds what aggregates may expand to (two events per counted
    session): a few bytes claiming a billion sessions are refused (413) before
    a single event is made.
    """
    intake = Intake("sentry")
    for n, (item, payload) in enumerate(items):
        kind = item.get("type")
        label = f"items[{n}]"
        if kind == "session":
            _session(intake, _payload(n, payload), label, product, mapping, now)
        elif kind == "sessions":
            _aggregates(intake, _payload(n, payload), payload, label, product, mapping, max_events)
        elif kind == "event":
            _event(intake, _payload(n, payload), label, product, mapping, now)
        else:
            intake.set_aside(f"item_{kind if kind in KNOWN_ITEMS else 'other'}")
    return intake


def map_store(event: Any, product: str, mapping: Mapping, now: datetime) -> Intake:
    """The events of a ``/store/`` body: one Sentry event."""
    if not isinstance(event, dict):
        raise Rejected(400, "a /store/ body is one Sentry event object", "bad_shape")
    intake = Intake("sentry")
    _event(intake, event, "event", product, mapping, now)
    return intake


def _session(intake: Intake, s: dict[str, Any], label: str, product: str, mapping: Mapping, now: datetime) -> None:
    attrs = obj(s.get("attrs"))
    prod, version = _release(attrs.get("release"), product, mapping)
    sid = text(s.get("sid"), 64)
    envelope = {
        "product": prod,
        "version": version,
        "user_id": text(s.get("did"), 128) or ANONYMOUS_USER,
        "session_id": sid,
        "environment": identifier(attrs.get("environment")) or "production",
    }
    if s.get("init") is True:
        intake.add({"type": "session_started", "event_id": _sid_id(sid, "started"), **envelope,
                    "ts": _ts(s.get("started"), now)}, label)  # fmt: skip
    status = s.get("status")
    if status in ENDED:
        duration = s.get("duration")
        intake.add({"type": "session_ended", "event_id": _sid_id(sid, "ended"), **envelope,
                    "ts": _ts(s.get("timestamp"), now), "status": status, "errors": s.get("errors", 0),
                    "duration_ms": duration * 1000 if isinstance(duration, int | float) else 0.0}, label)  # fmt: skip
    elif s.get("init") is not True:
        intake.set_aside("session_update")  # a running session's progress: it is stored when it ends


def _sid_id(sid: str, phase: str) -> str | None:
    return str(uuid.uuid5(SENTRY_ID_NAMESPACE, f"{sid}/{phase}")) if sid else None


def _aggregates(
    intake: Intake, doc: dict[str, Any], raw: bytes, label: str, product: str, mapping: Mapping, max_events: int
) -> None:
    attrs = obj(doc.get("attrs"))
    prod, version = _release(attrs.get("release"), product, mapping)
    environment = identifier(attrs.get("environment")) or "production"
    aggregates = doc.get("aggregates")
    if not isinstance(aggregates, list):
        raise Rejected(400, f"{label}: a sessions item holds an aggregates array", "bad_envelope")
    fields = (("exited", "exited", 0), ("errored", "exited", 1), ("crashed", "crashed", 1), ("abnormal", "abnormal", 0))
    total = 0
    for b, bucket in enumerate(aggregates):
        for field, _, _ in fields:
            count = obj(bucket).get(field, 0)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise Rejected(400, f"{label}.aggregates[{b}].{field} is not a count", "bad_envelope")
            total += count
    if len(intake.items) + 2 * total > max_events:
        raise Rejected(413, f"{label} counts {total} sessions, two events each; the limit is {max_events} events "
                       "per request", "too_many_events")  # fmt: skip
    namespace = uuid.uuid5(SENTRY_ID_NAMESPACE, raw.hex())
    place = 0
    for b, bucket in enumerate(aggregates):
        bucket = obj(bucket)
        started = bucket.get("started")
        for field, status, errors in fields:
            for _ in range(bucket.get(field, 0)):
                envelope = {"product": prod, "version": version, "environment": environment, "ts": started,
                            "user_id": text(bucket.get("did"), 128) or ANONYMOUS_USER}  # fmt: skip
                where = f"{label}.aggregates[{b}]"
                intake.add({"type": "session_started", "event_id": str(uuid.uuid5(namespace, f"{place}/started")),
                            **envelope}, where)  # fmt: skip
                intake.add({"type": "session_ended", "event_id": str(uuid.uuid5(namespace, f"{place}/ended")),
                            **envelope, "status": status, "errors": errors}, where)  # fmt: skip
                place += 1


def _event(intake: Intake, e: dict[str, Any], label: str, product: str, mapping: Mapping, now: datetime) -> None:
    values = dig(e, "exception", "values")
    if not isinstance(values, list) or not values or not isinstance(values[-1], dict):
        intake.set_aside("event_without_exception")
        return
    outermost = values[-1]  # Sentry lists chained exceptions innermost first
    handled = dig(outermost, "mechanism", "handled")
    prod, version = _release(e.get("release"), product, mapping)
    event: dict[str, Any] = {
        "type": "error",
        "product": prod,
        "version": version,
        "ts": _ts(e.get("timestamp"), now),
        "user_id": text(dig(e, "user", "id"), 128) or ANONYMOUS_USER,
        "environment": identifier(e.get("environment")) or "production",
        "platform": text(e.get("platform")),
        "kind": text(outermost.get("type"), 128) or "exception",
        "handled": handled if isinstance(handled, bool) else True,
        "properties": {k: v for k, v in (("message", text(outermost.get("value"), 1024)),
                                         ("level", e.get("level")),
                                         ("trace_id", dig(e, "contexts", "trace", "trace_id"))) if v},
    }  # fmt: skip
    event_id = stable_event_id(SENTRY_ID_NAMESPACE, e.get("event_id"))
    if event_id is not None:
        event["event_id"] = event_id
    intake.add(event, label)


def response_body(header: dict[str, Any]) -> dict[str, Any]:
    """What Sentry answers an accepted envelope: the envelope's event id, when it has one."""
    event_id = header.get("event_id")
    return {"id": event_id} if isinstance(event_id, str) else {}
