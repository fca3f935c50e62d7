"""Faults: SIGKILL the worker in the middle of a stream; after a restart every total is still exact."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.truth import assert_totals_equal, emit_all, ground_truth, make_events, stored_totals

from pipeline import clickhouse
from pipeline.kafka.admin import consumer_lag

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

PRODUCTS = ["checkout", "search", "profile", "feed", "billing"]


def _breakdown(settings) -> dict[tuple[str, str, str], tuple[int, int, float]]:
    with clickhouse.opened(settings) as client:
        rows = client.query(
            "SELECT product, kind, name, sum(count), sum(ok), sum(value_sum) "
            "FROM pulse.breakdown_metrics_1m FINAL GROUP BY product, kind, name"
        ).result_rows
    return {(p, k, n): (c, ok, round(v, 6)) for p, k, n, c, ok, v in rows}


def _breakdown_truth(events) -> dict[tuple[str, str, str], tuple[int, int, float]]:
    out: dict[tuple[str, str, str], list[float]] = {}
    for e in events:
        if e["type"] == "feature_used":
            t = out.setdefault((e["product"], "feature", e["feature"]), [0, 0, 0.0])
            t[0], t[1], t[2] = t[0] + 1, t[1] + int(e["success"]), t[2] + e.get("duration_ms", 0.0)
        elif e["type"] == "conversion":
            t = out.setdefault((e["product"], "goal", e["goal"]), [0, 0, 0.0])
            t[0], t[1], t[2] = t[0] + 1, t[1] + 1, t[2] + e["value"]
    return {k: (int(c), int(ok), round(v, 6)) for k, (c, ok, v) in out.items()}


def test_sigkill_mid_stream_then_restart_is_exact(settings, start_worker):
    total = 200_000
    events = make_events(total, PRODUCTS, seed=31)
    emit_all(settings, events)  # the whole stream is in Kafka before the worker starts

    for kill in range(2):
        worker = start_worker(settings, name=f"doomed{kill}")
        # Let it make progress, then kill it without warning, mid-stream.
        deadline = time.monotonic() + 120
        target = total * (0.7 - 0.3 * kill)
        while consumer_lag(settings, settings.events_topic) > target and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.3)
        family = worker.pids()
        assert len(family) >= 2, "the worker decodes in a process of its own"
        worker.kill()
        assert consumer_lag(settings, settings.events_topic) > 0, "the kill must land mid-stream"
        assert _all_gone(family, within_s=10), "the decode process must end with the worker"

    survivor = start_worker(settings, name="survivor")
    survivor.wait_drained(settings.events_topic, timeout_s=300)
    survivor.stop()

    with clickhouse.opened(settings) as client:
        n_rows, n_ids = client.query("SELECT count(), uniqExact(event_id) FROM pulse.events FINAL").result_rows[0]
    assert (n_rows, n_ids) == (total, total)
    assert_totals_equal(stored_totals(settings), ground_truth(events))
    assert _breakdown(settings) == _breakdown_truth(events)


def _all_gone(pids: list[int], within_s: float) -> bool:
    """Whether every process in ``pids`` has ended (a zombie waiting to be reaped counts as ended)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                alive.append(pid)
        if not alive:
            return True
        time.sleep(0.2)
    return False
