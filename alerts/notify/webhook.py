"""Webhook notifier: Alertmanager's own webhook format, so receivers built for Alertmanager parse ours.

The body is what Alertmanager's ``webhook_config`` posts (format version 4,
https://prometheus.io/docs/alerting/latest/configuration/#webhook_config; the JSON Schema is
``docs/alertmanager-webhook.schema.json``, and a test compares ours with the real Alertmanager's)::

    {"version": "4", "groupKey": "{}:{alertname=\\"X\\", product=\\"search\\"}", "truncatedAlerts": 0,
     "status": "firing"|"resolved", "receiver": "productpulse", "groupLabels": {...}, "commonLabels": {...},
     "commonAnnotations": {...}, "externalURL": "<our dashboard>",
     "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}]}

As in Alertmanager, alerts are grouped (by ``alertname`` and ``product``, the shipped route's
``group_by``) and each group is one POST, so a page for search never waits behind one for checkout
and each body's ``commonLabels`` name its product; a group is firing when any of its alerts fires; a
firing alert's ``endsAt`` is the zero time ``0001-01-01T00:00:00Z``; ``fingerprint`` is
Alertmanager's (FNV-1a of the sorted labels), so the same alert has the same id on both paths;
``max_alerts`` (0 = all) truncates a group and counts the rest in ``truncatedAlerts``.

The URL may carry a token: it is a secret and never logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from alerts.notify.delivery import DeliveryQueue, batches, post_json, target_of
from alerts.notify.message import Notification, rfc3339
from alerts.notify.sanitize import clean_annotations, clean_labels

VERSION = "4"
GROUP_BY = ("alertname", "product")
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time: Alertmanager's endsAt of a firing alert
_FNV_OFFSET, _FNV_PRIME = 14695981039346656037, 1099511628211


def alertmanager_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's (Prometheus' ``model.LabelSet.Fingerprint``): FNV-1a 64 over sorted name, 0xff, value, 0xff."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for byte in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _label_set(labels: Mapping[str, str]) -> str:
    """Prometheus' ``LabelSet.String()``: ``{a="1", b="2"}``, sorted."""
    return "{" + ", ".join(f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels)) + "}"


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def go_time(t: datetime) -> str:
    """RFC 3339 as Go's JSON writes ``time.Time`` (RFC3339Nano): milliseconds, trailing zeros dropped."""
    whole, _, fraction = rfc3339(t).removesuffix("Z").partition(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}Z" if fraction else f"{whole}Z"


def webhook_alert(n: Notification) -> dict[str, Any]:
    return {
        "status": n.status,
        "labels": clean_labels(n.labels),  # no control, bidi or zero-width characters from event strings
        "annotations": clean_annotations(n.annotations),
        "startsAt": go_time(n.starts_at),
        "endsAt": go_time(n.ends_at) if n.status == "resolved" else ZERO_TIME,
        "generatorURL": n.generator_url,
        "fingerprint": alertmanager_fingerprint(n.labels),
    }


def webhook_bodies(
    notifications: Sequence[Notification],
    *,
    receiver: str = "productpulse",
    external_url: str = "",
    group_by: Sequence[str] = GROUP_BY,
    max_alerts: int = 0,
) -> list[dict[str, Any]]:
    """One Alertmanager webhook body per group of ``notifications``, in the order the groups first appear."""
    groups: dict[tuple[tuple[str, str], ...], list[Notification]] = {}
    for n in notifications:
        key = tuple((k, n.labels[k]) for k in sorted(group_by) if k in n.labels)
        groups.setdefault(key, []).append(n)
    out = []
    for key, members in groups.items():
        group_labels = dict(key)
        shown_all = members[:max_alerts] if max_alerts > 0 else members
        for shown in batches(shown_all):  # a burst (500 versions at once) is many bounded POSTs, not one
            out.append(_body(group_labels, members, shown, len(members) - len(shown_all), receiver, external_url))
    return out


def _body(group_labels: dict[str, str], members: Sequence[Notification], shown: Sequence[Notification],
          truncated: int, receiver: str, external_url: str) -> dict[str, Any]:  # fmt: skip
    return {
        "version": VERSION,
        "groupKey": f"{{}}:{_label_set(group_labels)}",
        "truncatedAlerts": truncated,
        "status": "firing" if any(n.status == "firing" for n in members) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": _common([n.labels for n in members]),
        "commonAnnotations": _common([n.annotations for n in members]),
        "externalURL": external_url,
        "alerts": [webhook_alert(n) for n in shown],
    }


class WebhookNotifier:
    def __init__(
        self,
        url: SecretStr | str,
        *,
        receiver: str = "productpulse",
        external_url: str = "",
        max_alerts: int = 0,
        timeout_s: float = 5.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        self.name = "webhook"
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        self.receiver = receiver
        self.external_url = external_url
        self.max_alerts = max_alerts
        self.timeout_s = timeout_s
        self._queue = DeliveryQueue(
            self.name,
            self._post,
            target=target_of(self._url.get_secret_value()),
            attempts=attempts,
            backoff_s=backoff_s,
        )

    def _post(self, body: dict[str, Any]) -> None:
        post_json(self._url.get_secret_value(), json.dumps(body).encode(), self.timeout_s)

    def notify(self, notifications: Sequence[Notification]) -> bool:
        """Queue one delivery per group; False when any had to be dropped."""
        bodies = webhook_bodies(
            notifications, receiver=self.receiver, external_url=self.external_url, max_alerts=self.max_alerts
        )
        return all([self._queue.put(body) for body in bodies])

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.close(timeout_s)
