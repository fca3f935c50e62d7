"""Acceptance: out-of-order and late delivery give the same totals as in-order delivery."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from support.truth import assert_totals_equal, emit_all, make_events, stored_totals

from pipeline import clickhouse

pytestmark = pytest.mark.integration

PRODUCTS = ["checkout", "search", "profile"]


def _late_counts(settings) -> int:
    with clickhouse.opened(settings) as client:
        return client.query("SELECT sum(late_events) FROM pulse.product_metrics_1m FINAL").result_rows[0][0]


def _per_minute(settings) -> dict:
    with clickhouse.opened(settings) as client:
        rows = client.query(
            "SELECT product, version, minute, sum(events), sum(requests), sum(sessions_crashed) "
            "FROM pulse.product_metrics_1m FINAL GROUP BY product, version, minute"
        ).result_rows
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


def test_shuffled_and_late_events_give_in_order_totals(settings, start_worker, tmp_path):
    events = make_events(20_000, PRODUCTS, seed=41, spread_s=3 * 3600)
    in_order = sorted(events, key=lambda e: e["ts"])

    # Shuffle within 10-minute blocks, and hold 2% back to arrive an hour after their time.
    rng = random.Random(42)
    blocks: dict[int, list] = {}
    for e in in_order:
        blocks.setdefault(int(datetime.fromisoformat(e["ts"]).timestamp()) // 600, []).append(e)
    shuffled, held_back = [], []
    for block in blocks.values():
        rng.shuffle(block)
        for e in block:
            (held_back if rng.random() < 0.02 else shuffled).append(e)
    for e in held_back:  # deliver each one after events an hour newer than it
        newer = datetime.fromisoformat(e["ts"]) + timedelta(hours=1)
        at = next((i for i, x in enumerate(shuffled) if datetime.fromisoformat(x["ts"]) > newer), len(shuffled))
        shuffled.insert(at, e)
    assert sorted(e["event_id"] for e in shuffled) == sorted(e["event_id"] for e in events)

    ordered_settings = settings
    shuffled_settings = settings.model_copy(
        update={
            "topic_prefix": settings.topic_prefix + "-shuffled",
            "consumer_group": settings.consumer_group + "_shuffled",
            "data_dir": tmp_path / "shuffled",
        }
    )
    from pipeline.kafka.admin import delete_topics, ensure_topics

    ensure_topics(shuffled_settings)
    for s, stream in ((ordered_settings, in_order), (shuffled_settings, shuffled)):
        worker = start_worker(s, name=s.consumer_group)
        emit_all(s, stream)
        worker.wait_drained(s.events_topic, timeout_s=180)
        worker.stop()

    delete_topics(shuffled_settings)
    assert_totals_equal(stored_totals(shuffled_settings), stored_totals(ordered_settings))
    assert _per_minute(shuffled_settings) == _per_minute(ordered_settings)
    assert _late_counts(ordered_settings) == 0
    assert _late_counts(shuffled_settings) >= len(held_back) > 0
