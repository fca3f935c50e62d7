"""Acceptance: a real worker on a ClickHouse server - events through the real broker land exactly over HTTP.

The server is the test-only stand-in (``tests/support/chserver.py``); the worker
is ``pulse worker`` with ``PULSE_CLICKHOUSE_DSN=http://user:pass@host:port/``,
so everything it does against the store - migrations, Arrow and Native
inserts, takeovers, retries - runs through clickhouse-connect's HTTP client.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.chserver import ChServer
from support.net import free_port
from support.truth import assert_totals_equal, emit_all, ground_truth, make_events, stored_totals

from pipeline import clickhouse
from pipeline.kafka.admin import consumer_lag
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

PRODUCTS = ["checkout", "search", "profile", "feed"]


def on_server(settings: Settings, server: ChServer, database: str = "pulse") -> Settings:
    return Settings(**{**settings.model_dump(), "clickhouse_dsn": server.dsn(), "clickhouse_database": database})


def stored_rows(settings: Settings) -> tuple[int, int]:
    with clickhouse.opened(settings) as client:
        db = settings.clickhouse_database
        return client.query(f"SELECT count(), uniqExact(event_id) FROM {db}.events FINAL").result_rows[0]


def test_a_worker_on_a_clickhouse_server_stores_events_exactly(settings, clickhouse_server, start_worker):
    store = on_server(settings, clickhouse_server, f"pulse_{settings.consumer_group}")
    events = make_events(20_000, PRODUCTS, seed=81)
    worker = start_worker(store)
    emit_all(store, events)
    worker.wait_drained(store.events_topic, timeout_s=240)
    worker.stop()

    assert "clickhouse=server" in worker.log_text()
    assert stored_rows(store) == (20_000, 20_000)
    assert_totals_equal(stored_totals(store), ground_truth(events))


def test_a_server_that_goes_away_mid_stream_loses_and_doubles_nothing(settings, start_worker, tmp_path: Path):
    """The server stops under the worker (connection refused), then comes back on its port.

    The worker classifies the failures as transient, retries its batch with
    backoff, never acknowledges it meanwhile, and resumes when the server is
    back: the totals are exact.
    """
    server = ChServer(tmp_path / "server", tmp_path / "server.log").start(port=free_port())
    try:
        store = on_server(settings, server)
        events = make_events(30_000, PRODUCTS, seed=82)
        worker = start_worker(store)
        emit_all(store, events[:10_000])
        worker.wait_drained(store.events_topic, timeout_s=120)
        server.stop(kill=True)
        emit_all(store, events[10_000:])  # batches the worker cannot store yet
        worker.wait_for_log("class=transient", timeout_s=60)
        time.sleep(3)  # a few retries with backoff
        assert worker.alive(), "a store that went away is transient: the worker waits for it"
        assert consumer_lag(store, store.events_topic) > 0, "nothing is acknowledged while the store is away"
        server.start()  # the same port and folder: a server that restarted
        worker.wait_drained(store.events_topic, timeout_s=240)
        worker.stop()

        assert "event=store_retry" in worker.log_text()
        assert stored_rows(store) == (30_000, 30_000)
        assert_totals_equal(stored_totals(store), ground_truth(events))
    finally:
        server.stop()
