"""Shared fixtures: a clean environment, the real local broker, isolated settings per test, worker processes,
and filled stores built once per session.

Integration tests talk to the real Kafka started by ``deploy/local/kafka.sh``
(``.ci/run`` starts it; a test session starts it itself if it is not running
and stops it afterwards). Each test gets its own topic prefix, consumer group
and embedded ClickHouse folder, so tests never see each other's data; and no
test sees the developer's ``PULSE_*`` settings (a ``PULSE_CLICKHOUSE_DSN`` in
the shell would otherwise send test data to that server).

Tests of the ClickHouse server path ask for ``clickhouse_server`` (the
test-only stand-in for a ClickHouse server, ``support/chserver.py``, started
once per session) or ``server_store`` (settings with its HTTP DSN and a
database of the test's own).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.chserver import ChServer
from support.environment import clear_setting_variables
from support.scenario_store import SharedStores

from pipeline.kafka.admin import delete_topics, ensure_topics
from pipeline.settings import Settings
from pipeline.tools import localkafka
from pipeline.tools.workerproc import WorkerProcess


@pytest.fixture(autouse=True)
def _no_pulse_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the defaults, whatever the developer's shell exports."""
    clear_setting_variables(monkeypatch)


@pytest.fixture(scope="session")
def shared_stores(tmp_path_factory: pytest.TempPathFactory) -> SharedStores:
    """Scenario stores filled once per session and reopened by each module that reads them."""
    return SharedStores(tmp_path_factory.mktemp("shared-stores"))


def _broker_up(bootstrap: str) -> bool:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    bootstrap = Settings().kafka_bootstrap
    started = False
    if not _broker_up(bootstrap):
        started = localkafka.start(bootstrap)
    yield bootstrap
    if started:
        localkafka.stop(bootstrap)


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings isolated to this test: own topics, group and ClickHouse folder (topics deleted after)."""
    tag = uuid.uuid4().hex[:10]
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"test-{tag}",
        consumer_group=f"test_{tag}",
        topic_partitions=4,
        data_dir=tmp_path / "data",
        metrics_port=0,
        web_port=0,
        batch_within_s=0.5,
    )
    ensure_topics(s)
    yield s
    delete_topics(s)


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChServer]:
    """The test-only stand-in for a ClickHouse server (``support/chserver.py``), on a free loopback port."""
    root = tmp_path_factory.mktemp("chserver")
    server = ChServer(root / "clickhouse", root / "chserver.log").start()
    yield server
    server.stop()


@pytest.fixture
def server_store(clickhouse_server: ChServer, tmp_path: Path) -> Settings:
    """Settings whose store is the ClickHouse stand-in over HTTP, in a database of this test's own.

    The DSN is the production shape, ``http://user:pass@host:port/``: every
    ClickHouse call goes through clickhouse-connect's HTTP client.
    """
    return Settings(
        data_dir=tmp_path / "data",
        clickhouse_dsn=clickhouse_server.dsn(),
        clickhouse_database=f"pulse_{uuid.uuid4().hex[:10]}",
        metrics_port=0,
        web_port=0,
    )


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``pulse worker`` child processes; all are stopped when the test ends."""
    workers: list[WorkerProcess] = []

    def start(settings: Settings, name: str = "worker") -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"{name}-{len(workers)}.log").start()
        workers.append(w)
        w.wait_ready()
        return w

    yield start
    for w in workers:
        w.stop()
