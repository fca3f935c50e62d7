"""Acceptance: events through the real broker and Faust worker land exactly in ClickHouse (chDB)."""

from __future__ import annotations

import json

import pytest
from support.truth import assert_totals_equal, emit_all, ground_truth, make_events, stored_totals

from pipeline import clickhouse
from pipeline.kafka.emitter import Emitter

pytestmark = pytest.mark.integration

PRODUCTS = ["checkout", "search", "profile", "feed", "billing"]


def test_50k_events_land_exactly(settings, start_worker):
    events = make_events(50_000, PRODUCTS, seed=2)
    worker = start_worker(settings)
    emit_all(settings, events)
    worker.wait_drained(settings.events_topic, timeout_s=240)
    worker.stop()

    with clickhouse.opened(settings) as client:
        n_rows, n_ids = client.query("SELECT count(), uniqExact(event_id) FROM pulse.events FINAL").result_rows[0]
    assert n_rows == 50_000
    assert n_ids == 50_000
    assert_totals_equal(stored_totals(settings), ground_truth(events))


def test_bad_messages_go_to_dlq_and_good_ones_land(settings, start_worker):
    good = make_events(1_000, PRODUCTS, seed=3)
    valid = json.dumps(good[0]).encode()
    bad_kinds = [
        b"{not json",
        json.dumps({**good[0], "type": "teleport"}).encode(),
        json.dumps({k: v for k, v in good[0].items() if k != "product"}).encode(),
        json.dumps({**good[0], "type": "request", "operation": "x", "latency_ms": "fast"}).encode(),
        b'{"pad": "' + b"x" * (settings.max_event_bytes + 10) + b'"}',
    ]
    worker = start_worker(settings)
    em = Emitter(settings)
    sent_bad = 0
    for i, event in enumerate(good):
        em.send_raw(
            settings.events_topic, json.dumps(event).encode(), key=f"{event['product']}:{event['user_id']}".encode()
        )
        if i % 10 == 0:
            em.send_raw(settings.events_topic, bad_kinds[sent_bad % len(bad_kinds)])
            sent_bad += 1
    em.close()
    assert sent_bad == 100 and valid
    worker.wait_drained(settings.events_topic, timeout_s=120)
    assert worker.alive(), "the worker must keep running after bad input"

    from kafka import KafkaConsumer

    from pipeline.kafka.config import kafka_python_config

    consumer = KafkaConsumer(
        settings.dlq_topic, auto_offset_reset="earliest", consumer_timeout_ms=5000, **kafka_python_config(settings)
    )
    dead = list(consumer)
    consumer.close()
    worker.stop()
    assert len(dead) == 100
    reasons = [dict(m.headers)["error.reason"].decode() for m in dead]
    assert set(reasons) == {"bad_json", "unknown_type", "invalid", "oversized"}
    assert all(dict(m.headers).get("error.stage") == b"decode" and dict(m.headers).get("error.at") for m in dead)

    with clickhouse.opened(settings) as client:
        assert client.query("SELECT uniqExact(event_id) FROM pulse.events").result_rows[0][0] == 1_000
        assert client.query("SELECT count() FROM pulse.ingestion_errors FINAL").result_rows[0][0] == 100
    assert_totals_equal(stored_totals(settings), ground_truth(good))


def test_redelivery_and_replay_do_not_double_count(settings, start_worker):
    events = make_events(5_000, PRODUCTS, seed=4)
    worker = start_worker(settings)
    emit_all(settings, events)
    emit_all(settings, events)  # the same batch again, as a producer retry would
    worker.wait_drained(settings.events_topic, timeout_s=120)
    worker.stop()
    truth = ground_truth(events)
    assert_totals_equal(stored_totals(settings), truth)

    # Replay the whole topic from offset 0 with a fresh consumer group on the same ClickHouse.
    replay = settings.model_copy(update={"consumer_group": settings.consumer_group + "_replay"})
    worker = start_worker(replay, name="replay")
    worker.wait_drained(settings.events_topic, timeout_s=120)
    worker.stop()
    assert_totals_equal(stored_totals(settings), truth)
    with clickhouse.opened(settings) as client:
        assert client.query("SELECT count() FROM pulse.events FINAL").result_rows[0][0] == 5_000


def test_worker_exports_prometheus_metrics(settings, start_worker):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings.model_copy(update={"metrics_port": port})
    events = make_events(1_000, PRODUCTS, seed=6)
    worker = start_worker(settings)
    emit_all(settings, events)
    with Emitter(settings) as em:
        em.send_raw(settings.events_topic, b"{broken")
    worker.wait_drained(settings.events_topic, timeout_s=120)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    worker.stop()
    ingested = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("pulse_events_ingested_total{")
    )
    assert ingested == 1_000
    assert 'pulse_events_dead_lettered_total{reason="bad_json"} 1.0' in text
    assert "pulse_batch_seconds_bucket" in text
