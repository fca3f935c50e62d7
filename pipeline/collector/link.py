"""The collector's link to Kafka: a lazily connected :class:`Emitter` whose every blocking call is bounded.

Blocking kafka-python calls (connecting, sending, waiting for acks) run in a
thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from pipeline.collector.errors import Rejected
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.config import kafka_python_config
from pipeline.kafka.emitter import Emitter
from pipeline.kafka.login import LoginRefused, login_watch
from pipeline.settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5  # what a 503 asks the client to wait
RECONNECT_BACKOFF_S = 2.0  # after a failed connect, requests answer 503 at once for this long
SEND_CHUNK_BYTES = 900 * 1024  # one send_now call's events; keeps every pack under a default broker's 1 MiB limit
RETRY = {"Retry-After": str(RETRY_AFTER_S)}

EmitterFactory = Callable[[Settings], Emitter]


def chunks(
    encoded: list[tuple[bytes, bytes]], max_bytes: int = SEND_CHUNK_BYTES
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Consecutive runs of events of at most ``max_bytes`` together (one event may exceed it alone)."""
    chunk: list[tuple[bytes, bytes]] = []
    size = 0
    for pair in encoded:
        if chunk and size + len(pair[1]) > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(pair)
        size += len(pair[1]) + 1
    if chunk:
        yield chunk


def connect_emitter(settings: Settings) -> Emitter:
    """The default emitter factory: an :class:`Emitter` whose every blocking call gives up within the ack timeout.

    Same durability as the SDK's producer (``acks=all``, idempotent), but
    connecting, metadata waits and delivery are bounded by
    ``collector_ack_timeout_s``: a record the client was told 503 about should
    not be delivered minutes later, and a dead broker must not hold a thread
    for the SDK's default 30-120 s. Once the broker answered, the topics are
    created if missing (as the worker does), so the first write does not
    auto-create ``<prefix>.events`` with the broker's default partition count.
    """
    timeout_ms = max(1, int(settings.collector_ack_timeout_s * 1000))
    linger_ms = 2
    with login_watch(settings):  # refused credentials: LoginRefused, not a bootstrap timeout
        producer = _producer(settings, timeout_ms, linger_ms)
    try:
        try:
            ensure_topics(settings, timeout_s=settings.collector_ack_timeout_s)
        except LoginRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - best effort: a collector may lack the right to create topics
            log.warning("event=ensure_topics_failed error=%s detail=%r", type(exc).__name__, str(exc)[:200])
        return Emitter(settings, linger_ms=linger_ms, producer=producer)
    except BaseException:
        producer.close(timeout=0)
        raise


def _producer(settings: Settings, timeout_ms: int, linger_ms: int) -> KafkaProducer:
    return KafkaProducer(
        acks="all",
        enable_idempotence=True,
        retries=2**31 - 1,
        max_in_flight_requests_per_connection=5,
        linger_ms=linger_ms,
        batch_size=1024 * 1024,
        max_request_size=2 * 1024 * 1024,
        bootstrap_timeout_ms=timeout_ms,
        max_block_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
        delivery_timeout_ms=timeout_ms + linger_ms,
        client_id="pulse-collector",
        **kafka_python_config(settings),
    )


def send_and_wait(emitter: Emitter, encoded: list[tuple[bytes, bytes]], deadline: float) -> None:
    """Produce the events and block until the broker acked all of them (runs in a Kafka thread)."""
    if time.monotonic() >= deadline:
        raise KafkaTimeoutError("request waited for a Kafka thread past its ack deadline")
    futures = []
    for chunk in chunks(encoded):
        futures.extend(emitter.send_now(chunk))
    for future in futures:
        future.get(timeout=max(0.0, deadline - time.monotonic()))


class KafkaLink:
    """The collector's :class:`Emitter`, created on first need and again after a failure.

    Creating it connects to the broker, so it is never done at import or app
    construction: a collector started while Kafka is down serves 503s and
    connects once the broker is back. Concurrent requests share one attempt;
    after a failed attempt, requests are answered 503 at once for
    ``RECONNECT_BACKOFF_S`` instead of each waiting for a timeout.
    """

    def __init__(self, settings: Settings, factory: EmitterFactory, pool: ThreadPoolExecutor) -> None:
        self.settings = settings
        self.factory = factory
        self.pool = pool
        self.emitter: Emitter | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._retry_at = 0.0

    def connect_soon(self) -> None:
        """Start connecting in the background unless connected, connecting or backing off."""
        if self.emitter is None and self._connecting is None and time.monotonic() >= self._retry_at:
            self._connecting = asyncio.ensure_future(self._connect())

    async def get(self) -> Emitter:
        """The emitter, connecting first if need be; raises 503 if Kafka cannot be reached."""
        self.connect_soon()
        if self.emitter is None and self._connecting is not None:
            await asyncio.shield(self._connecting)  # a client hanging up must not orphan the attempt
        if self.emitter is None:
            raise Rejected(503, "Kafka is unreachable; retry later", "kafka_unreachable", headers=RETRY)
        return self.emitter

    def discard(self, emitter: Emitter) -> None:
        """Drop ``emitter`` after a failed send: the next request connects a fresh one.

        Measured with a three-broker cluster (tests/faults/test_broker_loss.py):
        a producer whose batches expired while fewer than ``min.insync.replicas``
        brokers were up kept failing for 30 s and more after the brokers were
        back, while a new producer (new producer id, fresh metadata) wrote at
        once. Its queued batches are abandoned; they were answered 503.
        """
        if self.emitter is emitter:
            self.emitter = None
            self.pool.submit(_close_quietly, emitter)

    async def _connect(self) -> None:
        started = time.monotonic()
        try:
            self.emitter = await asyncio.get_running_loop().run_in_executor(self.pool, self.factory, self.settings)
            log.info(
                "event=kafka_connected topic=%s seconds=%.2f", self.settings.events_topic, time.monotonic() - started
            )
        except Exception as exc:  # noqa: BLE001 - whatever failed, the answer is "not now" and a later retry
            self._retry_at = time.monotonic() + RECONNECT_BACKOFF_S
            log.warning(
                "event=kafka_connect_failed error=%s detail=%r retry_in_s=%.1f",
                type(exc).__name__,
                str(exc)[:200],
                RECONNECT_BACKOFF_S,
            )
        finally:
            self._connecting = None

    async def close(self) -> None:
        connecting = self._connecting
        if connecting is not None:
            await connecting
        if self.emitter is not None:
            emitter, self.emitter = self.emitter, None
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self.pool, emitter.close, self.settings.collector_ack_timeout_s
                )
            except Exception as exc:  # noqa: BLE001 - shutting down: report, do not crash the cleanup
                log.warning("event=kafka_close_failed error=%s detail=%r", type(exc).__name__, str(exc)[:200])


def _close_quietly(emitter: Emitter) -> None:
    try:
        emitter.close(timeout=0)
    except Exception as exc:  # noqa: BLE001 - a discarded producer: its failure was already answered 503
        log.info("event=kafka_discarded error=%s", type(exc).__name__)
