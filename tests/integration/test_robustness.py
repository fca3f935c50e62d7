"""Robust ingestion on the real broker and the real engine: poison events, id-less replays, other configurations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer
from pydantic import SecretStr
from support.truth import assert_totals_equal, ground_truth, make_events, stored_totals

from pipeline import clickhouse
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

PRODUCTS = ["checkout", "search"]


def _produce(settings: Settings, values: list[bytes], key: bytes | None = b"checkout:u1") -> None:
    """Raw messages, one event each, as a producer other than our SDK sends them."""
    producer = KafkaProducer(acks="all", **kafka_python_config(settings))
    for value in values:
        producer.send(settings.events_topic, value=value, key=key)
    producer.flush(30)
    producer.close()


def _dead_letters(settings: Settings) -> list[dict[str, str]]:
    consumer = KafkaConsumer(
        settings.dlq_topic, auto_offset_reset="earliest", consumer_timeout_ms=4000, **kafka_python_config(settings)
    )
    out = [{k: v.decode() for k, v in m.headers} for m in consumer]
    consumer.close()
    return out


def test_an_event_from_1969_is_dead_lettered_and_never_stalls_what_follows(settings, start_worker):
    poison = {"type": "session_started", "product": "checkout", "version": "1.0.0",
              "ts": "1969-12-31T23:59:00Z", "user_id": "u1"}  # fmt: skip
    good = make_events(100, PRODUCTS, seed=19)
    worker = start_worker(settings)
    _produce(settings, [json.dumps(poison).encode()] + [json.dumps(e).encode() for e in good])
    worker.wait_drained(settings.events_topic, timeout_s=120)
    assert worker.alive()

    dead = _dead_letters(settings)
    assert [d["error.reason"] for d in dead] == ["past_ts"]
    assert "1969-12-31" in dead[0]["error.detail"]

    t0 = time.monotonic()
    assert worker.stop(timeout_s=30) == 0
    assert time.monotonic() - t0 < 10, "the worker must stop within 10 s of SIGTERM"
    assert_totals_equal(stored_totals(settings), ground_truth(good))
    with clickhouse.opened(settings) as client:
        assert client.query("SELECT count() FROM pulse.events FINAL").result_rows[0][0] == 100
        assert client.query("SELECT reason FROM pulse.ingestion_errors").result_rows == [("past_ts",)]


def test_replaying_id_less_messages_from_offset_zero_stores_them_once(settings, start_worker):
    events = make_events(300, PRODUCTS, seed=23)
    for e in events:
        del e["event_id"]
    _produce(settings, [json.dumps(e).encode() for e in events], key=None)
    worker = start_worker(settings)
    worker.wait_drained(settings.events_topic, timeout_s=120)
    worker.stop()
    with clickhouse.opened(settings) as client:
        first = client.query("SELECT count(), uniqExact(event_id) FROM pulse.events FINAL").result_rows[0]
    assert first == (300, 300)

    replay = settings.model_copy(update={"consumer_group": settings.consumer_group + "-replay"})
    worker = start_worker(replay, name="replay")
    worker.wait_drained(settings.events_topic, timeout_s=120)
    worker.stop()
    with clickhouse.opened(settings) as client:
        again = client.query("SELECT count(), uniqExact(event_id) FROM pulse.events FINAL").result_rows[0]
    assert again == first
    assert_totals_equal(stored_totals(settings), ground_truth(events))


def test_worker_with_a_chdb_dsn_elsewhere_and_a_data_dir_that_does_not_exist_yet(settings, start_worker, tmp_path):
    store = tmp_path / "elsewhere" / "store"
    configured = settings.model_copy(
        update={"data_dir": tmp_path / "not" / "yet" / "there", "clickhouse_dsn": SecretStr(f"chdb://{store}")}
    )
    events = make_events(200, PRODUCTS, seed=29)
    worker = start_worker(configured)
    _produce(configured, [json.dumps(e).encode() for e in events])
    worker.wait_drained(configured.events_topic, timeout_s=120)
    assert worker.stop() == 0
    assert (tmp_path / "not" / "yet" / "there" / "faust").is_dir()
    assert store.is_dir()
    with clickhouse.opened(configured) as client:
        assert client.query("SELECT count() FROM pulse.events FINAL").result_rows[0][0] == 200


def _pulse(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PULSE_KAFKA_BOOTSTRAP": "localhost"}, "PULSE_KAFKA_BOOTSTRAP"),
        ({"PULSE_KAFKA_SECURITY_PROTOCOL": "SSL", "PULSE_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
         "PULSE_KAFKA_SSL_CAFILE"),
        ({"PULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PULSE_KAFKA_SASL_USERNAME": "u"},
         "PULSE_KAFKA_SASL_MECHANISM"),
        ({"PULSE_CONSUMER_GROUP": "bad group"}, "PULSE_CONSUMER_GROUP"),
        ({"PULSE_TOPIC_PARTITIONS": "twelve"}, "PULSE_TOPIC_PARTITIONS"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_line_and_exit_2_before_anything_starts(env, variable, tmp_path):
    done = _pulse({**env, "PULSE_DATA_DIR": str(tmp_path / "d")}, "worker")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists(), "nothing may start before the settings are valid"


def test_debug_shows_the_traceback(tmp_path):
    done = _pulse({"PULSE_KAFKA_BOOTSTRAP": "localhost"}, "worker", "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_a_kafka_style_group_name_is_accepted(settings, start_worker):
    grouped = settings.model_copy(update={"consumer_group": f"pulse-prod.eu-{uuid.uuid4().hex[:6]}"})
    events = make_events(50, PRODUCTS, seed=37)
    worker = start_worker(grouped)
    _produce(grouped, [json.dumps(e).encode() for e in events])
    worker.wait_drained(grouped.events_topic, timeout_s=120)
    assert worker.stop() == 0


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_demo_and_bench_refuse_a_server_dsn_without_a_scratch_database(command):
    done = _pulse({"PULSE_CLICKHOUSE_DSN": "http://user:secret@127.0.0.1:1/pulse"}, command)
    assert done.returncode == 2
    assert "--scratch-database" in done.stderr and "secret" not in done.stderr
