"""SASL/TLS, proven: the worker, the Emitter and the collector against a broker that speaks only SASL_SSL.

The broker (``support/secure_kafka.py``, ``kafka.sh secure``) is made for this
module: a CA and keystore from ``keytool``, SCRAM-SHA-512 users created at
format time, one KRaft node on a free loopback port. Events sent by the SDK
and by the collector over SASL_SSL land in the worker's store; with a wrong
password, or none, each client fails in one line that names the broker, the
user and the mechanism, within a bound, without a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaTimeoutError
from support.collector import CHECKOUT_KEY, serve, with_keys
from support.net import free_port
from support.secure_kafka import MECHANISM, SecureKafka
from support.truth import assert_totals_equal, emit_all, ground_truth, make_events, stored_totals

from pipeline import clickhouse
from pipeline.kafka.admin import delete_topics, ensure_topics
from pipeline.kafka.config import kafka_python_config
from pipeline.kafka.emitter import EmitFailed, Emitter
from pipeline.settings import InvalidSettings, Settings

pytestmark = pytest.mark.integration

FAIL_WITHIN_S = 30.0  # a refused login is reported within this, never waited out
WRONG = "not-the-password"


def refused_line(broker: SecureKafka, user: str = "pulse") -> str:
    return f"Kafka at {broker.bootstrap} refused the SASL credentials for user '{user}' ({MECHANISM})"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    kafka = SecureKafka(tmp_path_factory.mktemp("secure-kafka"))
    try:
        kafka.start()
        print(f"SASL_SSL broker on {kafka.bootstrap} ready in {kafka.started_in_s:.1f} s")
        yield kafka
    finally:
        kafka.stop()


def secure_settings(broker: SecureKafka, tmp_path: Path, **kafka: Any) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(
        **{**broker.client_settings(), **kafka},
        topic_prefix=f"sasl-{tag}",
        consumer_group=f"sasl_{tag}",
        topic_partitions=4,
        data_dir=tmp_path / "data",
        metrics_port=0,
        web_port=0,
        batch_within_s=0.5,
    )


def problems(stderr: str) -> list[str]:
    """The lines of a process's stderr that report something: all but its INFO and DEBUG log lines."""
    return [line for line in stderr.strip().splitlines() if not re.match(r"\S+ \S+ (INFO|DEBUG) ", line)]


def pulse(settings: Settings, *args: str, timeout_s: float = 90) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``pulse <args>`` with exactly these settings; returns the result and how long it took."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={**clean, **settings.to_env()}, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    return done, time.monotonic() - started


def test_events_from_the_emitter_and_the_collector_over_sasl_ssl_are_stored(broker, start_worker, tmp_path):
    settings = with_keys(secure_settings(broker, tmp_path))
    ensure_topics(settings)
    try:
        worker = start_worker(settings)
        assert f"{broker.bootstrap}" in settings.kafka_bootstrap and settings.kafka_security_protocol == "SASL_SSL"
        by_sdk = make_events(2_000, ["checkout", "search"], seed=11)
        emit_all(settings, by_sdk)
        by_http = make_events(500, ["checkout"], seed=12)

        async def post_all(client) -> list[int]:
            statuses = []
            for i in range(0, len(by_http), 100):
                resp = await client.post(
                    "/v1/events", json=by_http[i : i + 100], headers={"Authorization": f"Bearer {CHECKOUT_KEY}"}
                )
                statuses.append(resp.status)
            return statuses

        assert serve(settings, post_all) == [202] * 5
        worker.wait_drained(settings.events_topic, timeout_s=120)
        worker.stop()
        with clickhouse.opened(settings) as client:
            ids = {r[0] for r in client.query("SELECT toString(event_id) FROM pulse.events FINAL").result_rows}
        assert ids == {e["event_id"] for e in by_sdk + by_http}
        assert_totals_equal(stored_totals(settings), ground_truth(by_sdk + by_http))
    finally:
        delete_topics(settings)


def test_the_broker_speaks_only_sasl_ssl(broker):
    """What the other tests prove is worth proving: a client without TLS and SASL gets nowhere."""
    tls_only = broker.client_settings()
    for kafka in (
        {"kafka_bootstrap": broker.bootstrap},  # PLAINTEXT
        {k: v for k, v in tls_only.items() if not k.startswith("kafka_sasl")} | {"kafka_security_protocol": "SSL"},
    ):
        config = kafka_python_config(Settings(**kafka))
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            KafkaAdminClient(client_id="pulse-test", bootstrap_timeout_ms=3000, **config)


@pytest.mark.parametrize("user", ["pulse", "nobody"])
def test_a_worker_with_a_refused_login_exits_with_one_line(broker, tmp_path, user):
    settings = secure_settings(broker, tmp_path, kafka_sasl_username=user, kafka_sasl_password=WRONG)
    done, took = pulse(settings, "worker")
    assert done.returncode == 2, done.stderr[-2000:]
    assert problems(done.stderr) == [
        f"pulse: {refused_line(broker, user)}; check PULSE_KAFKA_SASL_USERNAME and PULSE_KAFKA_SASL_PASSWORD"
    ], done.stderr[-3000:]
    assert WRONG not in done.stderr + done.stdout
    assert took < FAIL_WITHIN_S, took
    print(f"worker, user {user!r}: refused in {took:.1f} s")


def test_a_collector_with_a_wrong_password_exits_with_one_line(broker, tmp_path):
    settings = with_keys(secure_settings(broker, tmp_path, kafka_sasl_password=WRONG))
    done, took = pulse(settings, "collector", "--host", "127.0.0.1", "--port", str(free_port()))
    assert done.returncode == 2, done.stderr[-2000:]
    lines = problems(done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"pulse: {refused_line(broker)}"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and WRONG not in done.stderr
    assert took < FAIL_WITHIN_S, took
    print(f"collector: refused in {took:.1f} s")


def test_an_emitter_with_a_wrong_password_fails_every_event_at_once_in_one_line(broker, tmp_path, monkeypatch, caplog):
    settings = secure_settings(broker, tmp_path, kafka_sasl_password=WRONG)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)
    events = make_events(50, ["checkout"], seed=13)
    started = time.monotonic()
    em = Emitter.from_env()
    assert time.monotonic() - started < 1.0, "from_env connects in the background"
    assert all(em.send(e) is not None for e in events[:25])  # queued before the refusal is known
    pending = em.flush(timeout=FAIL_WITHIN_S)
    took = time.monotonic() - started
    assert pending == 0 and em.failed == 25 and took < FAIL_WITHIN_S, (pending, em.failed, took)
    # after the refusal: every event fails at once, nothing waits
    assert all(em.send(e) is None for e in events[25:]) and em.failed == 50 and em.flush(timeout=1) == 0
    with pytest.raises(EmitFailed, match="refused the SASL credentials"):
        em.emit(events[0])
    em.close(timeout=5)
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1, problems
    assert "error=LoginRefused" in problems[0] and refused_line(broker) in problems[0]
    assert WRONG not in caplog.text
    print(f"emitter: 25 events failed in {took:.1f} s")


def test_without_a_password_each_client_refuses_to_start_in_one_line(broker, tmp_path, monkeypatch):
    env = {k: v for k, v in secure_settings(broker, tmp_path).to_env().items() if k != "PULSE_KAFKA_SASL_PASSWORD"}
    wanted = "PULSE_KAFKA_SASL_USERNAME and PULSE_KAFKA_SASL_PASSWORD"
    for args in (["worker"], ["collector", "--port", str(free_port())]):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *args], env={**clean, **env, "PULSE_COLLECTOR_WRITE_KEYS": "a=b"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and wanted in lines[0], (args, done.stderr[-2000:])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidSettings) as info:
        Emitter.from_env()
    assert "\n" not in str(info.value) and wanted in str(info.value)
