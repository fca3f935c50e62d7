"""Generic webhook notifier: one JSON body per delivery with the same alerts Alertmanager gets.

Body: ``{"version": "1", "sender": "productpulse", "status": "firing"|"resolved",
"alerts": [{status, fingerprint, labels, annotations, startsAt, endsAt, generatorURL}]}``
(``status`` is firing when any alert in it fires). The URL may carry a token:
it is a secret and never logged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import SecretStr

from alerts.notify.delivery import DeliveryQueue, batches, post_json
from alerts.notify.message import Notification


def webhook_body(notifications: Sequence[Notification]) -> dict[str, object]:
    status = "firing" if any(n.status == "firing" for n in notifications) else "resolved"
    return {
        "version": "1",
        "sender": "productpulse",
        "status": status,
        "alerts": [n.to_json() for n in notifications],
    }


class WebhookNotifier:
    def __init__(
        self, url: SecretStr | str, *, timeout_s: float = 5.0, attempts: int = 4, backoff_s: float = 0.5
    ) -> None:
        self.name = "webhook"
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        self.timeout_s = timeout_s
        self._queue = DeliveryQueue(self.name, self._post, attempts=attempts, backoff_s=backoff_s)

    def _post(self, notifications: Sequence[Notification]) -> None:
        body = json.dumps(webhook_body(notifications)).encode()
        post_json(self._url.get_secret_value(), body, self.timeout_s)

    def notify(self, notifications: Sequence[Notification]) -> bool:
        if not notifications:
            return True
        return all([self._queue.put(batch) for batch in batches(notifications)])  # every batch queued, or counted

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.close(timeout_s)
