"""Kafka administration: create and delete the pipeline's topics, read a group's lag."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.kafka.config import kafka_python_config
from pipeline.settings import KafkaSettings

log = logging.getLogger(__name__)


def ensure_topics(settings: KafkaSettings, timeout_s: float = 30.0) -> None:
    """Create the pipeline's topics if they do not exist (idempotent)."""
    admin = KafkaAdminClient(
        client_id="pulse-admin", request_timeout_ms=int(timeout_s * 1000), **kafka_python_config(settings)
    )
    try:
        existing = set(admin.list_topics())
        wanted = [settings.events_topic, settings.releases_topic, settings.dlq_topic]
        new = [
            NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication)
            for name in wanted
            if name not in existing
        ]
        if new:
            try:
                admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
                log.info("event=topics_created topics=%s", ",".join(t.name for t in new))
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def delete_topics(settings: KafkaSettings) -> None:
    """Delete every topic under the settings' prefix (demo and benchmark runs clean up after themselves)."""
    admin = KafkaAdminClient(client_id="pulse-admin", **kafka_python_config(settings))
    try:
        mine = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix + ".")]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def consumer_lag(settings: KafkaSettings, topic: str, group: str | None = None) -> int:
    """Messages in ``topic`` not yet committed by the consumer group (the worker's progress)."""
    group = group or settings.consumer_group
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **kafka_python_config(settings))
    admin = KafkaAdminClient(client_id="pulse-lag", **kafka_python_config(settings))
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = consumer.end_offsets(tps)
        committed = admin.list_group_offsets({group: tps}).get(group, {})
        lag = 0
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(0, ends[tp] - done)
        return lag
    finally:
        consumer.close()
        admin.close()
