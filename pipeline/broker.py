"""Kafka plumbing shared by every process: client settings and topic creation.

The same :class:`~pipeline.settings.Settings` produce the keyword arguments for
kafka-python (emitter, admin, tools) and for Faust/aiokafka (the worker), so
security settings (SASL/TLS) are written once.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.settings import Settings

log = logging.getLogger(__name__)


def kafka_python_config(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments for kafka-python clients."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        cfg["sasl_mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            cfg["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        cfg["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        cfg["ssl_certfile"] = str(settings.kafka_ssl_certfile)
    if settings.kafka_ssl_keyfile:
        cfg["ssl_keyfile"] = str(settings.kafka_ssl_keyfile)
    return cfg


def faust_broker_config(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments for the broker connection and its credentials."""
    import faust  # the worker extra; emit-only installs never import this

    cfg: dict[str, Any] = {"broker": ";".join(f"kafka://{h}" for h in settings.kafka_bootstrap.split(","))}
    proto = settings.kafka_security_protocol
    context = None
    if proto in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile or "") or None)
    if proto.startswith("SASL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        cfg["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username or "",
            password=password,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    elif context is not None:
        cfg["broker_credentials"] = faust.SSLCredentials(context)
    return cfg


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
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


def delete_topics(settings: Settings) -> None:
    """Delete every topic under the settings' prefix (demo and benchmark runs clean up after themselves)."""
    admin = KafkaAdminClient(client_id="pulse-admin", **kafka_python_config(settings))
    try:
        mine = [t for t in admin.list_topics() if t.startswith(settings.topic_prefix + ".")]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def consumer_lag(settings: Settings, topic: str, group: str | None = None) -> int:
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
