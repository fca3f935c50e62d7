"""Topic layout by broker count: RF 3 with min.insync.replicas 2 on a cluster of three or more, single-node defaults
below; the one-broker case against the real local broker."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from pipeline.kafka.admin import ensure_topics, topic_layout
from pipeline.kafka.config import kafka_python_config


@pytest.mark.parametrize(
    ("replication", "brokers", "want"),
    [
        (None, 1, (1, {})),
        (None, 2, (1, {})),
        (None, 3, (3, {"min.insync.replicas": "2"})),
        (None, 5, (3, {"min.insync.replicas": "2"})),
        (2, 5, (2, {})),  # a set replication factor wins
        (1, 3, (1, {})),
    ],
)
def test_layout_follows_the_broker_count_unless_set(replication, brokers, want):
    assert topic_layout(replication, brokers) == want


@pytest.mark.integration
def test_one_broker_keeps_single_node_defaults(settings):
    assert ensure_topics(settings) == 1  # the settings fixture created them already: idempotent, same answer
    admin = KafkaAdminClient(**kafka_python_config(settings))
    try:
        (described,) = admin.describe_topics([settings.events_topic])
        assert {len(p["replica_nodes"]) for p in described["partitions"]} == {1}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.events_topic)])
        assert "min.insync.replicas" not in configs["topic"][settings.events_topic]
    finally:
        admin.close()
