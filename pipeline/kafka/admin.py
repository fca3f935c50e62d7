"""Kafka administration: create and delete the pipeline's topics, read a group's lag.

Topics are laid out for the cluster they land on (:func:`topic_layout`): on
three or more brokers, replication factor 3 with ``min.insync.replicas`` 2, so
with the producers' ``acks=all`` a write acknowledged to a client is on two
brokers, and losing any one broker neither loses an acknowledged event nor
stops writes; on one or two brokers, Kafka's single-node defaults (RF 1).
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.kafka.config import kafka_python_config
from pipeline.kafka.login import check_login, login_watch
from pipeline.settings import KafkaSettings

log = logging.getLogger(__name__)


CLUSTER_BROKERS = 3  # from this many brokers on, topics are replicated
CLUSTER_REPLICATION = 3
CLUSTER_MIN_INSYNC = 2  # acks=all waits for this many replicas; one broker of three may be down


def topic_layout(replication: int | None, brokers: int) -> tuple[int, dict[str, str]]:
    """The replication factor and topic configs for new topics on a cluster of ``brokers`` brokers.

    ``replication`` is the setting ``topic_replication``: when set it wins (and
    ``min.insync.replicas`` is 2 from RF 3 on, else the broker's default);
    unset, the broker count decides. Two brokers keep RF 1: RF 2 with min ISR 2
    would stop writes whenever either broker is down, and min ISR 1 would
    acknowledge writes held by one broker only, no better than RF 1 for what a
    client is promised.
    """
    rf = replication if replication is not None else (CLUSTER_REPLICATION if brokers >= CLUSTER_BROKERS else 1)
    configs = {"min.insync.replicas": str(CLUSTER_MIN_INSYNC)} if rf >= CLUSTER_REPLICATION else {}
    return rf, configs


def ensure_topics(settings: KafkaSettings, timeout_s: float = 30.0) -> int:
    """Create the pipeline's topics if they do not exist (idempotent); returns the replication factor for new topics.

    The broker count comes from the cluster metadata at the time of the call,
    so topics created while a broker of three is down get RF 1 (Kafka would
    refuse RF 3 on two live brokers anyway); existing topics are left as they are.
    Refused SASL credentials raise :class:`~pipeline.kafka.login.LoginRefused`
    (one line, within the bootstrap timeout), not a timeout that looks like an outage.
    """
    check_login(settings)
    with login_watch(settings):
        admin = KafkaAdminClient(
            client_id="pulse-admin", request_timeout_ms=int(timeout_s * 1000), **kafka_python_config(settings)
        )
    try:
        brokers = len(admin.describe_cluster().get("brokers") or ())
        rf, configs = topic_layout(settings.topic_replication, brokers)
        existing = set(admin.list_topics())
        wanted = [settings.events_topic, settings.releases_topic, settings.dlq_topic]
        new = [
            NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=rf, topic_configs=configs)
            for name in wanted
            if name not in existing
        ]
        if new:
            try:
                admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
                log.info(
                    "event=topics_created topics=%s brokers=%d replication=%d min_insync=%s",
                    ",".join(t.name for t in new),
                    brokers,
                    rf,
                    configs.get("min.insync.replicas", "default"),
                )
            except TopicAlreadyExistsError:
                pass
        return rf
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
