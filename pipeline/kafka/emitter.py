"""Emitter SDK: how services send events to ProductPulse, without ever waiting on Kafka.

    from pipeline.kafka.emitter import Emitter
    em = Emitter.from_env(product="checkout", version="2.3.0")
    em.session_started(user_id="u-17", session_id="s-1")
    em.request(user_id="u-17", operation="POST /pay", latency_ms=84.0, status_code=200)

Like PostHog's and Sentry's SDKs, the emitter never blocks or raises in
application code. :meth:`Emitter.send` (and every typed helper) validates the
event, puts it into a bounded queue (``PULSE_EMITTER_QUEUE_SIZE``) and
returns; a background thread connects to Kafka (lazily: ``from_env`` returns at
once with the broker down), drains the queue and produces. When the queue is
full the event is dropped and counted (:attr:`Emitter.dropped`, and
``pulse_emitter_dropped_total`` when prometheus_client is installed). Every
failure - an invalid event, a broker that cannot be reached, a pack Kafka did
not acknowledge, drops - goes to ``on_error(exc, events)``; the default writes
a rate-limited log line. kafka-python's own blocking (``max_block_ms``,
bootstrap) happens on the background thread only.

On the wire nothing changed: events are produced with ``acks=all`` on an
idempotent, retrying producer, to the partition their key ``product:user``
hashes to (Kafka's murmur2), in *packs* (see :mod:`pipeline.events`) of up to
``pack_events`` events and ``pack_bytes`` bytes, sent when full, after
``linger_ms``, or on :meth:`Emitter.flush`.

Tools and tests that must not lose an event use :meth:`Emitter.emit`, which
raises :class:`InvalidEvent` and waits for room in the queue (up to
``block_timeout_s``, then :class:`EmitFailed`), and :meth:`Emitter.flush`,
which waits for the broker's acks and returns how many events are still
pending. An emitter that was never closed flushes at interpreter exit
(``atexit``, for ``exit_timeout_s``, 5 s by default), so a script that sends
and ends loses nothing while Kafka is up, and never hangs while it is down.

A broker that refuses the SASL credentials is not an outage: the emitter
reports :class:`~pipeline.kafka.login.LoginRefused` once (one line naming
broker, user and mechanism), fails what it holds and every later event at
once (``send`` counts them in :attr:`Emitter.failed`, ``emit`` raises,
``flush`` returns without waiting) and stops connecting; a new emitter with
fixed settings starts over.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, get_args

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from kafka.producer.future import FutureRecordMetadata, RecordMetadata
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
from pipeline.kafka import sdkmetrics
from pipeline.kafka.config import kafka_python_config
from pipeline.kafka.login import LoginRefused, login_watch
from pipeline.kafka.typed_events import TypedEvents
from pipeline.settings import InvalidSettings, KafkaSettings, Settings

log = logging.getLogger(__name__)

ErrorCallback = Callable[[BaseException, Sequence[bytes]], None]
"""``on_error(exc, events)``: ``events`` are the encoded (wire JSON) events the failure lost, possibly none."""

EVENT_MODELS: tuple[type, ...] = get_args(get_args(Event)[0])  # the models of the union (not Release)
RECONNECT_BACKOFF_S = (0.5, 10.0)  # first and longest wait between connection attempts
ERROR_LOG_INTERVAL_S = 10.0  # the default on_error writes at most one line per interval
EXIT_FLUSH_S = 5.0  # at interpreter exit, an emitter not closed sends what it holds for this long at most
EXIT_TIMEOUT_S = 120.0  # leaving a `with` block waits this long for acks at most (the producer's delivery timeout)


class InvalidEvent(PulseError, ValueError):
    """An event failed validation before it was sent; nothing was produced."""


class EmitFailed(PulseError, RuntimeError):
    """Events could not be handed to Kafka."""


class EventsDropped(EmitFailed):
    """The emitter's queue was full: events were dropped (reported to on_error from the background thread)."""


class EventsLost(EmitFailed):
    """The emitter closed with events it could not deliver."""


class RateLimitedLog:
    """The default ``on_error``: one log line per kind of failure and ``interval_s`` at most, counting the rest.

    A dead broker fails every pack; a line per failure would flood the
    service's log and cost more than the events were worth.
    """

    def __init__(self, interval_s: float = ERROR_LOG_INTERVAL_S, logger: logging.Logger = log) -> None:
        self.interval_s = interval_s
        self.logger = logger
        self._lock = threading.Lock()
        self._next_at: dict[type, float] = {}
        self._suppressed: dict[type, int] = {}
        self._lost: dict[type, int] = {}

    def __call__(self, exc: BaseException, events: Sequence[bytes]) -> None:
        kind = type(exc)
        with self._lock:
            self._lost[kind] = self._lost.get(kind, 0) + len(events)
            now = time.monotonic()
            if now < self._next_at.get(kind, 0.0):
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._next_at[kind] = now + self.interval_s
            suppressed, lost = self._suppressed.pop(kind, 0), self._lost.pop(kind, 0)
        self.logger.warning(
            "event=emit_error error=%s detail=%r events_lost=%d errors_suppressed=%d",
            kind.__name__, str(exc)[:200], lost, suppressed,
        )  # fmt: skip


class _Raw:
    """A message for a topic of its own (a release, or raw bytes), with the future its sender holds."""

    __slots__ = ("topic", "key", "value", "future")

    def __init__(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.topic, self.key, self.value = topic, key, value
        self.future: concurrent.futures.Future[RecordMetadata] = concurrent.futures.Future()


class Emitter(TypedEvents):
    """A thread-safe, non-blocking producer of ProductPulse events for one product and version."""

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
        queue_size: int | None = None,
        on_error: ErrorCallback | None = None,
        block_timeout_s: float = 60.0,
        exit_timeout_s: float = EXIT_FLUSH_S,
    ) -> None:
        self.settings = settings
        self.product = product
        self.version = version
        self.environment = environment
        self.platform = platform
        self.pack_events = pack_events
        self.pack_bytes = pack_bytes  # well under a default broker's 1 MiB message.max.bytes
        self.linger_s = linger_ms / 1000
        self.queue_size = queue_size or settings.emitter_queue_size
        self.on_error: ErrorCallback = on_error or RateLimitedLog()
        self.block_timeout_s = block_timeout_s
        self.exit_timeout_s = exit_timeout_s
        self.dropped = 0  # events send() dropped because the queue was full
        self.failed = 0  # events not handed to Kafka or not acknowledged by it
        self.invalid = 0  # events send() refused as invalid
        self._producer_config: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            "retries": 2**31 - 1,
            "max_in_flight_requests_per_connection": 5,
            # The packs linger (linger_ms); the producer only gathers packs that are ready, so that flush() and
            # the exit flush need not wait out a second linger.
            "linger_ms": min(linger_ms, 5),
            "batch_size": batch_size,
            "max_request_size": 2 * 1024 * 1024,
            "delivery_timeout_ms": 120_000,
            # Both only ever block the background thread; short, so it notices close() and reports the outage.
            "bootstrap_timeout_ms": 5_000,  # a refused port fails at once; 5 s is for a slow handshake
            "max_block_ms": 10_000,
            "client_id": "pulse-emitter",
            **kafka_python_config(settings),
        }
        # The queue: what send() hands to the background thread; bounded by queue_size.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the background thread waits for work
        self._room = threading.Condition(self._lock)  # emit() waits for room in the queue
        self._settled_cond = threading.Condition(self._lock)  # flush() waits for acks
        self._queue: deque[tuple[bytes, bytes] | _Raw] = deque()
        self._room_waiters: list[Callable[[], None]] = []  # the async emitter's wake-ups
        self._accepted = 0  # records (events, releases, raw messages) taken into the queue
        self._settled = 0  # records acknowledged or failed
        self._flush_asked = False
        self._closing = False
        self._reported_drops = 0
        self._last_error: BaseException | None = None
        self._refused: LoginRefused | None = None  # the broker refused our credentials: every event fails at once
        self._partitions: dict[bytes, int] = {}
        self._n_partitions = 0
        self._producer: KafkaProducer | None = producer
        if producer is not None:
            # A producer passed in is connected already, and its caller (the collector) wants a failure now.
            self._n_partitions = len(producer.partitions_for(settings.events_topic) or ()) or 1
        self._connected = threading.Event()
        # Like PostHog's SDK: what is still queued or lingering at interpreter exit is sent, for a bounded time.
        # The hook holds the emitter until close(); atexit runs before daemon threads are stopped. Registered
        # before the thread starts, which registers it again once it created a producer (see _connect).
        atexit.register(self._at_exit)
        self._thread = threading.Thread(target=self._run, name="pulse-emitter", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, **kwargs: Any) -> Emitter:
        """An emitter configured from ``PULSE_*`` variables; returns at once, connecting in the background.

        Invalid variables (SASL without a password, say) raise :class:`~pipeline.settings.InvalidSettings`, one
        line naming each variable, instead of pydantic's multi-line report.
        """
        try:
            settings = Settings()
        except ValidationError as exc:
            raise InvalidSettings.of(exc) from None
        return cls(settings, **kwargs)

    # --- what application code calls -----------------------------------------------------------------
    def send(self, event: Event | Mapping[str, Any]) -> Event | None:
        """Validate one event and queue it; never blocks, never raises.

        Returns the validated event, or None when it was invalid (reported to
        ``on_error`` as :class:`InvalidEvent`) or dropped because the queue was
        full (counted in :attr:`dropped`).
        """
        try:
            validated = self._validate(event)
            item = (partition_key(validated), encode_event(validated))
        except InvalidEvent as exc:
            self.invalid += 1
            sdkmetrics.count("invalid")
            self._report(exc, ())
            return None
        except Exception as exc:  # noqa: BLE001 - application code must not see the SDK fail
            self._report(exc, ())
            return None
        return validated if self._offer(item) else None

    def _submit(self, body: dict[str, Any]) -> Event | None:
        return self.send(body)

    def emit(self, event: Event | Mapping[str, Any]) -> Event:
        """Validate one event and queue it, waiting for room; for tools and tests that must not drop events.

        Raises :class:`InvalidEvent` naming the bad field, and
        :class:`EmitFailed` when the queue stayed full for ``block_timeout_s``
        (Kafka unreachable).
        """
        validated = self._validate(event)
        self._put((partition_key(validated), encode_event(validated)))
        return validated

    def emit_encoded(self, key: bytes, value: bytes) -> None:
        """Queue an already validated and encoded event, waiting for room as :meth:`emit` does."""
        self._put((key, value))

    def release(self, release: Release | Mapping[str, Any]) -> concurrent.futures.Future[RecordMetadata]:
        """Announce a release on the releases topic (key: product); the future resolves when Kafka acked it."""
        try:
            rel = release if isinstance(release, Release) else Release.model_validate(release)
        except ValidationError as exc:
            raise InvalidEvent(f"invalid release: {describe_errors(exc)}") from None
        return self._put_raw(_Raw(self.settings.releases_topic, rel.product.encode(), encode_event(rel)))

    def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> concurrent.futures.Future[RecordMetadata]:
        """Send bytes unvalidated (tools and tests that need malformed input), through the same queue."""
        return self._put_raw(_Raw(topic, key, value))

    def release_now(self, release: Release) -> FutureRecordMetadata:
        """Send one validated release right away in the caller's thread (the collector's ``POST /v1/releases``,
        which answers 202 only once it is acked: wait on the future). Needs a connected producer."""
        producer = self._producer
        if producer is None:
            raise EmitFailed("release_now needs a connected producer (pass producer=...)")
        return producer.send(self.settings.releases_topic, key=release.product.encode(), value=encode_event(release))

    def send_now(self, encoded: list[tuple[bytes, bytes]]) -> list[FutureRecordMetadata]:
        """Send already validated (key, event) pairs right away, packed per partition, in the caller's thread.

        For callers that must know when *these* events are stored and run in a
        thread of their own (the HTTP collector answers 202 only then): wait on
        the returned futures. It needs a connected producer: the collector
        passes one in. Events queued by :meth:`send` are not touched.
        """
        producer = self._producer
        if producer is None or not self._n_partitions:
            raise EmitFailed("send_now needs a connected producer (pass producer=...)")
        packs: dict[int, list[bytes]] = {}
        for key, value in encoded:
            packs.setdefault(self._partition(key), []).append(value)
        futures = []
        for partition, values in packs.items():
            for i in range(0, len(values), self.pack_events):
                futures.append(
                    producer.send(
                        self.settings.events_topic,
                        value=encode_pack(values[i : i + self.pack_events]),
                        partition=partition,
                        headers=[(PACK_HEADER, PACK_FORMAT)],
                    )
                )
        return futures

    def flush(self, timeout: float | None = None) -> int:
        """Send every queued event now and wait for the broker's acks; returns how many are still pending.

        Pending: accepted but neither acknowledged nor failed (failures went
        to ``on_error`` and :attr:`failed`). ``timeout=None`` waits until
        everything settled; kafka-python gives up on a record after its
        delivery timeout (120 s).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._accepted
            self._flush_asked = True
            self._wake.notify()
            while self._settled < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._settled_cond.wait(left)
            return self._accepted - self._settled

    @property
    def pending(self) -> int:
        """Records accepted and not yet acknowledged or failed."""
        with self._lock:
            return self._accepted - self._settled

    def close(self, timeout: float | None = EXIT_TIMEOUT_S) -> int:
        """Flush (up to ``timeout``), stop the background thread and close the producer; returns what was lost.

        By default it waits as long as kafka-python would for a record (its delivery timeout), as close()
        always did; a service shutting down with Kafka gone may pass less.
        """
        atexit.unregister(self._at_exit)
        started = time.monotonic()
        left = self.flush(timeout)
        with self._lock:
            self._closing = True
            self._wake.notify()
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        self._thread.join(remaining)
        producer = self._producer
        if producer is not None:
            try:
                producer.close(timeout=0 if remaining is None else min(remaining, 1.0))
            except Exception as exc:  # noqa: BLE001 - closing: report, never raise into the caller
                self._report(exc, ())
        if left and not self._connected.is_set():  # never connected: nothing else reported what was queued
            self._report(EventsLost(f"closed with {left} event(s) never sent: Kafka was unreachable"), ())
        return left

    def _at_exit(self) -> None:
        try:
            self.close(timeout=self.exit_timeout_s)
        except Exception:  # noqa: BLE001 - the interpreter is exiting: log, never raise
            log.exception("event=emitter_exit_flush_failed")

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(timeout=EXIT_TIMEOUT_S)

    # --- the queue ------------------------------------------------------------------------------------
    def _validate(self, event: Event | Mapping[str, Any]) -> Event:
        """A model instance was validated when it was built; a mapping is validated here."""
        if isinstance(event, EVENT_MODELS):
            return event  # type: ignore[return-value]  # a model was validated when it was built
        if not isinstance(event, Mapping):
            raise InvalidEvent(f"an event is a mapping or an event model, not {type(event).__name__}")
        try:
            return EVENT_ADAPTER.validate_python(event)
        except ValidationError as exc:
            raise InvalidEvent(f"invalid event: {describe_errors(exc)}") from None

    def _offer(self, item: tuple[bytes, bytes] | _Raw) -> bool:
        """Queue ``item`` if there is room (True); else count it as dropped (False). Never waits."""
        with self._lock:
            refused = self._refused is not None
            if refused:  # counted as failed, not dropped: the refusal was reported (once), not a full queue
                self._accepted += 1
                self._settled += 1
                self.failed += 1
                dropped = False
            elif self._closing or len(self._queue) >= self.queue_size:
                self.dropped += 1
                dropped = True
            else:
                self._queue.append(item)
                self._accepted += 1
                if len(self._queue) == 1:
                    self._wake.notify()
                dropped = False
        if refused:
            sdkmetrics.count("failed")
        if dropped:
            sdkmetrics.count("dropped")
        return not dropped and not refused

    def _put(self, item: tuple[bytes, bytes] | _Raw) -> None:
        """Queue ``item``, waiting up to ``block_timeout_s`` for room."""
        deadline = time.monotonic() + self.block_timeout_s
        with self._lock:
            if self._refused is not None:
                raise EmitFailed(str(self._refused))
            while len(self._queue) >= self.queue_size and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise EmitFailed(
                        f"the emitter's queue stayed full for {self.block_timeout_s:g} s; is Kafka reachable? "
                        f"(last error: {self._last_error!r})"
                    )
                self._room.wait(left)
            if self._refused is not None:
                raise EmitFailed(str(self._refused))
            if self._closing:
                raise EmitFailed("the emitter is closed")
            self._queue.append(item)
            self._accepted += 1
            if len(self._queue) == 1:
                self._wake.notify()

    def _put_raw(self, raw: _Raw) -> concurrent.futures.Future[RecordMetadata]:
        self._put(raw)
        return raw.future

    def has_room(self) -> bool:
        """Whether :meth:`send` would queue an event now rather than drop it."""
        return len(self._queue) < self.queue_size

    def add_room_waiter(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` (from the background thread) once the queue next has room; the async emitter's hook."""
        with self._lock:
            if len(self._queue) < self.queue_size:
                wake_now = True
            else:
                self._room_waiters.append(wake)
                wake_now = False
        if wake_now:
            wake()

    # --- the background thread ------------------------------------------------------------------------
    def _report(self, exc: BaseException, events: Sequence[bytes]) -> None:
        """Hand a failure to on_error; a failing callback is logged, never propagated."""
        self._last_error = exc
        try:
            self.on_error(exc, events)
        except Exception:  # noqa: BLE001 - a buggy callback must not stop the emitter
            log.exception("event=emit_on_error_failed")

    def _report_drops(self) -> None:
        with self._lock:
            drops, self._reported_drops = self.dropped - self._reported_drops, self.dropped
        if drops:
            self._report(EventsDropped(f"the queue was full ({self.queue_size}): dropped {drops} event(s)"), ())

    def _run(self) -> None:
        try:
            if self._connect():
                self._drain()
        except Exception as exc:  # noqa: BLE001 - the thread must report, not die silently
            self._report(exc, ())

    def _connect(self) -> bool:
        """Create the producer and learn the partition count, retrying with backoff until closed."""
        backoff = RECONNECT_BACKOFF_S[0]
        while self._producer is None or not self._n_partitions:
            if self._closing:
                return False
            producer = self._producer
            try:
                if producer is None:
                    with login_watch(self.settings):
                        producer = KafkaProducer(**self._producer_config)
                n = len(producer.partitions_for(self.settings.events_topic) or ()) or 1
            except LoginRefused as exc:  # a setting to fix: retrying would fail the same way, forever
                self._refuse(exc)
                return False
            except Exception as exc:  # noqa: BLE001 - broker down, metadata timeout: report and retry
                if producer is not None:
                    producer.close(timeout=0)
                self._report(EmitFailed(f"cannot reach Kafka at {self.settings.kafka_bootstrap}: {exc!r}"), ())
                self._report_drops()
                with self._lock:
                    self._wake.wait_for(lambda: self._closing, timeout=backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF_S[1])
                continue
            if self._closing:
                producer.close(timeout=0)
                return False
            if self._producer is None:
                # kafka-python registered its own atexit close (1 s, without our packs); hooks run last-in
                # first-out, so register ours again to run before it.
                atexit.unregister(self._at_exit)
                atexit.register(self._at_exit)
            self._producer, self._n_partitions = producer, n
        self._connected.set()
        return True

    def _refuse(self, exc: LoginRefused) -> None:
        """Fail what is queued and, from now on, every event at once; report the refusal once."""
        with self._lock:
            self._refused = exc
            lost = [item.value if isinstance(item, _Raw) else item[1] for item in self._queue]
            raws = [item for item in self._queue if isinstance(item, _Raw)]
            self._queue.clear()
            self._settled += len(lost)
            self.failed += len(lost)
            self._settled_cond.notify_all()
            self._room.notify_all()
            waiters, self._room_waiters = self._room_waiters, []
        for raw in raws:
            raw.future.set_exception(EmitFailed(str(exc)))
        for wake in waiters:
            wake()
        if lost:
            sdkmetrics.count("failed", len(lost))
        self._report(exc, lost)

    def _drain(self) -> None:
        """Move queued records into packs and packs into the producer, until closed."""
        packs: dict[int, list[bytes]] = {}
        sizes: dict[int, int] = {}
        first_at: float | None = None  # when the oldest unsent pack got its first event
        while True:
            with self._lock:
                while not self._queue and not self._flush_asked and not self._closing:
                    timeout = None if first_at is None else first_at + self.linger_s - time.monotonic()
                    if timeout is not None and timeout <= 0:
                        break
                    self._wake.wait(timeout)
                items = list(self._queue)
                self._queue.clear()
                flush, self._flush_asked = self._flush_asked, False
                closing = self._closing
                waiters, self._room_waiters = self._room_waiters, []
                self._room.notify_all()
            for wake in waiters:
                wake()
            self._report_drops()
            for item in items:
                if isinstance(item, _Raw):
                    self._send_raw(item)
                    continue
                key, value = item
                partition = self._partition(key)
                pack = packs.setdefault(partition, [])
                if pack and sizes[partition] + len(value) > self.pack_bytes:
                    self._send_pack(partition, packs.pop(partition))
                    pack = packs[partition] = []
                    sizes[partition] = 0
                pack.append(value)
                sizes[partition] = sizes.get(partition, 0) + len(value) + 1
                if first_at is None:
                    first_at = time.monotonic()
                if len(pack) >= self.pack_events:
                    self._send_pack(partition, packs.pop(partition))
                    sizes.pop(partition)
            if flush or closing or (first_at is not None and time.monotonic() >= first_at + self.linger_s):
                for partition in list(packs):
                    self._send_pack(partition, packs.pop(partition))
                sizes.clear()
                first_at = None
            if closing:
                with self._lock:
                    if not self._queue:
                        return

    def _partition(self, key: bytes) -> int:
        """The partition Kafka's default partitioner picks for ``key`` (murmur2, as the Java client)."""
        partition = self._partitions.get(key)
        if partition is None:
            if len(self._partitions) > 100_000:
                self._partitions.clear()
            partition = self._partitions[key] = (murmur2(key) & 0x7FFFFFFF) % self._n_partitions
        return partition

    def _send_pack(self, partition: int, pack: list[bytes]) -> None:
        """Produce one partition's events as a pack; its outcome settles them (acked, or failed and reported)."""
        assert self._producer is not None
        try:
            future = self._producer.send(
                self.settings.events_topic,
                value=encode_pack(pack),
                partition=partition,
                headers=[(PACK_HEADER, PACK_FORMAT)],
            )
        except Exception as exc:  # noqa: BLE001 - buffer full, closed producer: these events are lost
            self._failed(pack, exc)
            return
        future.add_callback(self._acked, len(pack))
        future.add_errback(self._failed, pack)

    def _send_raw(self, raw: _Raw) -> None:
        assert self._producer is not None
        try:
            future = self._producer.send(raw.topic, key=raw.key, value=raw.value)
        except Exception as exc:  # noqa: BLE001
            raw.future.set_exception(exc)
            self._failed([raw.value], exc)
            return

        def done(metadata: RecordMetadata) -> None:
            raw.future.set_result(metadata)
            self._acked(1, metadata)

        def failed(exc: BaseException) -> None:
            raw.future.set_exception(exc)
            self._failed([raw.value], exc)

        future.add_callback(done)
        future.add_errback(failed)

    def _acked(self, n: int, _metadata: object = None) -> None:
        with self._lock:
            self._settled += n
            self._settled_cond.notify_all()

    def _failed(self, events: list[bytes], exc: BaseException) -> None:
        with self._lock:
            self._settled += len(events)
            self.failed += len(events)
            self._settled_cond.notify_all()
        sdkmetrics.count("failed", len(events))
        self._report(exc, events)
