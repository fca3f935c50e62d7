"""Alertmanager API v2 notifier: ``POST {url}/api/v2/alerts``, the way Prometheus sends.

The evaluator decides *when* (firing alerts every resend delay, resolved ones
for 15 minutes); this module only delivers, off the evaluation path. One
notifier per Alertmanager: with an HA pair (or more) every alert goes to each,
as Prometheus sends, each through its own queue and thread, so one that is down
or hung neither blocks nor delays the others; their deliveries are counted per
target (:func:`alertmanager_notifiers`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from alerts.notify.delivery import DeliveryQueue, batches, post_json, target_of
from alerts.notify.message import Notification


class AlertmanagerNotifier:
    def __init__(self, url: str, *, timeout_s: float = 5.0, attempts: int = 4, backoff_s: float = 0.5) -> None:
        self.name = "alertmanager"
        self.endpoint = f"{url.rstrip('/')}/api/v2/alerts"
        self.timeout_s = timeout_s
        self.target = target_of(url)
        self._queue = DeliveryQueue(self.name, self._post, target=self.target, attempts=attempts, backoff_s=backoff_s)

    def _post(self, notifications: Sequence[Notification]) -> None:
        body = json.dumps([n.to_alertmanager() for n in notifications]).encode()
        post_json(self.endpoint, body, self.timeout_s)

    def notify(self, notifications: Sequence[Notification]) -> bool:
        if not notifications:
            return True
        return all([self._queue.put(batch) for batch in batches(notifications)])  # every batch queued, or counted

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.close(timeout_s)


def alertmanager_notifiers(urls: Sequence[str], **kwargs: Any) -> list[AlertmanagerNotifier]:
    """One notifier per Alertmanager in ``urls`` (an HA pair or more): each gets every alert."""
    return [AlertmanagerNotifier(url, **kwargs) for url in urls]
