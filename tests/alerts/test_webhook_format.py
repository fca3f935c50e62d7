"""The webhook notifier speaks Alertmanager's webhook format: it validates against the documented format
(``docs/alertmanager-webhook.schema.json``, written from prometheus.io's ``webhook_config``), and for the
same alerts the real Alertmanager's own webhook body and ours agree field for field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from support.alertmanager import Alertmanager, Hooks, running_alertmanager, wait_for

from alerts.notify.alertmanager import AlertmanagerNotifier
from alerts.notify.message import Notification, generator_url
from alerts.notify.webhook import WebhookNotifier, alertmanager_fingerprint, webhook_bodies

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "alertmanager-webhook.schema.json").read_text())
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def validate(body: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(body)


def note(
    alertname: str, product: str, status: str = "firing", *, at: datetime = T0, **annotations: str
) -> Notification:
    labels = {"alertname": alertname, "product": product, "severity": "page", "team": "product-oncall"}
    return Notification(
        fingerprint="ours", status=status, labels=labels,
        annotations={"summary": f"{alertname} on {product}", "runbook_url": "docs/runbooks.md#x", **annotations},
        starts_at=at - timedelta(minutes=5), ends_at=at + timedelta(minutes=10 if status == "firing" else 0),
        generator_url=generator_url(labels, "http://127.0.0.1:6066"),
    )  # fmt: skip


def test_bodies_are_grouped_like_alertmanager_and_validate() -> None:
    notes = [
        note("ErrorRateSpike", "search", description="a"),
        note("ErrorRateSpike", "checkout"),
        note("ErrorRateSpike", "search", "resolved", description="b"),  # a second alert of the same group
    ]
    notes[2] = Notification(**{**notes[2].__dict__, "labels": {**notes[2].labels, "version": "2.0"}})
    search, checkout = webhook_bodies(notes, external_url="http://127.0.0.1:6066")
    for body in (search, checkout):
        validate(body)
    assert search["groupKey"] == '{}:{alertname="ErrorRateSpike", product="search"}'
    assert search["groupLabels"] == {"alertname": "ErrorRateSpike", "product": "search"}
    assert search["status"] == "firing"  # any alert firing
    assert search["commonLabels"] == {"alertname": "ErrorRateSpike", "product": "search", "severity": "page",
                                      "team": "product-oncall"}  # fmt: skip
    assert search["commonAnnotations"] == {"summary": "ErrorRateSpike on search", "runbook_url": "docs/runbooks.md#x"}
    firing, resolved = search["alerts"]
    assert firing["endsAt"] == "0001-01-01T00:00:00Z" and resolved["endsAt"] == "2026-03-01T12:00:00Z"
    assert firing["fingerprint"] != resolved["fingerprint"]
    assert [a["labels"]["product"] for a in checkout["alerts"]] == ["checkout"] and checkout["truncatedAlerts"] == 0
    (truncated,) = webhook_bodies(notes[:1] + notes[2:], max_alerts=1)
    assert len(truncated["alerts"]) == 1 and truncated["truncatedAlerts"] == 1
    validate(truncated)


def test_the_schema_refuses_our_old_home_made_body() -> None:
    old = {"version": "1", "sender": "productpulse", "status": "firing", "alerts": []}
    with pytest.raises(jsonschema.ValidationError):
        validate(old)
    good = webhook_bodies([note("A", "x")])[0]
    with pytest.raises(jsonschema.ValidationError):
        validate({**good, "alerts": [{**good["alerts"][0], "endsAt": "yesterday"}]})


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.close()


@pytest.fixture
def alertmanager(tmp_path: Path, hooks: Hooks) -> Iterator[Alertmanager]:
    config = {
        "route": {"receiver": "productpulse", "group_by": ["alertname", "product"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "productpulse", "webhook_configs": [{"url": hooks.url + "/am", "send_resolved": True}]}],
    }  # fmt: skip
    with running_alertmanager(tmp_path / "am", config) as am:
        yield am


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, not the contents."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


@pytest.mark.integration
def test_ours_matches_the_real_alertmanagers_webhook_field_for_field(alertmanager: Alertmanager, hooks: Hooks) -> None:
    # .25 s: Go drops the trailing zeros. A second back, so the resolved alert's endsAt is in the past when it
    # arrives: Alertmanager merges a "resolved" alert whose endsAt is still ahead into the firing one (the later
    # endsAt wins), and the resolve never comes - this test failed that way whenever .25 was ahead of the clock.
    now = datetime.now(UTC).replace(microsecond=250_000) - timedelta(seconds=1)
    firing = [note("ErrorRateSpike", "search", at=now, description="8.00% of requests failed")]
    resolved = [note("ErrorRateSpike", "search", "resolved", at=now, description="8.00% of requests failed")]

    # The same alerts through the real Alertmanager (its webhook posts to /am) and through our webhook (/ours).
    ours = WebhookNotifier(hooks.url + "/ours", receiver="productpulse", external_url=alertmanager.url)
    am = AlertmanagerNotifier(alertmanager.url)
    for batch, count in ((firing, 1), (resolved, 2)):
        assert am.notify(batch) and ours.notify(batch)
        wait_for("Alertmanager's webhook", lambda count=count: len(hooks.bodies("/am")) >= count)
        wait_for("our webhook", lambda count=count: len(hooks.bodies("/ours")) >= count)
    am.close(5)
    ours.close(5)

    for theirs, mine in zip(hooks.bodies("/am"), hooks.bodies("/ours"), strict=True):
        validate(theirs)
        validate(mine)
        assert shape(mine) == shape(theirs)
        assert sorted(mine) == sorted(theirs) and sorted(mine["alerts"][0]) == sorted(theirs["alerts"][0])
        # Field for field: everything but the backlink (Alertmanager's own URL, from its hostname) is equal.
        assert {k: v for k, v in mine.items() if k != "externalURL"} == {
            k: v for k, v in theirs.items() if k != "externalURL"
        }
    first, second = hooks.bodies("/am")
    assert first["status"] == "firing" and second["status"] == "resolved"
    assert first["alerts"][0]["fingerprint"] == alertmanager_fingerprint(firing[0].labels)
