"""pipeline.probes.Probe: a failing check says only its error's class; a hanging one fails once stale; both recover."""

from __future__ import annotations

import threading
import time

from pipeline.probes import Probe


def _wait_until(probe: Probe, ok: bool, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = probe.result()
        if result.ok is ok:
            return result.detail
        time.sleep(0.02)
    raise AssertionError(f"{probe.name} not ok={ok} within {timeout_s}s: {probe.result()}")


def test_a_failing_check_reports_its_class_not_its_message_and_recovers():
    broken = threading.Event()
    broken.set()

    def call() -> str:
        if broken.is_set():
            raise ConnectionError("http://pulse:hunter2-secret@db:8123 refused")
        return "fine"

    probe = Probe("store", call, interval_s=0.05)
    probe.start()
    try:
        assert _wait_until(probe, False) == "ConnectionError"  # never the message: it may quote a DSN
        broken.clear()
        assert _wait_until(probe, True) == "fine"
    finally:
        probe.stop()


def test_a_check_that_hangs_fails_once_stale_and_recovers_when_it_answers():
    release = threading.Event()
    calls = 0

    def call() -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            release.wait(10)  # the second call hangs until released
        return "up"

    probe = Probe("kafka", call, interval_s=0.05, stale_s=0.5)
    probe.start()
    try:
        assert _wait_until(probe, True) == "up"
        assert _wait_until(probe, False).startswith("no answer for")
        release.set()
        assert _wait_until(probe, True) == "up"
    finally:
        release.set()
        probe.stop()


def test_no_answer_yet_is_not_ready():
    probe = Probe("store", lambda: "up")  # not started
    assert probe.result().ok is False
