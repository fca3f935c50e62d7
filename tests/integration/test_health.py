"""The worker's /healthz and /readyz, and the collector's /readyz, against the real broker and stores.

Probes send no token and name the pod's IP as Host: both routes answer them
while the read API behind the same port still refuses. A worker whose store
(the ClickHouse stand-in, killed) or broker (a broker of the test's own,
stopped) goes away reports not-ready, naming the check, within 30 s, and is
ready again by itself once it is back - the same process, never restarted.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.chserver import ChServer
from support.net import free_port

from pipeline.kafka.admin import ensure_topics
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"
TOKEN = "health-test-token-0123456789"
NOT_READY_WITHIN_S = 30.0
COLLECTOR = [sys.executable, "-m", "pipeline.cli", "collector"]


def get(url: str, host: str | None = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Host": host} if host else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for_status(url: str, status: int, timeout_s: float) -> tuple[float, Any]:
    """Poll ``url`` (as a probe does: no token, a pod IP as Host) until it answers ``status``."""
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout_s:
        try:
            code, body = get(url, host="10.244.1.17:6066")
        except OSError as exc:
            code, body = 0, repr(exc)
        last = (code, body)
        if code == status:
            return time.monotonic() - started, body
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer {status} within {timeout_s}s; last: {last}")


def worker_settings(tmp_path: Path, bootstrap: str, **extra: Any) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"health-{tag}",
        consumer_group=f"health_{tag}",
        topic_partitions=2,
        data_dir=tmp_path / "data",
        metrics_port=0,
        web_port=free_port(),
        web_token=TOKEN,
        batch_within_s=0.5,
        **extra,
    )


def test_probes_need_no_token_and_any_host_while_the_api_still_does(settings, start_worker, tmp_path):
    s = worker_settings(tmp_path, settings.kafka_bootstrap)
    ensure_topics(s)
    start_worker(s)
    base = f"http://127.0.0.1:{s.web_port}"

    assert get(base + "/healthz", host="10.244.1.17:6066") == (200, {"status": "ok"})
    _, body = wait_for_status(base + "/readyz", 200, 60)
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"partitions", "store", "kafka", "lag"}
    assert body["checks"]["partitions"]["detail"].startswith("2 partition(s)")
    assert body["lag"] == 0

    # The guard still holds for everything else on the port.
    assert get(base + "/api/alerts/status")[0] == 401
    assert get(base + "/api/alerts/status", host="10.244.1.17:6066", token=TOKEN)[0] == 421


def test_worker_that_loses_its_store_is_not_ready_in_30s_and_recovers(settings, start_worker, tmp_path):
    server = ChServer(tmp_path / "chserver", tmp_path / "chserver.log").start()
    try:
        s = worker_settings(
            tmp_path, settings.kafka_bootstrap, clickhouse_dsn=server.dsn(), clickhouse_database="pulse_health"
        )
        ensure_topics(s)
        worker = start_worker(s)
        readyz = f"http://127.0.0.1:{s.web_port}/readyz"
        wait_for_status(readyz, 200, 60)

        server.stop(kill=True)
        took, body = wait_for_status(readyz, 503, NOT_READY_WITHIN_S)
        assert body["failing"] == ["store"], body
        assert "stand-in-secret" not in json.dumps(body)  # an error's message (the DSN) is never shown

        server.start(port=server.port)
        wait_for_status(readyz, 200, 30)
        assert worker.alive()
        print(f"store lost: not ready after {took:.1f}s")
    finally:
        server.stop()


def _two_free_ports() -> int:
    """A port p with p and p+1 free (kafka.sh's broker listens on p, its controller on p+1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


@pytest.mark.faults
@pytest.mark.slow
def test_worker_that_loses_its_broker_is_not_ready_in_30s_and_recovers(start_worker, tmp_path):
    port = _two_free_ports()
    env = {**os.environ, "PULSE_KAFKA_PORT": str(port), "PULSE_KAFKA_DATA": str(tmp_path / "kafka-data")}

    def broker(action: str) -> None:
        subprocess.run(["bash", str(KAFKA_SH), action], env=env, check=True, timeout=120, capture_output=True)

    broker("start")
    try:
        s = worker_settings(tmp_path, f"127.0.0.1:{port}")
        ensure_topics(s)
        worker = start_worker(s)
        readyz = f"http://127.0.0.1:{s.web_port}/readyz"
        wait_for_status(readyz, 200, 60)

        broker("stop")
        took, body = wait_for_status(readyz, 503, NOT_READY_WITHIN_S)
        assert "kafka" in body["failing"], body

        broker("start")
        wait_for_status(readyz, 200, 90)
        assert worker.alive()
        print(f"broker lost: not ready after {took:.1f}s")
        worker.stop()  # while its broker is up: a worker leaving a group without one waits out its timeouts
    finally:
        broker("stop")


def test_collector_readyz_says_whether_kafka_is_reachable(settings, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        **Settings(
            kafka_bootstrap=settings.kafka_bootstrap,
            topic_prefix=settings.topic_prefix,
            collector_port=port,
            collector_write_keys="checkout=k-0123456789",
        ).to_env(),
    }
    log = open(tmp_path / "collector.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(COLLECTOR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _, body = wait_for_status(f"http://127.0.0.1:{port}/readyz", 200, 60)
        assert body["status"] == "ready" and body["kafka"] == "reachable"
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()

    unreachable = {**env, "PULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "PULSE_COLLECTOR_ACK_TIMEOUT_S": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "collector"],
        env=unreachable,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _, body = wait_for_status(f"http://127.0.0.1:{port}/readyz", 503, 30)
        assert body["status"] == "not_ready" and body["kafka"] != "reachable"
    finally:
        proc.terminate()
        proc.wait(20)
