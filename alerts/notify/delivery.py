"""Deliveries off the evaluation path: a bounded queue, one thread, bounded retries with backoff.

:meth:`DeliveryQueue.put` never blocks: when the queue is full the delivery is
dropped and counted (``result="dropped"``). Each delivery is tried at most
``attempts`` times with exponential backoff; a permanent refusal (HTTP 4xx
other than 408/429) is not retried. Outcomes are counted in
``pulse_notifications_total{notifier,target,result}`` with result sent, failed or dropped; ``target``
is the receiver's ``scheme://host:port`` (:func:`target_of`: never its path, query or credentials), so
each Alertmanager of an HA pair has its own counts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.telemetry import NOTIFICATIONS

log = logging.getLogger(__name__)

_STOP = object()


class PermanentFailure(Exception):
    """The receiver refused the delivery for good (retrying cannot help)."""


class DeliveryFailed(Exception):
    """A transient failure to deliver (connection refused, timeout, HTTP 5xx/408/429): retried."""


def post_json(url: str, body: bytes, timeout_s: float, headers: dict[str, str] | None = None) -> None:
    """POST ``body``; raises PermanentFailure on 4xx (not 408/429) or a URL that cannot work, DeliveryFailed on
    transient errors.

    The URL may carry a token (a webhook's path or query, a password): no message raised here contains it,
    nor any part of it a receiver may echo, because the delivery thread logs these messages.
    """
    try:
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        if 400 <= e.code < 500 and e.code not in (408, 429):
            raise PermanentFailure(f"HTTP {e.code}: {redact(repr(e.read()[:200]), url)}") from None
        raise DeliveryFailed(f"HTTP {e.code}") from None
    except urllib.error.URLError as e:
        raise DeliveryFailed(f"unreachable: {redact(str(e.reason), url)}") from None
    except ValueError:  # urllib: "unknown url type: '<the url>'"
        raise PermanentFailure("the URL is not a valid http(s) URL (see the notifier's setting)") from None
    except OSError as e:  # a timeout or reset while reading the answer
        raise DeliveryFailed(f"{type(e).__name__}: {redact(str(e), url)}") from None


def target_of(url: str) -> str:
    """``scheme://host:port`` of ``url``: what may be shown of a receiver (no user info, path, query)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.scheme else "?"


MAX_ALERTS_PER_POST = 64  # Prometheus' own batch size towards Alertmanager (maxBatchSize)


def batches(items: Sequence[Any], size: int = MAX_ALERTS_PER_POST) -> list[list[Any]]:
    """``items`` in POST-sized lists: a burst of alerts (500 versions regressed at once) is many bounded requests."""
    return [list(items[i : i + size]) for i in range(0, len(items), max(1, size))]


def redact(text: str, url: str) -> str:
    """``text`` without ``url`` or any secret-bearing part of it (user info, path, query, fragment)."""
    parts = urllib.parse.urlsplit(url if "//" in url else "//" + url)
    for secret in sorted({url, parts.netloc, parts.path, parts.query, parts.fragment}, key=len, reverse=True):
        if len(secret) > 1:
            text = text.replace(secret, "<redacted>")
    return text


class DeliveryQueue:
    def __init__(
        self,
        name: str,
        deliver: Callable[[Any], None],
        *,
        target: str = "",
        maxsize: int = 256,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.name = name
        self.target = target
        self._deliver = deliver
        self._q: queue.Queue[Any] = queue.Queue(maxsize)
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notify-{name}", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> bool:
        if self._closing.is_set():
            NOTIFICATIONS.labels(self.name, self.target, "dropped").inc()
            return False
        try:
            self._q.put_nowait(item)
        except queue.Full:
            NOTIFICATIONS.labels(self.name, self.target, "dropped").inc()
            log.warning("event=notification_dropped notifier=%s target=%s reason=queue_full", self.name, self.target)
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            self._attempt(item)

    def _attempt(self, item: Any) -> None:
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                self._deliver(item)
            except PermanentFailure as e:
                NOTIFICATIONS.labels(self.name, self.target, "failed").inc()
                log.error(
                    "event=notification_failed notifier=%s target=%s permanent=true error=%r",
                    self.name,
                    self.target,
                    str(e),
                )
                return
            except Exception as e:  # noqa: BLE001 - any transport error is retried a bounded number of times
                if attempt == self._attempts:
                    NOTIFICATIONS.labels(self.name, self.target, "failed").inc()
                    log.error(
                        "event=notification_failed notifier=%s target=%s attempts=%d error=%r",
                        self.name, self.target, attempt, str(e),
                    )  # fmt: skip
                    return
                log.warning(
                    "event=notification_retry notifier=%s target=%s attempt=%d error=%r",
                    self.name, self.target, attempt, str(e),
                )  # fmt: skip
                # While closing, stop waiting between attempts so close() stays bounded.
                if self._closing.wait(delay):
                    delay = 0.0
                delay = min(self._max_backoff_s, max(delay, self._backoff_s) * 2)
            else:
                NOTIFICATIONS.labels(self.name, self.target, "sent").inc()
                return

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued, waiting at most ``timeout_s``; later puts are dropped."""
        self._closing.set()
        deadline = time.monotonic() + timeout_s
        try:
            self._q.put(_STOP, timeout=max(0.0, timeout_s))
        except queue.Full:
            log.warning("event=notifier_close_timeout notifier=%s queued=%d", self.name, self._q.qsize())
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.warning("event=notifier_close_timeout notifier=%s queued=%d", self.name, self._q.qsize())
