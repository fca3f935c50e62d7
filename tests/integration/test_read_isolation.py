"""Reads never touch ingestion (issue 17, finding 1): a real worker on the real broker.

An expensive read - a backtest of a day at one-minute steps, well over ten
seconds - is in flight while a probe event is posted: the probe is stored
within seconds, because reads run on their own threads with their own client.
A backtest beyond the caps is a 400 that names the limit; a read the client
abandons or that outlives PULSE_WEB_READ_TIMEOUT_S stops (the only read thread
is free again at once); one read too many is a 503; a duration beyond the
calendar is a 400, not a traceback; and SIGTERM does not wait for a read in flight.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from support.net import free_port
from support.truth import emit_all, make_events

pytestmark = pytest.mark.integration

LONG_BACKTEST = "/api/alerts/backtest?since=1d&step=1m"  # 1441 steps


def _get(settings, path: str, timeout: float = 120) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _in_background(settings, path: str) -> dict[str, Any]:
    """GET ``path`` on a thread; the dict gets status, body and seconds when it answers."""
    out: dict[str, Any] = {}

    def ask() -> None:
        started = time.monotonic()
        out["status"], out["body"] = _get(settings, path)
        out["seconds"] = time.monotonic() - started

    out["thread"] = threading.Thread(target=ask, daemon=True)
    out["thread"].start()
    return out


def _stored_within(settings, worker, seed: int) -> float:
    """Post one probe event; the seconds until the worker's group has committed it (commit follows storage)."""
    sent = time.monotonic()
    emit_all(settings, make_events(1, ["probe"], seed=seed, spread_s=1))
    worker.wait_drained(settings.events_topic, timeout_s=120, poll_s=0.1)
    return time.monotonic() - sent


def test_an_expensive_read_in_flight_does_not_delay_ingestion_nor_shutdown(settings, start_worker):
    settings = settings.model_copy(update={"web_port": free_port(), "web_read_timeout_s": 300})
    worker = start_worker(settings)
    emit_all(settings, make_events(500, ["checkout", "search"], seed=3))
    worker.wait_drained(settings.events_topic, timeout_s=120)
    baseline = _stored_within(settings, worker, seed=4)

    read = _in_background(settings, LONG_BACKTEST)
    time.sleep(3)  # the backtest is under way
    assert read["thread"].is_alive(), f"the backtest answered too soon to test anything: {read}"
    delay = _stored_within(settings, worker, seed=5)
    assert delay < baseline + 4, f"probe stored after {delay:.1f}s behind a read (baseline {baseline:.1f}s)"
    assert read["thread"].is_alive(), "the read must still be in flight when the probe is stored"

    started = time.monotonic()
    code = worker.stop(timeout_s=60)
    took = time.monotonic() - started
    assert took < 15, f"SIGTERM took {took:.1f}s with a read in flight"
    assert code == 0, worker.log_text()[-3000:]


def test_reads_are_bounded_capped_and_cancelled(settings, start_worker):
    settings = settings.model_copy(
        update={"web_port": free_port(), "web_read_threads": 1, "web_read_queue": 0, "web_read_timeout_s": 300}
    )
    worker = start_worker(settings)

    # A backtest over the caps is refused at once, naming the limit.
    status, body = _get(settings, "/api/alerts/backtest?since=2000-01-01T00:00:00Z&step=1m", timeout=10)
    assert status == 400 and "PULSE_WEB_BACKTEST_MAX_DAYS" in body and "90 days" in body, (status, body)
    status, body = _get(settings, "/api/alerts/backtest?since=30d&step=1m", timeout=10)
    assert status == 400 and "2000 steps" in body and "PULSE_WEB_BACKTEST_MAX_STEPS" in body, (status, body)

    # A duration beyond the calendar is a 400 too, and leaves no traceback in the log (finding 8).
    for path in ("/api/alerts/backtest?since=999999999d", "/api/metrics/query?names=events&since=999999999d"):
        status, body = _get(settings, path, timeout=10)
        assert status == 400 and "since" in body, (path, status, body)
    assert "Traceback" not in worker.log_text()

    # One thread, no queue: while a read runs, one more is a 503 at once.
    host, port = "127.0.0.1", settings.web_port
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(f"GET {LONG_BACKTEST} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        time.sleep(2)  # the backtest runs on the only read thread
        status, body = _get(settings, "/api/alerts/status", timeout=10)
        assert status == 503 and "busy" in body, (status, body)
    # The client gave up (closed its connection): its read stops, and the thread serves the next one at once.
    started = time.monotonic()
    while time.monotonic() - started < 30:
        status, body = _get(settings, "/api/alerts/status", timeout=10)
        if status == 200:
            break
        time.sleep(0.2)
    freed = time.monotonic() - started
    assert status == 200 and json.loads(body) == [], (status, body)
    assert freed < 5, f"the abandoned backtest held the read thread {freed:.1f}s"
    worker.wait_for_log("event=read_abandoned path=/api/alerts/backtest", timeout_s=5)


def test_a_read_that_outlives_its_timeout_is_answered_and_stops(settings, start_worker):
    settings = settings.model_copy(
        update={"web_port": free_port(), "web_read_threads": 1, "web_read_queue": 0, "web_read_timeout_s": 2}
    )
    start_worker(settings)
    started = time.monotonic()
    status, body = _get(settings, LONG_BACKTEST, timeout=30)
    took = time.monotonic() - started
    assert status == 503 and "PULSE_WEB_READ_TIMEOUT_S" in body, (status, body)
    assert took < 4, f"answered after {took:.1f}s"
    # It stopped: the only read thread serves the next read at once.
    started = time.monotonic()
    while (status := _get(settings, "/api/alerts/status", timeout=10)[0]) != 200 and time.monotonic() - started < 30:
        time.sleep(0.2)
    assert status == 200 and time.monotonic() - started < 3
