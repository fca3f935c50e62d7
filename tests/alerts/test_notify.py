"""Notifiers against a real local HTTP server: payloads, retries, outages, the bounded queue."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support.net import free_port

from alerts.notify.alertmanager import AlertmanagerNotifier
from alerts.notify.delivery import DeliveryQueue
from alerts.notify.message import Notification, generator_url
from alerts.notify.webhook import WebhookNotifier
from pipeline.telemetry import NOTIFICATIONS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Receiver:
    """A local HTTP server that records POSTs and answers with the statuses queued in ``answers``."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    code = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.bodies.append((self.path, body))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Hanging:
    """A target that accepts connections and never answers (a hung Alertmanager), for at most ``limit_s``."""

    def __init__(self, limit_s: float = 30.0) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        self.stop = threading.Event()
        self.deadline = time.monotonic() + limit_s
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.thread.start()

    def _hold(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections.append(conn)  # kept open, never read from nor answered
            self.accepted.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    h = Hanging()
    yield h
    h.close()


def note(status: str = "firing", product: str = "search") -> Notification:
    return Notification(
        fingerprint="abc", status=status, labels={"alertname": "A", "product": product, "severity": "page"},
        annotations={"summary": "s"}, starts_at=T0, ends_at=T0 + timedelta(minutes=4),
        generator_url=generator_url({"product": product}, "http://127.0.0.1:6066"),
    )  # fmt: skip


def count(notifier: str, result: str, target: str | None = None) -> float:
    """Deliveries counted for ``notifier`` with ``result``, at ``target`` or summed over every target."""
    return sum(
        s.value
        for metric in NOTIFICATIONS.collect()
        for s in metric.samples
        if s.name.endswith("_total")
        and s.labels["notifier"] == notifier
        and s.labels["result"] == result
        and (target is None or s.labels["target"] == target)
    )


def test_alertmanager_payload_is_api_v2(receiver: Receiver) -> None:
    n = AlertmanagerNotifier(receiver.url)
    sent = count("alertmanager", "sent")
    assert n.notify([note(), note("resolved", "feed")])
    n.close(5)
    ((path, body),) = receiver.bodies
    assert path == "/api/v2/alerts"
    assert body[0] == {
        "labels": {"alertname": "A", "product": "search", "severity": "page"},
        "annotations": {"summary": "s"},
        "startsAt": "2026-03-01T12:00:00.000Z",
        "endsAt": "2026-03-01T12:04:00.000Z",
        "generatorURL": "http://127.0.0.1:6066/products/search",
    }
    assert len(body) == 2 and count("alertmanager", "sent") == sent + 1


def test_webhook_body_and_secret_url(receiver: Receiver) -> None:
    from pydantic import SecretStr

    n = WebhookNotifier(SecretStr(receiver.url + "/hook?token=t0ps3cret"))
    assert "t0ps3cret" not in repr(n.__dict__)
    n.notify([note("resolved")])
    n.close(5)
    ((path, body),) = receiver.bodies
    assert path == "/hook?token=t0ps3cret"
    assert body["status"] == "resolved" and body["version"] == "4" and body["receiver"] == "productpulse"
    assert body["alerts"][0]["status"] == "resolved" and len(body["alerts"][0]["fingerprint"]) == 16
    assert body["alerts"][0]["labels"]["product"] == "search"


def test_transient_failures_are_retried_a_bounded_number_of_times(receiver: Receiver) -> None:
    receiver.answers = [503, 502]
    sent, failed = count("alertmanager", "sent"), count("alertmanager", "failed")
    n = AlertmanagerNotifier(receiver.url, attempts=3, backoff_s=0.01)
    n.notify([note()])
    n.close(10)
    assert len(receiver.bodies) == 3 and count("alertmanager", "sent") == sent + 1
    receiver.answers = [503, 503, 503, 503]
    n = AlertmanagerNotifier(receiver.url, attempts=3, backoff_s=0.01)
    n.notify([note()])
    n.close(10)
    assert len(receiver.bodies) == 6 and count("alertmanager", "failed") == failed + 1


def test_a_permanent_refusal_is_not_retried(receiver: Receiver) -> None:
    receiver.answers = [400]
    failed = count("webhook", "failed")
    n = WebhookNotifier(receiver.url, attempts=4, backoff_s=0.01)
    n.notify([note()])
    n.close(10)
    assert len(receiver.bodies) == 1 and count("webhook", "failed") == failed + 1


def test_an_outage_never_blocks_the_caller_and_is_counted() -> None:
    failed = count("alertmanager", "failed")
    n = AlertmanagerNotifier(f"http://127.0.0.1:{free_port()}", attempts=2, backoff_s=0.01, timeout_s=1)
    assert n.notify([note()]) is True  # queued, not delivered: returns at once
    n.close(10)
    assert count("alertmanager", "failed") == failed + 1


NOTIFIERS: dict[str, Callable[[str], Any]] = {
    "alertmanager": lambda url: AlertmanagerNotifier(url, timeout_s=0.5, attempts=2, backoff_s=0.01),
    "webhook": lambda url: WebhookNotifier(url, timeout_s=0.5, attempts=2, backoff_s=0.01),
}


@pytest.mark.parametrize("name", sorted(NOTIFIERS))
def test_a_hung_target_never_blocks_the_caller_and_delivery_ends(hanging: Hanging, name: str) -> None:
    failed = count(name, "failed")
    n = NOTIFIERS[name](hanging.url)
    started = time.monotonic()
    queued = [n.notify([note()]) for _ in range(5)]  # what Evaluator.evaluate calls once per evaluation
    took = time.monotonic() - started
    assert queued == [True] * 5 and took < 0.2, took
    assert hanging.accepted.wait(5)  # the delivery thread is connected and waiting for an answer that never comes
    # Every delivery gives up after its attempts x timeout (2 x 0.5 s), so five end within ~5 s, all counted failed.
    started = time.monotonic()
    n.close(15)
    assert time.monotonic() - started < 10
    assert count(name, "failed") == failed + 5


def test_closing_on_a_hung_target_is_bounded(hanging: Hanging) -> None:
    n = AlertmanagerNotifier(hanging.url, timeout_s=5, attempts=4, backoff_s=0.01)
    assert n.notify([note()]) and n.notify([note()])
    assert hanging.accepted.wait(5)
    started = time.monotonic()
    n.close(0.5)  # a stopping worker waits this long at most, whatever the target does
    assert time.monotonic() - started < 1.5


def test_a_full_queue_drops_and_counts() -> None:
    release = threading.Event()
    delivered: list[Any] = []

    def slow(item: Any) -> None:
        release.wait(10)
        delivered.append(item)

    q = DeliveryQueue("test-queue", slow, maxsize=2, attempts=1)
    dropped = count("test-queue", "dropped")
    results = [q.put(i) for i in range(6)]  # one in flight, two queued, the rest dropped
    assert results.count(False) >= 3 and count("test-queue", "dropped") == dropped + results.count(False)
    release.set()
    q.close(10)
    assert len(delivered) == results.count(True)


def test_generator_urls() -> None:
    assert generator_url({"product": "search"}, "http://h:6066/") == "http://h:6066/products/search"
    assert (
        generator_url({"product": "search", "version": "1.10.0"}, "http://h:6066")
        == "http://h:6066/products/search?version=1.10.0"
    )
    assert (
        generator_url({"product": "a b", "version": "2"}, "http://h:6066", "https://grafana.example/")
        == "https://grafana.example/d/pulse-product?var-product=a+b&var-version=2"
    )


def test_the_grafana_link_opens_the_product_dashboard_that_is_provisioned() -> None:
    """The uid in a page's link is the one the product dashboard is rendered (and committed) with."""
    import dashboards.product
    from pipeline.cli.main import DASHBOARDS_DIR

    committed = json.loads((DASHBOARDS_DIR / f"{dashboards.product.UID}.json").read_text())
    path = generator_url({"product": "search"}, "http://h:6066", "https://g").split("?")[0]
    assert path == f"https://g/d/{committed['uid']}"
