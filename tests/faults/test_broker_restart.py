"""Faults: the Kafka broker stops and comes back in the middle of a stream, under the producer and the worker.

A broker of the test's own (another port, its own data folder, so the session's
broker and other tests are untouched) is stopped while the emitter is producing
and the worker consuming, and started again on the same data. Afterwards every
event is stored exactly once and every total equals the ground truth.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.truth import assert_totals_equal, ground_truth, make_events, stored_totals

from pipeline import clickhouse
from pipeline.kafka.admin import delete_topics, ensure_topics
from pipeline.kafka.emitter import Emitter
from pipeline.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"


def _two_free_ports() -> int:
    """A port p with p and p+1 free (the broker listens on p, its controller on p+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


class Broker:
    def __init__(self, port: int, data: Path) -> None:
        self.env = {**os.environ, "PULSE_KAFKA_PORT": str(port), "PULSE_KAFKA_DATA": str(data)}

    def run(self, action: str) -> None:
        subprocess.run(["bash", str(KAFKA_SH), action], env=self.env, check=True, timeout=120, capture_output=True)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[Broker, str]]:
    port = _two_free_ports()
    broker = Broker(port, tmp_path / "kafka-data")
    broker.run("start")
    try:
        yield broker, f"127.0.0.1:{port}"
    finally:
        broker.run("stop")


def test_broker_stopped_and_restarted_mid_stream_loses_and_doubles_nothing(own_broker, start_worker, tmp_path):
    broker, bootstrap = own_broker
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix="restart", consumer_group="restart", topic_partitions=4,
        data_dir=tmp_path / "data", metrics_port=0, web_port=0, batch_within_s=0.5,
    )  # fmt: skip
    ensure_topics(settings)
    events = make_events(30_000, ["checkout", "search", "feed"], seed=83)
    worker = start_worker(settings)

    produced = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with Emitter(settings) as em:
                for i, e in enumerate(events):
                    em.emit(e)
                    if i % 1_000 == 999:
                        time.sleep(0.2)  # ~6 s of traffic, so the outage lands in the middle of it
                em.flush(timeout=180)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            produced.set()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(2.5)
    broker.run("stop")  # under the producer (sending) and the worker (consuming)
    time.sleep(5)
    broker.run("start")
    producer.join(timeout=240)
    assert produced.is_set() and errors == [], errors

    worker.wait_drained(settings.events_topic, timeout_s=240)
    assert worker.alive(), "the worker must ride out the outage"
    worker.stop()
    with clickhouse.opened(settings) as client:
        n_rows, n_ids = client.query("SELECT count(), uniqExact(event_id) FROM pulse.events FINAL").result_rows[0]
    assert (n_rows, n_ids) == (30_000, 30_000)
    assert_totals_equal(stored_totals(settings), ground_truth(events))
    delete_topics(settings)
