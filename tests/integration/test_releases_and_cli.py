"""Acceptance: releases reach the releases table (CLI and SDK), and `pulse metrics query` reads the catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer
from support.truth import emit_all, make_events

from pipeline import clickhouse
from pipeline.kafka.config import kafka_python_config
from pipeline.kafka.emitter import Emitter

pytestmark = pytest.mark.integration


def _pulse(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.to_env()}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_releases_land_and_metrics_query_reads_them(settings, start_worker):
    worker = start_worker(settings)
    done = _pulse(settings, "release", "--product", "search", "--version", "2.0.0", "--rollout-pct", "25")
    assert done.returncode == 0, done.stderr
    with Emitter(settings) as em:
        em.release({"product": "search", "version": "2.1.0", "released_at": datetime.now(UTC), "commit": "abc123"})
        em.send_raw(settings.releases_topic, b'{"type": "release", "product": "search"}')  # no version
    events = make_events(500, ["search"], seed=9)
    emit_all(settings, events)
    worker.wait_drained(settings.releases_topic, timeout_s=60)
    worker.wait_drained(settings.events_topic, timeout_s=60)
    worker.stop()

    with clickhouse.opened(settings) as client:
        rows = client.query(
            "SELECT product, version, rollout_pct, commit FROM pulse.releases FINAL ORDER BY version"
        ).result_rows
    assert rows == [("search", "2.0.0", 25.0, ""), ("search", "2.1.0", 100.0, "abc123")]

    consumer = KafkaConsumer(
        settings.dlq_topic, auto_offset_reset="earliest", consumer_timeout_ms=5000, **kafka_python_config(settings)
    )
    dead = list(consumer)
    consumer.close()
    assert len(dead) == 1 and dict(dead[0].headers)["error.reason"] == b"invalid"
    assert b"version" in dict(dead[0].headers)["error.detail"]

    done = _pulse(settings, "metrics", "query", "events", "requests", "--since", "1d", "--format", "json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row == {"product": "search", "events": 500, "requests": sum(e["type"] == "request" for e in events)}

    done = _pulse(settings, "metrics", "query", "no_such_metric")
    assert done.returncode != 0 and "unknown metric" in done.stderr
