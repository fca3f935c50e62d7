"""Kafka client configuration shared by every process.

The same :class:`~pipeline.settings.KafkaSettings` produce the keyword arguments for
kafka-python (emitter, admin, tools) and for Faust/aiokafka (the worker), so
security settings (SASL/TLS) are written once.
"""

from __future__ import annotations

import ssl
from typing import Any

from pipeline.kafka import eof_fix
from pipeline.settings import KafkaSettings


def kafka_python_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection keyword arguments for kafka-python clients (and, once, kafka-python's end-of-file fix)."""
    eof_fix.install()
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


def faust_broker_config(settings: KafkaSettings) -> dict[str, Any]:
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


def confluent_config(settings: KafkaSettings) -> dict[str, str]:
    """librdkafka connection settings (confluent-kafka, quixstreams) from the pipeline's settings."""
    cfg = {"bootstrap.servers": settings.kafka_bootstrap, "security.protocol": settings.kafka_security_protocol}
    if settings.kafka_sasl_mechanism:
        cfg["sasl.mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl.username"] = settings.kafka_sasl_username or ""
        if settings.kafka_sasl_password is not None:
            cfg["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        cfg["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        cfg["ssl.certificate.location"] = str(settings.kafka_ssl_certfile)
    if settings.kafka_ssl_keyfile:
        cfg["ssl.key.location"] = str(settings.kafka_ssl_keyfile)
    return cfg
