"""What an instrumented service makes each official SDK send: the traffic of the standards' routes' tests."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime

import posthog
import sentry_sdk
from segment.analytics.client import Client as SegmentClient
from sentry_sdk.sessions import track_session
from sentry_sdk.utils import event_from_exception

from pipeline.collector.segment import SEGMENT_ID_NAMESPACE

APP = {"app": {"name": "shop", "version": "3.2.0"}, "sessionId": "s-9", "device": {"type": "ios"}}


def segment_calls(client: SegmentClient, when: datetime, ids: list[str]) -> list[str]:
    """One of each call the Segment spec defines; returns the event ids their messageIds give."""
    client.track("u-1", "Search Used", {"duration_ms": 120.5, "query": "shoes"}, APP, when, message_id=ids[0])
    client.track("u-1", "Order Completed", {"revenue": 59.9, "currency": "eur"}, APP, when, message_id=ids[1])
    client.track("u-2", "NPS Submitted", {"score": 9}, APP, when, message_id=ids[2])
    client.page("u-1", name="Cart", properties={"path": "/cart"}, context=APP, timestamp=when, message_id=ids[3])
    client.screen(anonymous_id="anon-5", name="Home", context=APP, timestamp=when, message_id="not-a-uuid-1")
    client.identify("u-1", {"plan": "pro"}, APP, when, message_id=ids[5])
    return ids[:4] + [str(uuid.uuid5(SEGMENT_ID_NAMESPACE, "not-a-uuid-1"))]


def posthog_calls(client: posthog.Client, when: datetime, ids: list[str]) -> list[str]:
    props = {"$session_id": "ph-s1", "$app_version": "4.0.1"}
    client.capture("report exported", distinct_id="d-1", properties=props, timestamp=when, uuid=ids[0])
    client.capture("$pageview", distinct_id="d-1", properties={**props, "$current_url": "/x"}, timestamp=when,
                   uuid=ids[1])  # fmt: skip
    client.capture("survey sent", distinct_id="d-2", properties={**props, "$survey_response": "3"}, timestamp=when,
                   uuid=ids[2])  # fmt: skip
    client.capture("Order Completed", distinct_id="d-2", properties={**props, "revenue": 12, "currency": "USD"},
                   timestamp=when, uuid=ids[3])  # fmt: skip
    client.capture(
        "$exception",
        distinct_id="d-1",
        timestamp=when,
        uuid=ids[4],
        properties={**props, "$exception_list": [{"type": "ValueError", "mechanism": {"handled": True}}]},
    )
    client.capture("$identify", distinct_id="d-1", properties={"$set": {"plan": "pro"}}, timestamp=when)
    return ids


def unhandled(error: BaseException) -> str | None:
    """Report ``error`` as the excepthook integration does: unhandled, so the session it happens in crashed."""
    try:
        raise error
    except type(error):
        event, hint = event_from_exception(
            sys.exc_info(), sentry_sdk.get_client().options, mechanism={"type": "excepthook", "handled": False}
        )
        return sentry_sdk.capture_event(event, hint=hint)


def sentry_app(dsn: str) -> list[str]:
    """What an instrumented service does: two application sessions (one with a handled error, one crashing) and
    three request-mode sessions (one of them crashing). Returns the ids of the two error events."""
    event_ids = []
    sentry_sdk.init(dsn=dsn, release="checkout@1.4.0", environment="staging", default_integrations=False)
    try:
        scope = sentry_sdk.get_isolation_scope()
        sentry_sdk.set_user({"id": "u-7"})
        scope.start_session(session_mode="application")
        try:
            raise ValueError("bad coupon")
        except ValueError:
            event_ids.append(sentry_sdk.capture_exception())  # handled; the session gets errors=1
        scope.end_session()  # exited

        scope.start_session(session_mode="application")
        event_ids.append(unhandled(RuntimeError("boom")))
        scope.end_session()

        for crash in (False, False, True):
            with sentry_sdk.isolation_scope() as request_scope, track_session(request_scope, session_mode="request"):
                if crash:
                    event_ids.append(unhandled(LookupError("in a request")))
        sentry_sdk.flush(timeout=10)
    finally:
        sentry_sdk.get_client().close()
    return event_ids
