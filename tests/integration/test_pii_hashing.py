"""Acceptance: with PULSE_PII_HASH_KEY set, no user_id or session_id as sent reaches the store or the DLQ.

Real broker, real worker. Every sent id is made recognisable (``raw-user-``,
``raw-session-``), so one substring search over every string column of every
table, and over every dead letter's key, value and headers, finds any that
slipped through un-hashed. The unique-user metrics, read through ``pulse metrics
query`` as a user reads them, equal the truth computed on the hashed ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer
from pydantic import SecretStr
from support.net import free_port
from support.truth import emit_all, make_events

from pipeline import clickhouse
from pipeline.kafka.config import kafka_python_config
from pipeline.kafka.emitter import Emitter
from pipeline.pii import Pseudonymizer

pytestmark = pytest.mark.integration

KEY = "integration-pii-key-7f3a9c"
PRODUCTS = ["checkout", "search"]
MARKS = (b"raw-user-", b"raw-session-")


def _events() -> list[dict]:
    events = make_events(4_000, PRODUCTS, seed=31)
    for e in events:
        e["user_id"] = f"raw-user-{e['user_id']}"
        e["session_id"] = f"raw-session-{e['session_id']}"
    return events


def _send_bad(settings) -> int:
    """Dead letters of every kind that carries ids: invalid, not JSON, and valid but too far ahead."""
    future = {**make_events(1, PRODUCTS, seed=32)[0], "user_id": "raw-user-future", "session_id": "raw-session-f"}
    future["ts"] = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    bad = [
        (b"checkout:raw-user-invalid", json.dumps({"type": "request", "product": "checkout",
                                                    "user_id": "raw-user-invalid", "session_id": "raw-session-i"})),
        (b"checkout:raw-user-cut", '{"type": "request", "user_id": "raw-user-cut", "session_id": "raw-session-c'),
        (b"checkout:raw-user-future", json.dumps(future)),
    ]  # fmt: skip
    with Emitter(settings) as em:
        for key, value in bad:
            em.send_raw(settings.events_topic, value.encode(), key=key)
    return len(bad)


def _pulse(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.to_env()}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_no_raw_id_is_stored_or_dead_lettered_and_unique_users_hold(settings, start_worker):
    settings = settings.model_copy(update={"pii_hash_key": SecretStr(KEY), "web_port": free_port()})
    pii = Pseudonymizer(KEY.encode())
    events = _events()
    worker = start_worker(settings)
    emit_all(settings, events)
    n_bad = _send_bad(settings)
    worker.wait_drained(settings.events_topic, timeout_s=180)

    names = ["active_users", "crash_free_users"]
    done = _pulse(settings, "metrics", "query", *names, "--since", "7d", "--format", "json")
    assert done.returncode == 0, done.stderr
    got = {row["product"]: row for row in json.loads(done.stdout)}
    worker.stop()

    for product in PRODUCTS:  # the truth on hashed ids: what a unique count of the stored values must give
        mine = [e for e in events if e["product"] == product]
        users = {pii.hash_id(e["user_id"]) for e in mine}
        ended = {pii.hash_id(e["user_id"]) for e in mine if e["type"] == "session_ended"}
        crashed = {pii.hash_id(e["user_id"]) for e in mine if e["type"] == "session_ended" and e["status"] == "crashed"}
        assert got[product]["active_users"] == len(users)
        assert got[product]["crash_free_users"] == pytest.approx(1 - len(crashed) / len(ended), rel=1e-9)

    with clickhouse.opened(settings) as client:
        stored = client.query("SELECT product, groupUniqArray(user_id) FROM pulse.events FINAL GROUP BY product")
        for product, ids in stored.result_rows:
            assert set(ids) == {pii.hash_id(e["user_id"]) for e in events if e["product"] == product}
        columns = client.query(
            "SELECT table, name FROM system.columns WHERE database = 'pulse' AND type LIKE '%String%'"
        ).result_rows
        assert {t for t, _ in columns} >= {"events", "ingestion_errors"}
        for table, column in columns:
            hits = client.query(
                f"SELECT count() FROM pulse.`{table}` WHERE position(toString(`{column}`), 'raw-user-') > 0 "
                f"OR position(toString(`{column}`), 'raw-session-') > 0"
            ).result_rows[0][0]
            assert hits == 0, f"{table}.{column} holds ids as sent"
        assert client.query("SELECT count() FROM pulse.ingestion_errors FINAL").result_rows[0][0] == n_bad

    consumer = KafkaConsumer(
        settings.dlq_topic, auto_offset_reset="earliest", consumer_timeout_ms=5000, **kafka_python_config(settings)
    )
    dead = list(consumer)
    consumer.close()
    assert len(dead) == n_bad
    for m in dead:
        seen = (m.key or b"") + (m.value or b"") + b"".join(v for _, v in m.headers)
        assert not any(mark in seen for mark in MARKS), seen
    future = next(json.loads(m.value) for m in dead if dict(m.headers)["error.reason"] == b"future_ts")
    assert future["user_id"] == pii.hash_id("raw-user-future")
