"""Fixtures of the fault tests: the three-broker Kafka cluster, started once per session by the tests themselves.

CI needs nothing else running: the session starts the cluster (stopping one an
aborted run left behind) on its own ports and data folder, and stops it at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.kafka_cluster import KafkaCluster


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()
