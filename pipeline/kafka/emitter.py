"""Emitter SDK: how services send events to ProductPulse.

    from pipeline.kafka.emitter import Emitter
    with Emitter.from_env(product="checkout", version="2.3.0") as em:
        em.session_started(user_id="u-17", session_id="s-1")
        em.request(user_id="u-17", operation="POST /pay", latency_ms=84.0, status_code=200)

Events are validated before they are sent (an invalid one raises
:class:`InvalidEvent` naming the bad field) and produced with ``acks=all`` on an
idempotent, retrying kafka-python producer. An event goes to the partition its
key ``product:user`` hashes to (Kafka's murmur2), so one user's events stay in
order; events bound for the same partition travel together in *packs* (see
:mod:`pipeline.events`) of up to ``pack_events`` events and ``pack_bytes`` bytes, sent when full, after
``linger_ms``, or on :meth:`Emitter.flush`. ``flush`` returns once the broker
acknowledged every event emitted before it, and raises if any send failed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from kafka.producer.future import FutureRecordMetadata
from pydantic import ValidationError

from pipeline.errors import PulseError
from pipeline.events import (
    EVENT_ADAPTER,
    PACK_FORMAT,
    PACK_HEADER,
    Event,
    Release,
    describe_errors,
    encode_event,
    encode_pack,
    partition_key,
)
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import KafkaSettings, Settings


class InvalidEvent(PulseError, ValueError):
    """An event failed validation before it was sent; nothing was produced."""


class EmitFailed(PulseError, RuntimeError):
    """Events queued earlier could not be handed to Kafka."""


class Emitter:
    """A thread-safe producer of ProductPulse events for one product and version."""

    def __init__(
        self,
        settings: KafkaSettings,
        product: str | None = None,
        version: str | None = None,
        environment: str | None = None,
        platform: str | None = None,
        linger_ms: int = 50,
        pack_events: int = 100,
        pack_bytes: int = 512 * 1024,
        batch_size: int = 1024 * 1024,
        producer: KafkaProducer | None = None,
    ) -> None:
        self.settings = settings
        self.product = product
        self.version = version
        self.environment = environment
        self.platform = platform
        self.pack_events = pack_events
        self.pack_bytes = pack_bytes  # well under a default broker's 1 MiB message.max.bytes
        self._pack_bytes: dict[int, int] = {}
        self._errors: list[Exception] = []
        self.linger_s = linger_ms / 1000
        self._lock = threading.Lock()
        self._packs: dict[int, list[bytes]] = {}
        self._pending: list[FutureRecordMetadata] = []
        self._partitions: dict[bytes, int] = {}
        self._closed = threading.Event()
        self._producer = producer or KafkaProducer(
            acks="all",
            enable_idempotence=True,
            retries=2**31 - 1,
            max_in_flight_requests_per_connection=5,
            linger_ms=linger_ms,
            batch_size=batch_size,
            max_request_size=2 * 1024 * 1024,
            delivery_timeout_ms=120_000,
            client_id="pulse-emitter",
            **kafka_python_config(settings),
        )
        self._n_partitions = len(self._producer.partitions_for(settings.events_topic) or ()) or 1
        self._flusher = threading.Thread(target=self._linger, name="pulse-emitter-linger", daemon=True)
        self._flusher.start()

    @classmethod
    def from_env(cls, **kwargs: Any) -> Emitter:
        return cls(Settings(), **kwargs)

    # --- core --------------------------------------------------------------
    def emit(self, event: Event | Mapping[str, Any]) -> Event:
        """Validate one event and queue it for sending; returns the validated event.

        A model instance was validated when it was built and is sent as it is;
        a mapping is validated here.
        """
        if isinstance(event, Mapping):
            try:
                validated: Event = EVENT_ADAPTER.validate_python(event)
            except ValidationError as exc:
                raise InvalidEvent(f"invalid event: {describe_errors(exc)}") from None
        else:
            validated = event
        self.emit_encoded(partition_key(validated), encode_event(validated))
        return validated

    def emit_encoded(self, key: bytes, value: bytes) -> None:
        """Queue an already validated and encoded event (the collector's path)."""
        partition = self._partition(key)
        with self._lock:
            pack = self._packs.setdefault(partition, [])
            size = self._pack_bytes.get(partition, 0)
            if pack and size + len(value) > self.pack_bytes:
                self._send_pack(partition)
                pack, size = self._packs.setdefault(partition, []), 0
            pack.append(value)
            self._pack_bytes[partition] = size + len(value) + 1
            if len(pack) >= self.pack_events:
                self._send_pack(partition)

    def send_now(self, encoded: list[tuple[bytes, bytes]]) -> list[FutureRecordMetadata]:
        """Send already validated (key, event) pairs right away, packed per partition.

        For callers that must know when *these* events are stored (the HTTP
        collector answers 202 only then): wait on the returned futures.
        Events queued by :meth:`emit` are not touched.
        """
        packs: dict[int, list[bytes]] = {}
        for key, value in encoded:
            packs.setdefault(self._partition(key), []).append(value)
        futures = []
        with self._lock:
            for partition, values in packs.items():
                for i in range(0, len(values), self.pack_events):
                    futures.append(
                        self._producer.send(
                            self.settings.events_topic,
                            value=encode_pack(values[i : i + self.pack_events]),
                            partition=partition,
                            headers=[(PACK_HEADER, PACK_FORMAT)],
                        )
                    )
        return futures

    def _partition(self, key: bytes) -> int:
        """The partition Kafka's default partitioner picks for ``key`` (murmur2, as the Java client)."""
        partition = self._partitions.get(key)
        if partition is None:
            if len(self._partitions) > 100_000:
                self._partitions.clear()
            partition = self._partitions[key] = (murmur2(key) & 0x7FFFFFFF) % self._n_partitions
        return partition

    def _send_pack(self, partition: int) -> None:
        """Send one partition's queued events as a pack (caller holds the lock).

        A send that fails at once (buffer full, metadata timeout) is kept and
        raised by the next :meth:`flush`, so no failure passes silently.
        """
        pack = self._packs.pop(partition, None)
        self._pack_bytes.pop(partition, None)
        if pack:
            if len(self._pending) >= 1000:
                self._prune_pending()
            try:
                future = self._producer.send(
                    self.settings.events_topic,
                    value=encode_pack(pack),
                    partition=partition,
                    headers=[(PACK_HEADER, PACK_FORMAT)],
                )
            except Exception as exc:  # noqa: BLE001 - surfaced by flush()
                self._errors.append(exc)
                return
            self._pending.append(future)

    def _prune_pending(self) -> None:
        """Forget acknowledged sends, keeping failures for the next flush to raise."""
        self._pending = [f for f in self._pending if not f.succeeded()]

    def _linger(self) -> None:
        while not self._closed.wait(self.linger_s):
            with self._lock:
                for partition in list(self._packs):
                    self._send_pack(partition)

    def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> FutureRecordMetadata:
        """Send bytes unvalidated (tools and tests that need malformed input)."""
        return self._producer.send(topic, key=key, value=value)

    def release(self, release: Release | Mapping[str, Any]) -> FutureRecordMetadata:
        """Announce a release on the releases topic (key: product)."""
        try:
            rel = release if isinstance(release, Release) else Release.model_validate(release)
        except ValidationError as exc:
            raise InvalidEvent(f"invalid release: {describe_errors(exc)}") from None
        return self._producer.send(self.settings.releases_topic, key=rel.product.encode(), value=encode_event(rel))

    def flush(self, timeout: float | None = None) -> None:
        """Send every queued event and wait for the broker's acks; raises if a send failed."""
        with self._lock:
            for partition in list(self._packs):
                self._send_pack(partition)
            pending, self._pending = self._pending, []
            errors, self._errors = self._errors, []
        self._producer.flush(timeout=timeout)
        if errors:
            raise EmitFailed(f"{len(errors)} pack(s) could not be sent: {errors[0]!r}") from errors[0]
        for future in pending:
            future.get(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        try:
            self.flush(timeout)
        finally:
            self._closed.set()
            self._producer.close(timeout=timeout)

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- typed helpers ------------------------------------------------------
    # A field left at None is left out of the event, which then gets its default from the table in
    # pipeline.schema (no default is repeated here); environment and platform fall back to the emitter's.
    def _event(self, type_: str, user_id: str, fields: dict[str, Any]) -> Event:
        body: dict[str, Any] = {
            "type": type_,
            "product": fields.pop("product", None) or self.product,
            "version": fields.pop("version", None) or self.version,
            "ts": fields.pop("ts", None) or datetime.now(UTC),
            "user_id": user_id,
        }
        optional = {
            "environment": fields.pop("environment", None) or self.environment,
            "platform": fields.pop("platform", None) or self.platform,
            **fields,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self.emit(body)

    def session_started(self, user_id: str, session_id: str, **kw: Any) -> Event:
        return self._event("session_started", user_id, {"session_id": session_id, **kw})

    def session_ended(
        self,
        user_id: str,
        session_id: str,
        status: str = "ok",  # the SDK's own default (the wire requires a status)
        errors: int | None = None,
        duration_ms: float | None = None,
        **kw: Any,
    ) -> Event:
        fields = {"session_id": session_id, "status": status, "errors": errors, "duration_ms": duration_ms}
        return self._event("session_ended", user_id, {**fields, **kw})

    def feature_used(
        self, user_id: str, feature: str, success: bool | None = None, duration_ms: float | None = None, **kw: Any
    ) -> Event:
        fields = {"feature": feature, "success": success, "duration_ms": duration_ms}
        return self._event("feature_used", user_id, {**fields, **kw})

    def request(
        self,
        user_id: str,
        operation: str,
        latency_ms: float,
        status_code: int = 200,  # the SDK's own default: a measured request was answered (the wire's 0 is unknown)
        error: str | None = None,
        **kw: Any,
    ) -> Event:
        fields = {"operation": operation, "latency_ms": latency_ms, "status_code": status_code, "error": error}
        return self._event("request", user_id, {**fields, **kw})

    def error(self, user_id: str, kind: str, handled: bool | None = None, **kw: Any) -> Event:
        return self._event("error", user_id, {"kind": kind, "handled": handled, **kw})

    def conversion(
        self, user_id: str, goal: str, value: float | None = None, currency: str | None = None, **kw: Any
    ) -> Event:
        return self._event("conversion", user_id, {"goal": goal, "value": value, "currency": currency, **kw})

    def feedback(self, user_id: str, kind: str, score: int, **kw: Any) -> Event:
        return self._event("feedback", user_id, {"kind": kind, "score": score, **kw})

    def support_ticket(
        self, user_id: str, ticket_id: str, action: str, severity: str | None = None, **kw: Any
    ) -> Event:
        fields = {"ticket_id": ticket_id, "action": action, "severity": severity}
        return self._event("support_ticket", user_id, {**fields, **kw})
