"""Watch one consumer group from outside: when it started reading, and how far it has committed.

One admin client for the whole watch (a fresh client per poll would cost the
shared machine more CPU than the poll is worth). The topic's end offsets are
known up front: the bench topic is complete before any contender starts.
"""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pipeline.kafka.config import kafka_python_config
from pipeline.settings import Settings


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The topic's end offset per partition."""
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **kafka_python_config(settings))
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


class GroupWatch:
    def __init__(self, settings: Settings, topic: str, group: str, ends: dict[int, int]) -> None:
        self.topic = topic
        self.group = group
        self.ends = ends
        self.admin = KafkaAdminClient(client_id="pulse-bench-watch", **kafka_python_config(settings))

    def reading(self) -> bool:
        """The group has finished joining (state Stable, with members): its consumers fetch from now on."""
        info = self.admin.describe_groups([self.group]).get(self.group) or {}
        return info.get("group_state") == "Stable" and bool(info.get("members"))

    def committed(self) -> dict[int, int]:
        tps = [TopicPartition(self.topic, p) for p in self.ends]
        offsets = self.admin.list_group_offsets({self.group: tps}).get(self.group, {})
        return {tp.partition: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}

    def lag(self) -> int:
        """Messages not yet committed by the group."""
        done = self.committed()
        return sum(max(0, end - done.get(p, 0)) for p, end in self.ends.items())

    def close(self) -> None:
        self.admin.close()
